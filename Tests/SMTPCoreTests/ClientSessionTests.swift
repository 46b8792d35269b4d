import Foundation
import NIOCore
import SMTPCore
import Testing

private let token: SASLSecret = "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA"
private let password: SASLSecret = "correct horse battery staple"
private let mailbox = "test@contoso.onmicrosoft.com"

/// What a session did: `C:`/`S:` lines, `-- TLS --` where the handshake ran, and how it ended.
private struct SessionRun {
    var transcript: [String] = []
    var wire: [String] = []
    var capabilities: SMTPCapabilities?
    var error: SMTPClientError?
    var secure = false
}

/// Runs a session against a scripted server. `S:` lines are fed as replies
/// (multi-line replies as one entry with CRLFs); when the session asks for
/// TLS, the handshake "completes" at once.
private func run(_ script: [String], _ configuration: SMTPClientSession.Configuration) -> SessionRun {
    var session = SMTPClientSession(configuration: configuration)
    var replies = script.filter { $0.hasPrefix("S: ") }.map { String($0.dropFirst(3)) }[...]
    var run = SessionRun()

    func feedNext() -> SMTPClientSession.Action? {
        guard let text = replies.popFirst() else { return nil }
        run.transcript.append("S: \(text)")
        return session.replyReceived(reply(text.hasSuffix("\r\n") ? text : text + "\r\n"))
    }

    var action = feedNext()
    while let current = action {
        switch current {
        case .send(let commands, let bytes):
            run.transcript += commands.map { "C: \($0)" }
            run.wire.append(String(buffer: bytes))
            action = feedNext()
        case .startTLS:
            run.transcript.append("-- TLS --")
            action = session.tlsEstablished()
        case .ready(let capabilities):
            run.capabilities = capabilities
            action = nil
        case .failed(let error):
            run.error = error
            action = nil
        }
    }
    run.secure = session.isSecure
    #expect(replies.isEmpty, "unused replies: \(Array(replies))")
    return run
}

private func configuration(
    tls: SMTPClientSession.TLSPolicy = .required, _ authentication: SMTPClientAuthentication? = nil
) -> SMTPClientSession.Configuration {
    SMTPClientSession.Configuration(heloName: "relay.contoso.com", tls: tls, authentication: authentication)
}

