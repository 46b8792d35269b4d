import Foundation
import SMTPCore
import Testing

private func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
private func base64(_ text: String) -> String { base64(Array(text.utf8)) }

/// Throws the SASL error code of `body`, or nil when it did not throw.
private func saslErrorCode<T>(_ body: () throws(SASLError) -> T) -> SASLError.Code? {
    do {
        _ = try body()
        return nil
    } catch {
        return error.code
    }
}

@Suite("SASL PLAIN")
struct SASLPlainTests {
    /// RFC 4616 §4 example: no authzid, authcid `tim`, password `tanstaaftanstaaf`.
    @Test func rfc4616Example() throws {
        let response = try SASLPlain.initialResponse(SASLPlainCredentials(username: "tim", password: "tanstaaftanstaaf"))
        #expect(response.unredacted == "AHRpbQB0YW5zdGFhZnRhbnN0YWFm")
        let decoded = try SASLPlain.decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm")
        #expect(decoded.authorizationIdentity == "")
        #expect(decoded.username == "tim")
        #expect(decoded.password == "tanstaaftanstaaf")
    }

    @Test(arguments: [
        SASLPlainCredentials(username: "scanner@contoso.com", password: "p@ss word"),
        SASLPlainCredentials(authorizationIdentity: "Ursel", username: "Kurt", password: "xipj3plmq"),
        SASLPlainCredentials(username: "j\u{F6}rg@b\u{FC}cher.example", password: "\u{1F511}\u{00E9}"),
        SASLPlainCredentials(username: "u", password: SASLSecret(String(repeating: "p", count: 255))),
    ])
    func roundTrip(_ credentials: SASLPlainCredentials) throws {
        let response = try SASLPlain.initialResponse(credentials)
        #expect(try SASLPlain.decode(response.unredacted) == credentials)
    }

    @Test(arguments: [
        ("not base64!", SASLError.Code.invalidBase64),
        ("AH RpbQ==", .invalidBase64),
        ("A", .invalidBase64),
        ("*", .cancelled),
        ("=", .malformedMessage),
        (base64("tim"), .malformedMessage),
        (base64("\u{0}tim"), .malformedMessage),
        (base64("\u{0}tim\u{0}pw\u{0}extra"), .malformedMessage),
        (base64("\u{0}\u{0}pw"), .emptyUsername),
        (base64("\u{0}tim\u{0}"), .emptySecret),
        (base64([0, 0x74, 0, 0xFF, 0xFE]), .invalidUTF8),
        (base64("\u{0}" + String(repeating: "u", count: 256) + "\u{0}pw"), .fieldTooLong),
    ])
    func refusesMalformed(_ response: String, _ code: SASLError.Code) {
        #expect(saslErrorCode { () throws(SASLError) in try SASLPlain.decode(response) } == code)
    }

    /// Some embedded clients drop the `=` padding; the content is still unambiguous.
    @Test func toleratesMissingPadding() throws {
        let padded = base64("\u{0}tim\u{0}pw")
        #expect(padded.hasSuffix("="))
        let unpadded = String(padded.prefix(while: { $0 != "=" }))
        #expect(try SASLPlain.decode(unpadded).username == "tim")
    }

    @Test(arguments: [
        (SASLPlainCredentials(username: "", password: "x"), SASLError.Code.emptyUsername),
        (SASLPlainCredentials(username: "x", password: ""), .emptySecret),
        (SASLPlainCredentials(username: "a\u{0}b", password: "x"), .forbiddenCharacter),
        (SASLPlainCredentials(username: "x", password: "a\u{0}b"), .forbiddenCharacter),
        (SASLPlainCredentials(username: "x", password: SASLSecret(String(repeating: "p", count: 256))), .fieldTooLong),
    ])
    func refusesToEncodeBadCredentials(_ credentials: SASLPlainCredentials, _ code: SASLError.Code) {
        #expect(saslErrorCode { () throws(SASLError) in try SASLPlain.initialResponse(credentials) } == code)
    }
}

