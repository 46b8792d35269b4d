import NIOCore
import SMTPCore
import Testing

private let alice = SMTPMailbox(localPart: "alice", domain: "contoso.com")
private let bob = SMTPMailbox(localPart: "bob", domain: "example.org")

private func wire(_ command: SMTPClientCommand) throws(SMTPClientError) -> String {
    var buffer = ByteBuffer()
    try command.encode(into: &buffer)
    return String(buffer: buffer)
}

private func parameters(size: Int? = nil, eightBit: Bool = false, binary: Bool = false, utf8: Bool = false) -> SMTPMailParameters {
    var parameters = SMTPMailParameters()
    parameters.size = size
    parameters.body8Bit = eightBit || binary
    parameters.binaryMIME = binary
    parameters.smtpUTF8 = utf8
    return parameters
}

@Suite("SMTP client commands")
struct ClientCommandTests {
    @Test(arguments: [
        (SMTPClientCommand.ehlo("relay.contoso.com"), "EHLO relay.contoso.com\r\n"),
        (.ehlo("[192.0.2.1]"), "EHLO [192.0.2.1]\r\n"),
        (.helo("relay.contoso.com"), "HELO relay.contoso.com\r\n"),
        (.startTLS, "STARTTLS\r\n"),
        (.auth(mechanism: "LOGIN"), "AUTH LOGIN\r\n"),
        (.auth(mechanism: "PLAIN", initialResponse: "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n"),
        // RFC 4954 §4: an empty initial response is sent as "=".
        (.auth(mechanism: "EXTERNAL", initialResponse: ""), "AUTH EXTERNAL =\r\n"),
        (.authResponse("dXNlcg=="), "dXNlcg==\r\n"),
        (.authResponse(""), "\r\n"),
        (.authResponse("*"), "*\r\n"),
        (.mail(from: .mailbox(alice)), "MAIL FROM:<alice@contoso.com>\r\n"),
        (.mail(from: .null), "MAIL FROM:<>\r\n"),
        (.mail(from: .mailbox(alice), parameters: parameters(size: 1234)), "MAIL FROM:<alice@contoso.com> SIZE=1234\r\n"),
        (.mail(from: .mailbox(alice), parameters: parameters(size: 9, eightBit: true, utf8: true)),
         "MAIL FROM:<alice@contoso.com> SIZE=9 BODY=8BITMIME SMTPUTF8\r\n"),
        (.mail(from: .mailbox(alice), parameters: parameters(binary: true)), "MAIL FROM:<alice@contoso.com> BODY=BINARYMIME\r\n"),
        (.rcpt(to: bob), "RCPT TO:<bob@example.org>\r\n"),
        (.rcpt(to: SMTPMailbox(localPart: "j\u{F6}rg", domain: "b\u{FC}cher.example")), "RCPT TO:<j\u{F6}rg@b\u{FC}cher.example>\r\n"),
        (.data, "DATA\r\n"),
        (.bdat(size: 1000, last: false), "BDAT 1000\r\n"),
        (.bdat(size: 0, last: true), "BDAT 0 LAST\r\n"),
        (.rset, "RSET\r\n"),
        (.noop, "NOOP\r\n"),
        (.quit, "QUIT\r\n"),
    ])
    func encodes(_ command: SMTPClientCommand, _ expected: String) throws {
        #expect(try wire(command) == expected)
    }

    /// Nothing may end the command line early or smuggle a second command.
    @Test(arguments: [
        SMTPClientCommand.ehlo("relay\r\nRSET"),
        .ehlo("relay\nx"),
        .ehlo("two words"),
        .ehlo(""),
        .helo("a\rb"),
        .auth(mechanism: "PLAIN\r\nRSET"),
        .auth(mechanism: "plain"),
        .auth(mechanism: "A-VERY-LONG-MECHANISM-NAME"),
        .auth(mechanism: "PLAIN", initialResponse: "abc\r\nRSET"),
        .auth(mechanism: "PLAIN", initialResponse: "abc def"),
        .authResponse("abc\r\nQUIT"),
        .mail(from: .mailbox(SMTPMailbox(localPart: "a\r\nRCPT TO:<x", domain: "y.example"))),
        .mail(from: .mailbox(alice), parameters: parameters(size: -1)),
        .rcpt(to: SMTPMailbox(localPart: "b", domain: "example.org>\r\nDATA")),
        .rcpt(to: SMTPMailbox(localPart: "b\u{0}", domain: "example.org")),
        .rcpt(to: SMTPMailbox(localPart: "", domain: "example.org")),
        .bdat(size: -1, last: true),
    ])
    func refusesArgumentsThatBreakTheLine(_ command: SMTPClientCommand) {
        #expect(throws: SMTPClientError.self) { try wire(command) }
        do {
            _ = try wire(command)
        } catch {
            #expect(error.code == .invalidArgument)
        }
    }

    @Test func pipelinedGroupIsOneBuffer() throws {
        let buffer = try SMTPClientCommand.encode([.mail(from: .mailbox(alice)), .rcpt(to: bob), .data])
        #expect(String(buffer: buffer) == "MAIL FROM:<alice@contoso.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    }

    @Test func descriptionRedactsCredentials() {
        let secret: SASLSecret = "dXNlcj1hbGljZQFhdXRoPUJlYXJlciBzM2NyM3QBAQ=="
        let commands: [SMTPClientCommand] = [.auth(mechanism: "XOAUTH2", initialResponse: secret), .authResponse(secret)]
        for command in commands {
            #expect(!"\(command)".contains(secret.unredacted))
            #expect(!String(reflecting: command).contains(secret.unredacted))
            var dumped = ""
            dump(command, to: &dumped)
            #expect(!dumped.contains(secret.unredacted))
        }
        #expect("\(SMTPClientCommand.auth(mechanism: "XOAUTH2", initialResponse: secret))" == "AUTH XOAUTH2 <redacted>")
        #expect("\(SMTPClientCommand.rcpt(to: bob))" == "RCPT TO:<bob@example.org>")
    }
}