@Suite("SMTP client session setup")
struct ClientSessionTests {
    @Test func m365SubmissionWithXOAUTH2() {
        let script = [
            "S: 220 SN4PR0401CA0001.outlook.office365.com Microsoft ESMTP MAIL Service ready",
            "C: EHLO relay.contoso.com",
            "S: " + m365EHLOBeforeTLS,
            "C: STARTTLS",
            "S: 220 2.0.0 SMTP server ready",
            "-- TLS --",
            "C: EHLO relay.contoso.com",
            "S: " + m365EHLOAfterTLS,
            "C: AUTH XOAUTH2 <redacted>",
            "S: 235 2.7.0 Authentication successful",
        ]
        let run = run(script, configuration(.xoauth2(username: mailbox, accessToken: token)))
        #expect(run.error == nil)
        #expect(run.transcript == script)
        #expect(run.secure)
        // The capabilities are the post-TLS ones (RFC 3207 §4.2).
        #expect(run.capabilities?.authenticationMechanisms == ["LOGIN", "XOAUTH2"])
        #expect(run.capabilities?.startTLS == false)
        // Microsoft's documented example of the initial response.
        #expect(run.wire.last == """
            AUTH XOAUTH2 dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ==\r\n
            """)
    }

    /// Google and Microsoft: a refused token gets `334 <base64 JSON>`; the
    /// client answers with an empty line and then reads the final 535.
    @Test func xoauth2FailureWithChallenge() {
        let challenge = SASLXOAuth2.errorChallenge(
            SASLXOAuth2ErrorChallenge(status: "401", schemes: "bearer", scope: "https://outlook.office365.com/.default"))
        let script = [
            "S: 220 ready", "C: EHLO relay.contoso.com", "S: " + m365EHLOBeforeTLS,
            "C: STARTTLS", "S: 220 2.0.0 SMTP server ready", "-- TLS --",
            "C: EHLO relay.contoso.com", "S: " + m365EHLOAfterTLS,
            "C: AUTH XOAUTH2 <redacted>",
            "S: 334 \(challenge)",
            "C: <empty response>",
            "S: 535 5.7.3 Authentication unsuccessful",
        ]
        let run = run(script, configuration(.xoauth2(username: mailbox, accessToken: token)))
        #expect(run.transcript == script)
        #expect(run.wire.last == "\r\n")
        #expect(run.error?.code == .authenticationFailed)
        #expect(run.error?.reply?.code == 535)
        #expect(run.error?.reply?.enhanced == SMTPEnhancedStatus(5, 7, 3))
        #expect(run.error?.detail?.contains("status=401") == true)
        #expect(run.capabilities == nil)
    }

    @Test func xoauth2FailureWithout334() {
        let script = [
            "S: 220 ready", "C: EHLO relay.contoso.com", "S: " + m365EHLOBeforeTLS,
            "C: STARTTLS", "S: 220 2.0.0 SMTP server ready", "-- TLS --",
            "C: EHLO relay.contoso.com", "S: " + m365EHLOAfterTLS,
            "C: AUTH XOAUTH2 <redacted>",
            "S: 535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
        ]
        let run = run(script, configuration(.xoauth2(username: mailbox, accessToken: token)))
        #expect(run.transcript == script)
        #expect(run.error?.code == .authenticationFailed)
        #expect(run.error?.reply?.enhanced == SMTPEnhancedStatus(5, 7, 139))
    }

    @Test func startTLSRequiredButNotOffered() {
        let script = [
            "S: 220 mx.example.org ESMTP",
            "C: EHLO relay.contoso.com",
            "S: 250-mx.example.org\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n",
        ]
        let run = run(script, configuration(.plain(username: mailbox, password: password)))
        #expect(run.transcript == script, "no credentials and no envelope before TLS")
        #expect(run.error?.code == .startTLSNotOffered)
        #expect(!run.secure)
    }

    @Test func startTLSRequiredAndRefused() {
        let script = [
            "S: 220 mx", "C: EHLO relay.contoso.com", "S: 250-mx\r\n250 STARTTLS\r\n",
            "C: STARTTLS", "S: 454 4.7.0 TLS not available due to temporary reason",
        ]
        let run = run(script, configuration())
        #expect(run.transcript == script)
        #expect(run.error?.code == .startTLSRejected)
        #expect(run.error?.reply?.code == 454)
    }

    @Test func loginAnswersBothChallenges() {
        let script = [
            "S: 220 ready", "C: EHLO relay.contoso.com", "S: " + m365EHLOBeforeTLS,
            "C: STARTTLS", "S: 220 2.0.0 SMTP server ready", "-- TLS --",
            "C: EHLO relay.contoso.com", "S: " + m365EHLOAfterTLS,
            "C: AUTH LOGIN",
            "S: 334 VXNlcm5hbWU6",
            "C: <redacted>",
            "S: 334 UGFzc3dvcmQ6",
            "C: <redacted>",
            "S: 235 2.7.0 Authentication successful",
        ]
        let run = run(script, configuration(.login(username: mailbox, password: password)))
        #expect(run.error == nil)
        #expect(run.transcript == script)
        let username = Data(mailbox.utf8).base64EncodedString()
        let secret = Data(password.unredacted.utf8).base64EncodedString()
        #expect(run.wire.suffix(2) == ["\(username)\r\n", "\(secret)\r\n"])
        #expect(run.capabilities != nil)
    }

    @Test func plainWithInitialResponse() {
        let script = [
            "S: 220 ready", "C: EHLO relay.contoso.com", "S: 250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n",
            "C: STARTTLS", "S: 220 go", "-- TLS --",
            "C: EHLO relay.contoso.com", "S: 250-mx\r\n250 AUTH=PLAIN\r\n",
            "C: AUTH PLAIN <redacted>",
            "S: 235 2.7.0 ok",
        ]
        let run = run(script, configuration(.plain(username: "tim", password: "tanstaaftanstaaf")))
        #expect(run.error == nil)
        #expect(run.transcript == script)
        #expect(run.wire.last == "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n")
    }

    @Test func mechanismNotOffered() {
        let script = [
            "S: 220 ready", "C: EHLO relay.contoso.com", "S: " + m365EHLOBeforeTLS,
            "C: STARTTLS", "S: 220 go", "-- TLS --",
            "C: EHLO relay.contoso.com", "S: " + m365EHLOAfterTLS,
        ]
        let run = run(script, configuration(.plain(username: mailbox, password: password)))
        #expect(run.transcript == script)
        #expect(run.error?.code == .authenticationMechanismNotOffered)
    }

    /// RFC 5321 §3.2: a server that does not know EHLO says 5xx; HELO then.
    @Test func heloFallback() {
        let script = [
            "S: 220 old.example ready",
            "C: EHLO relay.contoso.com", "S: 502 5.5.2 Command not implemented",
            "C: HELO relay.contoso.com", "S: 250 old.example",
        ]
        let run = run(script, configuration(tls: .opportunistic))
        #expect(run.error == nil)
        #expect(run.transcript == script)
        #expect(run.capabilities == SMTPCapabilities())
    }

    @Test func heloFallbackCannotSatisfyRequiredTLS() {
        let script = [
            "S: 220 old.example ready",
            "C: EHLO relay.contoso.com", "S: 500 Syntax error",
            "C: HELO relay.contoso.com", "S: 250 old.example",
        ]
        #expect(run(script, configuration()).error?.code == .startTLSNotOffered)
    }

    @Test func ehlo421IsNotAFallback() {
        let script = ["S: 220 x", "C: EHLO relay.contoso.com", "S: 421 4.3.2 Shutting down"]
        let run = run(script, configuration())
        #expect(run.transcript == script)
        #expect(run.error?.code == .ehloRejected)
    }

    @Test(arguments: ["554 5.7.1 No SMTP service here", "421 4.3.2 Too busy", "250 hello?"])
    func greetingRejected(_ greeting: String) {
        let run = run(["S: " + greeting], configuration())
        #expect(run.error?.code == .greetingRejected)
        #expect(run.transcript == ["S: " + greeting])
    }

    @Test func opportunisticWithoutOfferAndNoCredentials() {
        let script = ["S: 220 x", "C: EHLO relay.contoso.com", "S: 250-mx\r\n250 PIPELINING\r\n"]
        let run = run(script, configuration(tls: .opportunistic))
        #expect(run.error == nil)
        #expect(run.capabilities?.pipelining == true)
        #expect(!run.secure)
    }

    @Test func noCredentialsWithoutTLS() {
        let script = ["S: 220 x", "C: EHLO relay.contoso.com", "S: 250-mx\r\n250 AUTH PLAIN LOGIN\r\n"]
        let run = run(script, configuration(tls: .opportunistic, .login(username: mailbox, password: password)))
        #expect(run.transcript == script)
        #expect(run.error?.code == .authenticationRequiresTLS)
    }

    @Test func opportunisticGoesOnWhenSTARTTLSFails() {
        let script = [
            "S: 220 x", "C: EHLO relay.contoso.com", "S: 250-mx\r\n250 STARTTLS\r\n",
            "C: STARTTLS", "S: 454 4.7.0 TLS not available",
        ]
        let run = run(script, configuration(tls: .opportunistic))
        #expect(run.error == nil)
        #expect(run.transcript == script)
        #expect(!run.secure)
    }

    @Test func implicitTLSSkipsSTARTTLS() {
        let script = [
            "S: 220 x", "C: EHLO relay.contoso.com", "S: 250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n",
            "C: AUTH PLAIN <redacted>", "S: 235 2.7.0 ok",
        ]
        let run = run(script, configuration(tls: .implicit, .plain(username: mailbox, password: password)))
        #expect(run.error == nil)
        #expect(run.transcript == script)
    }

    @Test func tlsEstablishedOutOfTurn() {
        var session = SMTPClientSession(configuration: configuration())
        guard case .failed(let error) = session.tlsEstablished() else {
            Issue.record("expected failure")
            return
        }
        #expect(error.code == .unexpectedEvent)
        #expect(!session.isSecure)
    }

    @Test func invalidCredentialsAreRefusedBeforeSending() {
        let script = [
            "S: 220 x", "C: EHLO relay.contoso.com", "S: 250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n",
            "C: STARTTLS", "S: 220 go", "-- TLS --",
            "C: EHLO relay.contoso.com", "S: 250-mx\r\n250 AUTH PLAIN\r\n",
        ]
        let run = run(script, configuration(.plain(username: "a\u{0}b", password: password)))
        #expect(run.transcript == script)
        #expect(run.error?.code == .invalidCredentials)
    }

    @Test func actionsAndConfigurationNeverShowSecrets() {
        let base64Token = Data("user=\(mailbox)\u{1}auth=Bearer \(token.unredacted)\u{1}\u{1}".utf8).base64EncodedString()
        var session = SMTPClientSession(
            configuration: configuration(tls: .implicit, .xoauth2(username: mailbox, accessToken: token)))
        _ = session.replyReceived(reply("220 x\r\n"))
        let action = session.replyReceived(reply("250-mx\r\n250 AUTH XOAUTH2\r\n"))
        guard case .send(_, let bytes) = action else {
            Issue.record("expected AUTH")
            return
        }
        #expect(String(buffer: bytes).contains(base64Token), "the wire has the credential")
        var texts = ["\(action)", String(reflecting: action), "\(session.configuration)", String(reflecting: session)]
        var dumped = ""
        dump(session.configuration, to: &dumped)
        texts.append(dumped)
        for text in texts {
            #expect(!text.contains(token.unredacted))
            #expect(!text.contains(base64Token))
            #expect(!text.contains(String(base64Token.prefix(40))))
        }
    }
}