@Suite("SASL LOGIN")
struct SASLLoginTests {
    @Test func challengesAreUsernameAndPassword() {
        #expect(Data(base64Encoded: SASLLogin.usernameChallenge) == Data("Username:".utf8))
        #expect(Data(base64Encoded: SASLLogin.passwordChallenge) == Data("Password:".utf8))
    }

    @Test(arguments: [("scanner@contoso.com", "s3cr3t"), ("j\u{F6}rg", "p\u{E4}ss w\u{F6}rd")])
    func roundTrip(_ username: String, _ password: String) throws {
        let usernameLine = try SASLLogin.usernameResponse(username)
        let passwordLine = try SASLLogin.passwordResponse(SASLSecret(password))
        #expect(usernameLine == base64(username))
        #expect(try SASLLogin.decodeUsername(usernameLine) == username)
        #expect(try SASLLogin.decodePassword(passwordLine.unredacted) == SASLSecret(password))
    }

    @Test(arguments: [
        ("*", SASLError.Code.cancelled),
        ("=", .emptyUsername),
        ("%%%", .invalidBase64),
        (base64([0xC3]), .invalidUTF8),
        (base64("a\u{0}b"), .forbiddenCharacter),
        (base64(String(repeating: "u", count: 256)), .fieldTooLong),
    ])
    func refusesMalformedUsername(_ line: String, _ code: SASLError.Code) {
        #expect(saslErrorCode { () throws(SASLError) in try SASLLogin.decodeUsername(line) } == code)
    }

    @Test func refusesEmptyPassword() {
        #expect(saslErrorCode { () throws(SASLError) in try SASLLogin.decodePassword("=") } == .emptySecret)
        #expect(saslErrorCode { () throws(SASLError) in try SASLLogin.passwordResponse("") } == .emptySecret)
        #expect(saslErrorCode { () throws(SASLError) in try SASLLogin.usernameResponse("") } == .emptyUsername)
    }
}

