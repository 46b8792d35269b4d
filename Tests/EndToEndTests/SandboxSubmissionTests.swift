import Foundation
import Logging
import M365Sandbox
import NIOPosix
import RelayTestSupport
import Testing

// The sandbox's SMTP AUTH submission endpoint, seen through a real client
// (python's smtplib and ssl), against ../shared/M365.md: what EHLO offers
// before and after STARTTLS, the exact replies to AUTH, MAIL without AUTH and
// a delivered message, and what the sandbox stores.

/// One SMTP reply as python's smtplib saw it: the code and the text after it.
struct SandboxReply: Decodable, Sendable, CustomStringConvertible {
    var code: Int
    var text: String

    /// The enhanced status code that begins the text (RFC 3463), e.g. `5.7.57`.
    var enhanced: String { String(text.prefix { $0 != " " && $0 != "\n" }) }
    /// Code and enhanced code, the part of a reply M365.md pins: `530 5.7.57`.
    var status: String { "\(code) \(enhanced)" }
    var description: String { "\(code) \(text)" }
}

/// A sandbox listening on 127.0.0.1 (port 0) with its data in a temporary directory.
final class SandboxSubmissionEndpoint: @unchecked Sendable {
    static let hostname = "sandbox.outlook.office365.com"

    let directory: TemporaryDirectory
    let sandbox: M365Sandbox
    let port: Int

    private init(directory: TemporaryDirectory, sandbox: M365Sandbox, port: Int) {
        self.directory = directory
        self.sandbox = sandbox
        self.port = port
    }

    /// Starts a sandbox, runs `body`, and shuts the sandbox down whatever happens.
    static func with(
        _ configure: (inout M365SandboxConfiguration) -> Void,
        _ body: (SandboxSubmissionEndpoint) async throws -> Void
    ) async throws {
        let directory = TemporaryDirectory("sandbox-submission")
        var configuration = M365SandboxConfiguration(dataDirectory: directory.file("sandbox"))
        configuration.hostname = hostname
        configure(&configuration)
        var logger = Logger(label: "sandbox")
        logger.logLevel = .warning
        let sandbox = try M365Sandbox(
            configuration: configuration, smtp: ("127.0.0.1", 0), group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let port = try await sandbox.start()
        let endpoint = SandboxSubmissionEndpoint(directory: directory, sandbox: sandbox, port: port)
        do {
            try await body(endpoint)
        } catch {
            await sandbox.shutdown()
            throw error
        }
        await sandbox.shutdown()
    }

    /// Runs `script` after ``sandboxPythonPrelude`` and decodes the JSON it printed last.
    ///
    /// The script sees `args` (the JSON given here plus `port` and `cafile`).
    func python<Result: Decodable>(_ script: String, _ arguments: [String: Any] = [:], as: Result.Type) async throws -> Result {
        var arguments = arguments
        arguments["port"] = port
        arguments["cafile"] = sandbox.caFile
        let json = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
        let run = try await ExternalProcess.python(sandboxPythonPrelude + script, [json], timeout: 120)
        guard run.status == 0, let line = run.stdout.split(separator: "\n").last else {
            Issue.record("python failed (\(run.status)); stdout: \(run.stdout); stderr: \(run.stderr)")
            throw CocoaError(.executableLoad)
        }
        do {
            return try JSONDecoder().decode(Result.self, from: Data(line.utf8))
        } catch {
            Issue.record("python printed \(line); stderr: \(run.stderr)")
            throw error
        }
    }

    /// Names left in the store's directory: a refused message must leave neither `.eml` nor `.tmp`.
    func storedFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: sandbox.mailStore.directory).sorted()
    }
}

/// Helpers every script starts with: connecting, STARTTLS with the sandbox's
/// CA, XOAUTH2 and LOGIN, and replies as `{"code": ..., "text": ...}`.
let sandboxPythonPrelude = #"""
import base64, json, smtplib, socket, ssl, sys, time
args = json.loads(sys.argv[1])
HOST = "127.0.0.1"