@Suite("SASL XOAUTH2")
struct SASLXOAuth2Tests {
    /// Microsoft's documented example.
    @Test func microsoftExample() throws {
        let credentials = SASLXOAuth2Credentials(
            username: "test@contoso.onmicrosoft.com", accessToken: "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA")
        let response = try SASLXOAuth2.initialResponse(credentials)
        #expect(response.unredacted == """
            dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ==
            """)
        #expect(try SASLXOAuth2.decode(response.unredacted) == credentials)
    }

    @Test func ignoresUnknownFieldsAndSchemeCase() throws {
        let decoded = try SASLXOAuth2.decode(base64("user=a@b.example\u{1}host=x\u{1}auth=bearer tok.en-_~+/=\u{1}\u{1}"))
        #expect(decoded.username == "a@b.example")
        #expect(decoded.accessToken == "tok.en-_~+/=")
    }

    @Test(arguments: [
        (base64("user=a@b\u{1}auth=Bearer t\u{1}"), SASLError.Code.malformedMessage),
        (base64("user=a@b\u{1}auth=Bearer t"), .malformedMessage),
        (base64("auth=Bearer t\u{1}\u{1}"), .malformedMessage),
        (base64("user=a@b\u{1}\u{1}"), .malformedMessage),
        (base64("user=a@b\u{1}junk\u{1}auth=Bearer t\u{1}\u{1}"), .malformedMessage),
        (base64("user=a@b\u{1}user=c@d\u{1}auth=Bearer t\u{1}\u{1}"), .malformedMessage),
        (base64("user=a@b\u{1}auth=Basic dXNlcjpwYXNz\u{1}\u{1}"), .unsupportedScheme),
        (base64("user=a@b\u{1}auth=Bearer\u{1}\u{1}"), .unsupportedScheme),
        (base64("user=a@b\u{1}auth=Bearer \u{1}\u{1}"), .emptySecret),
        (base64("user=a@b\u{1}auth=Bearer t u\u{1}\u{1}"), .malformedMessage),
        (base64("user=\u{1}auth=Bearer t\u{1}\u{1}"), .emptyUsername),
        ("*", .cancelled),
        ("dXNl cj1h", .invalidBase64),
        ("", .malformedMessage),
    ])
    func refusesMalformed(_ response: String, _ code: SASLError.Code) {
        #expect(saslErrorCode { () throws(SASLError) in try SASLXOAuth2.decode(response) } == code)
    }

    @Test func refusesToEncodeSeparators() {
        let bad = [
            SASLXOAuth2Credentials(username: "a\u{1}b", accessToken: "t"),
            SASLXOAuth2Credentials(username: "a", accessToken: "t\u{1}auth=Bearer x"),
            SASLXOAuth2Credentials(username: "a", accessToken: "t\r\n"),
            SASLXOAuth2Credentials(username: "a", accessToken: "t u"),
        ]
        for credentials in bad {
            #expect(saslErrorCode { () throws(SASLError) in try SASLXOAuth2.initialResponse(credentials) } == .forbiddenCharacter)
        }
        #expect(saslErrorCode { () throws(SASLError) in
            try SASLXOAuth2.initialResponse(SASLXOAuth2Credentials(username: "a", accessToken: ""))
        } == .emptySecret)
    }

    @Test func errorChallengeRoundTrip() {
        let challenge = SASLXOAuth2ErrorChallenge(status: "401", schemes: "bearer", scope: "https://outlook.office365.com/.default")
        let encoded = SASLXOAuth2.errorChallenge(challenge)
        #expect(SASLXOAuth2.decodeErrorChallenge(encoded) == challenge)
        // Google's documented example challenge.
        let google = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K"
        #expect(SASLXOAuth2.decodeErrorChallenge(google)?.status == "401")
        #expect(SASLXOAuth2.decodeErrorChallenge(google)?.scope == "https://mail.google.com/")
        #expect(SASLXOAuth2.decodeErrorChallenge("not json") == nil)
        #expect(SASLXOAuth2.decodeErrorChallenge("") == nil)
    }
}

@Suite("SASL secrets stay secret")
struct SASLRedactionTests {
    private static let secret = "hunter2-very-secret"

    private static func renderings(_ value: Any) -> [String] {
        var dumped = ""
        dump(value, to: &dumped)
        return ["\(value)", String(reflecting: value), dumped]
    }

    @Test func secretRendersRedacted() {
        let value = SASLSecret(Self.secret)
        for text in Self.renderings(value) { #expect(!text.contains(Self.secret)) }
        #expect("\(value)" == "<redacted>")
        #expect(value.unredacted == Self.secret)
    }

    @Test func credentialsAndErrorsRenderWithoutSecrets() throws {
        let secret = SASLSecret(Self.secret)
        let plainResponse = try SASLPlain.initialResponse(SASLPlainCredentials(username: "u", password: secret))
        let values: [Any] = [
            SASLPlainCredentials(username: "u", password: secret),
            SASLXOAuth2Credentials(username: "u", accessToken: secret),
            SMTPClientAuthentication.plain(username: "u", password: secret),
            SMTPClientAuthentication.xoauth2(username: "u", accessToken: secret),
            plainResponse,
            SMTPClientCommand.auth(mechanism: "PLAIN", initialResponse: plainResponse),
        ]
        for value in values {
            for text in Self.renderings(value) {
                #expect(!text.contains(Self.secret))
                #expect(!text.contains(plainResponse.unredacted))
            }
        }
        // Decoding errors name the mechanism and the problem, not the input.
        do {
            _ = try SASLPlain.decode(base64("\u{0}\u{0}\(Self.secret)"))
            Issue.record("expected an error")
        } catch {
            for text in Self.renderings(error) { #expect(!text.contains(Self.secret)) }
            #expect(error.reply.code == 501)
        }
    }

    @Test(arguments: [
        (SASLError.Code.cancelled, 501, SMTPEnhancedStatus(5, 7, 0)),
        (.invalidBase64, 501, SMTPEnhancedStatus(5, 5, 2)),
        (.malformedMessage, 501, SMTPEnhancedStatus(5, 5, 4)),
    ])
    func errorReplies(_ code: SASLError.Code, _ replyCode: Int, _ enhanced: SMTPEnhancedStatus) {
        let reply = SASLError(code, mechanism: "PLAIN").reply
        #expect(reply.code == replyCode)
        #expect(reply.enhanced == enhanced)
    }
}