def reply(pair):
    code, text = pair
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return {"code": code, "text": text}

def connect():
    s = smtplib.SMTP(timeout=60)
    greeting = reply(s.connect(HOST, args["port"]))
    s._host = HOST  # the name STARTTLS verifies; only SMTP(host) sets it
    return s, greeting

def tls_context():
    return ssl.create_default_context(cafile=args["cafile"])

def secure():
    s, _ = connect()
    s.ehlo("client.test")
    s.starttls(context=tls_context())
    s.ehlo("client.test")
    return s

def xoauth2(s, user, token):
    raw = "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)
    return reply(s.docmd("AUTH", "XOAUTH2 " + base64.b64encode(raw.encode()).decode()))

def login(s, user, password):
    s.user, s.password = user, password
    try:
        return reply(s.auth("LOGIN", s.auth_login))
    except smtplib.SMTPAuthenticationError as e:
        return reply((e.smtp_code, e.smtp_error))

def data(s, content):
    try:
        return reply(s.data(content))
    except smtplib.SMTPDataError as e:
        return reply((e.smtp_code, e.smtp_error))

def close(s):
    try:
        s.quit()
    except Exception:
        pass

def done(result):
    print(json.dumps(result))

"""#

/// alice has a token and a password; bob only a token.
func sandboxTestMailboxes(_ configuration: inout M365SandboxConfiguration) {
    configuration.mailboxes = [
        .init(address: "alice@contoso.com", tokens: ["alice-token"], password: "alice-password"),
        .init(address: "bob@contoso.com", tokens: ["bob-token"]),
    ]
}

@Suite("Sandbox submission endpoint, seen by python smtplib")
struct SandboxSubmissionTests {
    private struct Handshake: Decodable {
        var greeting: SandboxReply
        var ehloBefore: SandboxReply
        var featuresBefore: [String: String]
        var xoauth2Before: SandboxReply
        var loginBefore: SandboxReply
        var startTLS: SandboxReply
        var tlsVersion: String
        var ehloAfter: SandboxReply
        var featuresAfter: [String: String]
        var localhostVerified: Bool
        var wrongNameRefused: String?
    }

    /// STARTTLS, and only then AUTH LOGIN XOAUTH2; AUTH on plaintext is `504 5.7.4`.
    @Test func ehloOffersStartTLSThenAuthAndRefusesAuthBeforeTLS() async throws {
        try await SandboxSubmissionEndpoint.with(sandboxTestMailboxes) { endpoint in
            let result = try await endpoint.python(#"""
                s, greeting = connect()
                ehlo_before = reply(s.ehlo("client.test"))
                features_before = dict(s.esmtp_features)
                xoauth2_before = xoauth2(s, "alice@contoso.com", "alice-token")
                login_before = reply(s.docmd("AUTH", "LOGIN"))
                start = reply(s.starttls(context=tls_context()))
                version = s.sock.version()
                ehlo_after = reply(s.ehlo("client.test"))
                features_after = dict(s.esmtp_features)
                close(s)

                # The certificate also verifies for the name "localhost" (the
                # connection still goes to 127.0.0.1), and verification is real:
                # a name the certificate does not carry is refused.
                def verify(name):
                    s, _ = connect()
                    s._host = name
                    s.ehlo("client.test")
                    try:
                        s.starttls(context=tls_context())
                        close(s)
                        return None
                    except ssl.SSLCertVerificationError as e:
                        return e.verify_message
                localhost = verify("localhost") is None
                wrong = verify("mail.example.net")
                done({"greeting": greeting, "ehloBefore": ehlo_before, "featuresBefore": features_before,
                      "xoauth2Before": xoauth2_before, "loginBefore": login_before, "startTLS": start,
                      "tlsVersion": version, "ehloAfter": ehlo_after, "featuresAfter": features_after,
                      "localhostVerified": localhost, "wrongNameRefused": wrong})
                """#, as: Handshake.self)

            #expect(result.greeting.code == 220)
            #expect(result.greeting.text.hasPrefix(SandboxSubmissionEndpoint.hostname + " "), "\(result.greeting)")

            #expect(result.ehloBefore.code == 250)
            #expect(result.ehloBefore.text.hasPrefix("\(SandboxSubmissionEndpoint.hostname) Hello client.test [127.0.0.1]"), "\(result.ehloBefore)")
            #expect(result.featuresBefore["starttls"] != nil, "\(result.featuresBefore)")
            #expect(result.featuresBefore["auth"] == nil, "no AUTH before TLS: \(result.featuresBefore)")
            #expect(result.featuresBefore["size"] == String(35 * 1024 * 1024))
            for keyword in ["pipelining", "enhancedstatuscodes", "8bitmime", "smtputf8", "chunking"] {
                #expect(result.featuresBefore[keyword] != nil, "\(keyword) missing: \(result.featuresBefore)")
            }

            #expect(result.xoauth2Before.status == "504 5.7.4", "\(result.xoauth2Before)")
            #expect(result.xoauth2Before.text == "5.7.4 Unrecognized authentication type")
            #expect(result.loginBefore.status == "504 5.7.4", "\(result.loginBefore)")

            #expect(result.startTLS.status == "220 2.0.0", "\(result.startTLS)")
            #expect(["TLSv1.2", "TLSv1.3"].contains(result.tlsVersion))

            #expect(result.ehloAfter.code == 250)
            // smtplib keeps AUTH's parameters with a leading space.
            #expect(result.featuresAfter["auth"]?.trimmingCharacters(in: .whitespaces) == "LOGIN XOAUTH2", "\(result.featuresAfter)")
            #expect(result.featuresAfter["starttls"] == nil, "STARTTLS offered over TLS: \(result.featuresAfter)")
            #expect(result.featuresAfter["size"] == String(35 * 1024 * 1024))

            #expect(result.localhostVerified)
            #expect(result.wrongNameRefused != nil, "a certificate for the wrong name was accepted")
        }
    }

    private struct AnonymousMail: Decodable {
        var mail: SandboxReply
        var rcpt: SandboxReply
        var auth: SandboxReply
        var mailAfterAuth: SandboxReply
    }

    /// MAIL FROM over TLS without AUTH: `530 5.7.57`; the same connection may then AUTH and send.
    @Test func mailWithoutAuthIsRefused() async throws {
        try await SandboxSubmissionEndpoint.with(sandboxTestMailboxes) { endpoint in
            let result = try await endpoint.python(#"""
                s = secure()
                mail = reply(s.mail("alice@contoso.com"))
                rcpt = reply(s.rcpt("someone@fabrikam.com"))
                auth = xoauth2(s, "alice@contoso.com", "alice-token")
                after = reply(s.mail("alice@contoso.com"))
                close(s)
                done({"mail": mail, "rcpt": rcpt, "auth": auth, "mailAfterAuth": after})
                """#, as: AnonymousMail.self)

            #expect(result.mail.status == "530 5.7.57", "\(result.mail)")
            #expect(result.mail.text == "5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM")
            #expect(result.rcpt.code == 503, "RCPT without an accepted MAIL: \(result.rcpt)")
            #expect(result.auth.status == "235 2.7.0", "\(result.auth)")
            #expect(result.mailAfterAuth.status == "250 2.1.0", "\(result.mailAfterAuth)")
            #expect(try endpoint.sandbox.mailStore.messages().isEmpty)
        }
    }

    private struct AuthAttempt: Decodable {
        var auth: SandboxReply
        /// MAIL FROM after a successful AUTH, to show the session is authenticated.
        var mail: SandboxReply?
    }

    /// One AUTH per connection, exactly as a client would send it.
    private static let authScript = #"""
        results = []
        for case in args["cases"]:
            s = secure()
            if case["mechanism"] == "XOAUTH2":
                auth = xoauth2(s, case["user"], case["secret"])
            elif case["mechanism"] == "LOGIN":
                auth = login(s, case["user"], case["secret"])
            else:
                # RAW: the AUTH arguments as given, e.g. a mechanism the endpoint does not offer.
                auth = reply(s.docmd("AUTH", case["secret"]))
            mail = reply(s.mail(case["user"])) if auth["code"] == 235 else None
            close(s)
            results.append({"auth": auth, "mail": mail})
        done(results)
        """#

    /// (mechanism, user, secret, expected status)
    private static let authCases: [(String, String, String, String)] = [
        ("XOAUTH2", "alice@contoso.com", "alice-token", "235 2.7.0"),
        ("XOAUTH2", "ALICE@Contoso.com", "alice-token", "235 2.7.0"),
        ("XOAUTH2", "alice@contoso.com", "wrong-token", "535 5.7.3"),
        ("XOAUTH2", "bob@contoso.com", "alice-token", "535 5.7.3"),
        ("XOAUTH2", "nobody@contoso.com", "alice-token", "535 5.7.3"),
        ("XOAUTH2", "carol@contoso.com", "tenant-token", "235 2.7.0"),
        ("LOGIN", "alice@contoso.com", "alice-password", "235 2.7.0"),
        ("LOGIN", "alice@contoso.com", "wrong-password", "535 5.7.3"),
        ("LOGIN", "alice@contoso.com", "alice-token", "535 5.7.3"),
        ("LOGIN", "bob@contoso.com", "bob-token", "535 5.7.3"),
        ("XOAUTH2", "alice@contoso.com", "alice-token trailing", "535 5.7.3"),
        ("RAW", "alice@contoso.com", "XOAUTH2 !!not-base64!!", "535 5.7.3"),
        ("RAW", "alice@contoso.com", "PLAIN AGFsaWNlQGNvbnRvc28uY29tAGFsaWNlLXBhc3N3b3Jk", "504 5.7.4"),
    ]

    /// XOAUTH2 with the mailbox's token and LOGIN with its password: `235 2.7.0`; anything else `535 5.7.3`.
    @Test func authenticationRepliesAsMicrosoftDoes() async throws {
        try await SandboxSubmissionEndpoint.with({
            sandboxTestMailboxes(&$0)
            $0.anyMailboxToken = "tenant-token"
        }) { endpoint in
            let cases = Self.authCases.map { ["mechanism": $0.0, "user": $0.1, "secret": $0.2] }
            let results = try await endpoint.python(Self.authScript, ["cases": cases], as: [AuthAttempt].self)
            try #require(results.count == Self.authCases.count)
            for (attempt, (mechanism, user, secret, expected)) in zip(results, Self.authCases) {
                let label = "AUTH \(mechanism) \(user) \(secret)"
                #expect(attempt.auth.status == expected, "\(label): \(attempt.auth)")
                switch expected {
                case "235 2.7.0":
                    #expect(attempt.auth.text == "2.7.0 Authentication successful", "\(label)")
                    #expect(attempt.mail?.status == "250 2.1.0", "\(label): MAIL after AUTH \(String(describing: attempt.mail))")
                case "535 5.7.3":
                    #expect(attempt.auth.text == "5.7.3 Authentication unsuccessful", "\(label)")
                default:
                    break
                }
            }
        }
    }

    private struct RetriedAuth: Decodable {
        var failed: SandboxReply
        var succeeded: SandboxReply
    }

    /// A failed AUTH leaves the connection usable: the client may try again.
    @Test func authenticationCanBeRetriedOnTheSameConnection() async throws {
        try await SandboxSubmissionEndpoint.with(sandboxTestMailboxes) { endpoint in
            let result = try await endpoint.python(#"""
                s = secure()
                failed = xoauth2(s, "alice@contoso.com", "expired-token")
                succeeded = xoauth2(s, "alice@contoso.com", "alice-token")
                close(s)
                done({"failed": failed, "succeeded": succeeded})
                """#, as: RetriedAuth.self)
            #expect(result.failed.status == "535 5.7.3", "\(result.failed)")
            #expect(result.succeeded.status == "235 2.7.0", "\(result.succeeded)")
        }
    }

    private struct Delivery: Decodable {
        var mail: SandboxReply
        var rcpts: [SandboxReply]
        var data: SandboxReply
        var secondData: SandboxReply
    }

    /// A message with dot-stuffed lines, a body line `QUIT`, 8-bit text and lines
    /// of 998 octets, large enough to arrive in many reads.
    private static func awkwardMessage(messageID: String?) -> [UInt8] {
        var text = "From: Alice <alice@contoso.com>\r\nTo: Fabrikam <x@fabrikam.com>, y@fabrikam.com\r\n"
        text += "Subject: a subject folded\r\n\tover two lines\r\n"
        if let messageID { text += "Message-ID: \(messageID)\r\n" }
        text += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        text += ".a line that starts with a dot\r\n..two dots\r\n.\r\n..\r\nQUIT\r\nRSET\r\n\r\n"
        text += "Grüße aus Zürich, 東京\r\n"
        for n in 0..<120 {
            let prefix = "\(n) "
            text += prefix + String(repeating: n % 7 == 0 ? "." : "x", count: 998 - prefix.utf8.count) + "\r\n"
        }
        text += ".\r\n" + "end\r\n"
        return Array(text.utf8)
    }

    /// `250 2.0.0 OK <message-id> [Hostname=...]`; the .eml holds exactly the bytes sent, the .json the envelope.
    @Test func acceptedMessageIsStoredByteForByte() async throws {
        try await SandboxSubmissionEndpoint.with(sandboxTestMailboxes) { endpoint in
            let messageID = "<sandbox-submission-1@client.test>"
            let first = Self.awkwardMessage(messageID: messageID)
            let second = Self.awkwardMessage(messageID: nil)
            let firstFile = endpoint.directory.file("first.eml"), secondFile = endpoint.directory.file("second.eml")
            try Data(first).write(to: URL(fileURLWithPath: firstFile))
            try Data(second).write(to: URL(fileURLWithPath: secondFile))

            let result = try await endpoint.python(#"""
                s = secure()
                xoauth2(s, "alice@contoso.com", "alice-token")
                mail = reply(s.mail("alice@contoso.com", ["BODY=8BITMIME"]))
                rcpts = [reply(s.rcpt(r)) for r in ["x@fabrikam.com", "y@fabrikam.com"]]
                with open(args["first"], "rb") as f:
                    sent = data(s, f.read())
                s.mail("alice@contoso.com", ["BODY=8BITMIME"])
                s.rcpt("z@fabrikam.com")
                with open(args["second"], "rb") as f:
                    second = data(s, f.read())
                close(s)
                done({"mail": mail, "rcpts": rcpts, "data": sent, "secondData": second})
                """#, ["first": firstFile, "second": secondFile], as: Delivery.self)

            #expect(result.mail.status == "250 2.1.0", "\(result.mail)")
            #expect(result.rcpts.map(\.status) == ["250 2.1.5", "250 2.1.5"], "\(result.rcpts)")
            #expect(result.data.code == 250, "\(result.data)")
            #expect(result.data.text == "2.0.0 OK \(messageID) [Hostname=\(SandboxSubmissionEndpoint.hostname)]")

            let store = endpoint.sandbox.mailStore
            let messages = try store.messages()
            try #require(messages.count == 2, "\(messages)")
            let stored = try #require(messages.first { $0.messageID == messageID })
            #expect(try store.content(of: stored) == Data(first), "the stored .eml differs from what was sent")
            #expect(stored.mailbox == "alice@contoso.com")
            #expect(stored.sender == "alice@contoso.com")
            #expect(stored.recipients == ["x@fabrikam.com", "y@fabrikam.com"])
            #expect(stored.size == first.count)
            #expect(["TLSv1.2", "TLSv1.3"].contains(stored.tlsVersion ?? ""), "\(String(describing: stored.tlsVersion))")

            // The files themselves, as a person would read them.
            let json = try Data(contentsOf: URL(fileURLWithPath: store.directory + "/\(stored.id).json"))
            let record = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
            #expect(record["mailbox"] as? String == "alice@contoso.com")
            #expect(record["sender"] as? String == "alice@contoso.com")
            #expect(record["recipients"] as? [String] == ["x@fabrikam.com", "y@fabrikam.com"])
            #expect(try Data(contentsOf: URL(fileURLWithPath: store.directory + "/\(stored.id).eml")) == Data(first))

            // Without a Message-ID the reply carries the id the sandbox made up, and the record agrees.
            #expect(result.secondData.code == 250, "\(result.secondData)")
            let other = try #require(messages.first { $0.messageID != messageID })
            #expect(result.secondData.text == "2.0.0 OK \(other.messageID) [Hostname=\(SandboxSubmissionEndpoint.hostname)]")
            #expect(other.messageID.hasPrefix("<") && other.messageID.hasSuffix("@\(SandboxSubmissionEndpoint.hostname)>"), "\(other.messageID)")
            #expect(other.recipients == ["z@fabrikam.com"])
            #expect(try store.content(of: other) == Data(second))
            let files = try endpoint.storedFiles()
            #expect(!files.contains { $0.hasSuffix(".tmp") }, "\(files)")
        }
    }

    private struct UnknownRecipients: Decodable {
        var ghost: SandboxReply
        var ghostUpper: SandboxReply
        var known: SandboxReply
        var data: SandboxReply
        var onlyGhosts: SandboxReply
    }

    /// A recipient the tenant does not know: RCPT `550 5.1.10`; the others still get the message.
    @Test func unknownRecipientIsRefusedAtRcpt() async throws {
        try await SandboxSubmissionEndpoint.with({
            sandboxTestMailboxes(&$0)
            $0.unknownRecipients = ["Ghost@contoso.com"]
        }) { endpoint in
            let result = try await endpoint.python(#"""
                s = secure()
                xoauth2(s, "alice@contoso.com", "alice-token")
                s.mail("alice@contoso.com")
                ghost = reply(s.rcpt("ghost@contoso.com"))
                ghost_upper = reply(s.rcpt("GHOST@CONTOSO.COM"))
                known = reply(s.rcpt("real@contoso.com"))
                sent = data(s, b"From: alice@contoso.com\r\nTo: real@contoso.com, ghost@contoso.com\r\nSubject: hi\r\n\r\nhello\r\n")
                s.mail("alice@contoso.com")
                s.rcpt("ghost@contoso.com")
                only = data(s, b"From: alice@contoso.com\r\nSubject: nobody\r\n\r\nhello\r\n")
                close(s)
                done({"ghost": ghost, "ghostUpper": ghost_upper, "known": known, "data": sent, "onlyGhosts": only})
                """#, as: UnknownRecipients.self)

            #expect(result.ghost.status == "550 5.1.10", "\(result.ghost)")
            #expect(result.ghost.text.contains("RESOLVER.ADR.RecipientNotFound"), "\(result.ghost)")
            #expect(result.ghostUpper.status == "550 5.1.10", "addresses compare case-insensitively: \(result.ghostUpper)")
            #expect(result.known.status == "250 2.1.5", "\(result.known)")
            #expect(result.data.status == "250 2.0.0", "\(result.data)")
            #expect(result.onlyGhosts.code == 554, "DATA with no accepted recipient: \(result.onlyGhosts)")

            let messages = try endpoint.sandbox.mailStore.messages()
            #expect(messages.map(\.recipients) == [["real@contoso.com"]], "\(messages)")
        }
    }
}
