import RelayTestSupport
import SMTPCore
import Testing

private func configuration(_ adjust: (inout SMTPServerSession.Configuration) -> Void = { _ in }) -> SMTPServerSession.Configuration {
    var configuration = SMTPServerSession.Configuration(hostname: "relay.test")
    configuration.limits.maxMessageSize = 10_000
    configuration.limits.maxRecipients = 3
    configuration.limits.maxErrors = 5
    adjust(&configuration)
    return configuration
}

/// Runs a transcript as a client would send it: the input is cut into
/// segments after each DATA (a client waits for the 354 there), and each
/// segment is fed whole, in every two- and three-way split, and byte by byte.
/// Asserts every run answers the same and returns the reference run.
private func run(_ input: String, _ adjust: (inout SMTPServerSession.Configuration) -> Void = { _ in }) async -> SMTPServerDriver {
    var segments: [[UInt8]] = []
    var rest = Substring(input)
    while let range = rest.range(of: "DATA\r\n") {
        segments.append(Array(rest[..<range.upperBound].utf8))
        rest = rest[range.upperBound...]
    }
    segments.append(Array(rest.utf8))

    var reference = SMTPServerDriver(configuration: configuration(adjust))
    for segment in segments { reference.feed(segment) }
    for (index, segment) in segments.enumerated() {
        for (number, chunks) in everyChunking(of: segment, maxSplits: segment.count <= 80 ? 2 : 1).enumerated() {
            // Thousands of runs: let the rest of the test process (relays in other suites) breathe.
            if number % 4 == 0 { await Task.yield() }
            var driver = SMTPServerDriver(configuration: configuration(adjust))
            for earlier in segments[..<index] { driver.feed(earlier) }
            for chunk in chunks { driver.feed(chunk) }
            for later in segments[(index + 1)...] { driver.feed(later) }
            #expect(driver.output == reference.output, "segment \(index) cut as \(chunks.map(\.count)) answered differently")
            #expect(driver.committed.map(\.content) == reference.committed.map(\.content))
        }
    }
    return reference
}

private let greeting = "220 relay.test ESMTP\r\n"

@Suite("SMTP server session transcripts")
struct ServerSessionTests {
    @Test func simpleMessageIsQueued() async {
        let driver = await run("EHLO client\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        #expect(driver.output == greeting + """
            250-relay.test Hello client\r
            250-SIZE 10000\r
            250-PIPELINING\r
            250-8BITMIME\r
            250-ENHANCEDSTATUSCODES\r
            250-SMTPUTF8\r
            250 CHUNKING\r
            250 2.1.0 Sender ok\r
            250 2.1.5 Recipient ok\r
            354 End data with <CR><LF>.<CR><LF>\r

            """)
        var d = driver
        _ = d.takeOutput()
        d.feed("Subject: hi\r\n\r\n..dot\r\nQUIT\r\n.\r\nQUIT\r\n")
        #expect(d.committed.count == 1)
        #expect(d.committed[0].content == "Subject: hi\r\n\r\n.dot\r\nQUIT\r\n")
        #expect(d.committed[0].envelope.sender.address == "a@example.com")
        #expect(d.committed[0].envelope.recipients.map(\.address) == ["b@example.com"])
        #expect(d.takeOutput() == "250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 Bye\r\n")
        #expect(d.closed)
    }

    @Test func wholeSessionInEveryChunking() async {
        let driver = await run("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        #expect(driver.output.hasSuffix("354 End data with <CR><LF>.<CR><LF>\r\n"))
        // The content part, chunked every way on its own.
        let content = "From: a@example.com\r\n\r\nline\r\n.\r\n"
        for (number, chunks) in everyChunking(of: Array(content.utf8)).enumerated() {
            if number % 4 == 0 { await Task.yield() }
            var d = driver
            for chunk in chunks { d.feed(chunk) }
            #expect(d.committed.map(\.content) == ["From: a@example.com\r\n\r\nline\r\n"])
        }
    }

    @Test func emptyMessage() async {
        let d = await run("HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n.\r\n")
        #expect(d.committed.map(\.content) == [""])
        #expect(d.committed.first?.envelope.sender == .null)
    }

    /// SMTP smuggling: none of these end the message; the content is refused at the real end.
    @Test(arguments: [
        "a\n.\nMAIL FROM:<x@evil.test>\n",
        "a\r.\rMAIL FROM:<x@evil.test>\r",
        "a\n.\r\nMAIL FROM:<x@evil.test>\r\n",
        "a\r\n.\nMAIL FROM:<x@evil.test>\r\n",
        "a\r\n.\r\r\nMAIL FROM:<x@evil.test>\r\n",
        "a\r\n\0.\r\nMAIL FROM:<x@evil.test>\r\n",
        "a\r\n.\0\r\nMAIL FROM:<x@evil.test>\r\n",
    ])
    func smugglingIsRefused(body: String) async {
        let d = await run("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" + body + "\r\n.\r\n")
        #expect(d.committed.isEmpty)
        #expect(!d.output.contains("Sender ok\r\n250 2.1.0"), "a smuggled MAIL FROM was taken as a command")
        let last = d.output.split(separator: "\r\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("550 5.6.11") || last.hasPrefix("554 5.6.0"), "got \(last)")
    }

    @Test func dataBeforeThe354IsNotContent() async {
        // Fed in one piece, the content arrives before the 354: refused and closed.
        var whole = SMTPServerDriver(configuration: configuration())
        whole.feed("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: early\r\n.\r\n")
        #expect(whole.committed.isEmpty)
        #expect(whole.closed)
        #expect(whole.output.contains("554 5.5.0"))
    }

    @Test func pipelinedCommandsAnswerInOrder() async {
        var d = SMTPServerDriver(configuration: configuration())
        d.feed("EHLO c\r\n")
        _ = d.takeOutput()
        d.feed("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<bad@@x>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
        #expect(d.takeOutput() == "250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n501 5.1.3 Bad recipient address syntax: invalid local part\r\n250 2.1.5 Recipient ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n")
    }

    @Test(arguments: [
        ("RCPT TO:<b@example.com>", "503 5.5.1"),
        ("DATA", "503 5.5.1"),
        ("FOO", "500 5.5.2"),
        ("MAIL FROM:<@route.test:a@example.com>", "501 5.1.0"),
        ("MAIL FROM:<a%b@example.com>", "501 5.1.7"),
        ("MAIL FROM:<a@[127.0.0.1]>", "501 5.1.7"),
        ("MAIL FROM:<a!b@example.com>", "501 5.1.7"),
        ("MAIL FROM:<a@example.com> FOO=1", "555 5.5.4"),
        ("MAIL FROM:<a@example.com> SIZE=20000", "552 5.3.4"),
        ("MAIL FROM:<é@example.com>", "553 5.6.7"),
        ("VRFY a", "252 2.5.0"),
        ("STARTTLS", "502 5.5.1"),
        ("AUTH PLAIN", "504 5.7.4"),
        ("EXPN list", "502 5.5.1"),
    ])
    func malformedOrOutOfOrderCommands(command: String, expected: String) async {
        let d = await run("EHLO c\r\n\(command)\r\n")
        let last = d.output.split(separator: "\r\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix(expected), "\(command) -> \(last)")
        #expect(!d.closed)
    }

    @Test func commandLineLimitAndBareLineFeed() async {
        let long = "NOOP " + String(repeating: "x", count: 600) + "\r\nNOOP\r\n"
        let d = await run(long)
        #expect(d.output == greeting + "500 5.5.6 Line too long\r\n250 2.0.0 Ok\r\n")
        let bare = await run("NOOP\nNOOP\r\nNOOP\r\n")
        #expect(bare.output == greeting + "500 5.5.2 Bare LF or CR is not allowed; lines end with CRLF\r\n250 2.0.0 Ok\r\n")
    }

    @Test func tooManyErrorsCloses() async {
        let d = await run(String(repeating: "JUNK\r\n", count: 6))
        #expect(d.closed)
        #expect(d.output.hasSuffix("500 5.5.2 Syntax error, command unrecognized\r\n421 4.7.0 Too many errors, closing connection\r\n"))
    }

    @Test func recipientLimit() async {
        let d = await run("EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<1@x.test>\r\nRCPT TO:<2@x.test>\r\nRCPT TO:<3@x.test>\r\nRCPT TO:<4@x.test>\r\n")
        #expect(d.output.hasSuffix("452 4.5.3 Too many recipients\r\n"))
    }

    @Test func oversizedDataIsRefusedAtTheEnd() async {
        let body = String(repeating: "0123456789012345678\r\n", count: 600)
        let d = await run("EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n" + body + ".\r\nNOOP\r\n")
        #expect(d.committed.isEmpty)
        #expect(d.output.hasSuffix("552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 Ok\r\n"))
    }

    @Test func longTextLineIsRefused() async {
        let d = await run("EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n" + String(repeating: "x", count: 1001) + "\r\n.\r\n")
        #expect(d.committed.isEmpty)
        #expect(d.output.hasSuffix("554 5.6.0 Message refused: a line is longer than 1000 octets\r\n"))
    }

    @Test func chunking() async {
        let d = await run("EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 4\r\nab\r\nBDAT 3 LAST\r\ncd\n")
        // "cd\n": a bare LF in BDAT content is refused like in DATA.
        #expect(d.committed.isEmpty)
        #expect(d.output.hasSuffix("250 2.0.0 4 octets received\r\n550 5.6.11 Message refused: bare LF or CR in content; lines must end with CRLF\r\n"))
        let ok = await run("EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 4\r\nab\r\nBDAT 4 LAST\r\ncd\r\nQUIT\r\n")
        #expect(ok.committed.map(\.content) == ["ab\r\ncd\r\n"])
        #expect(ok.output.hasSuffix("250 2.0.0 4 octets received\r\n250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 Bye\r\n"))
        let noTransaction = await run("EHLO c\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
        #expect(noTransaction.output.hasSuffix("503 5.5.1 Bad sequence of commands\r\n250 2.0.0 Ok\r\n"), "the BDAT octets must be read, not run as commands")
    }

    @Test func startTLSDiscardsPipelinedPlaintextAndResetsState() async {
        var d = SMTPServerDriver(configuration: configuration { $0.startTLSAvailable = true; $0.authMechanisms = ["PLAIN"] })
        d.feed("EHLO c\r\n")
        #expect(d.output.hasSuffix("250 STARTTLS\r\n"))
        #expect(!d.output.contains("AUTH"), "AUTH must not be offered before TLS")
        _ = d.takeOutput()
        d.feed("STARTTLS\r\nMAIL FROM:<injected@x.test>\r\n")
        #expect(d.takeOutput() == "220 2.0.0 Ready to start TLS\r\n")
        #expect(d.tlsRequested)
        d.completeTLS()
        d.feed("MAIL FROM:<a@x.test>\r\n")
        #expect(d.takeOutput() == "503 5.5.1 Send HELO or EHLO first\r\n", "state before TLS must be forgotten")
        d.feed("EHLO c\r\n")
        let ehlo = d.takeOutput()
        #expect(!ehlo.contains("STARTTLS"))
        #expect(ehlo.contains("250 AUTH PLAIN\r\n"))
    }

    @Test func requireTLSRefusesMail() async {
        let d = await run("EHLO c\r\nMAIL FROM:<a@x.test>\r\n") { $0.requireTLS = true; $0.startTLSAvailable = true }
        #expect(d.output.hasSuffix("530 5.7.0 Must issue a STARTTLS command first\r\n"))
    }

    @Test func authLoginExchange() async {
        var d = SMTPServerDriver(configuration: configuration {
            $0.authMechanisms = ["LOGIN", "XOAUTH2"]
            $0.allowPlaintextAuth = true
            $0.requireAuthentication = SMTPReply(530, .init(5, 7, 57), "Client was not authenticated to send anonymous mail during MAIL FROM")
        })
        d.acceptCredentials = { $0.mechanism == "LOGIN" && $0.responses == ["dXNlcg==", "cGFzcw=="] ? "user" : nil }
        d.feed("EHLO c\r\nMAIL FROM:<a@x.test>\r\n")
        #expect(d.takeOutput().hasSuffix("530 5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM\r\n"))
        d.feed("AUTH LOGIN\r\n")
        #expect(d.takeOutput() == "334 VXNlcm5hbWU6\r\n")
        d.feed("dXNlcg==\r\n")
        #expect(d.takeOutput() == "334 UGFzc3dvcmQ6\r\n")
        d.feed("cGFzcw==\r\nMAIL FROM:<a@x.test>\r\n")
        #expect(d.takeOutput() == "235 2.7.0 Authentication successful\r\n250 2.1.0 Sender ok\r\n")
        #expect(d.session.authenticatedIdentity == "user")
    }

    @Test func senderAndRecipientChecks() async {
        let d = await run("EHLO c\r\nMAIL FROM:<evil@x.test>\r\nMAIL FROM:<ok@x.test>\r\nRCPT TO:<far@y.test>\r\nRCPT TO:<near@x.test>\r\nDATA\r\n") {
            $0.senderCheck = { $0.address == "ok@x.test" ? nil : SMTPReply(550, .init(5, 7, 1), "Sender address not allowed for this client") }
            $0.recipientCheck = { $0.domain == "x.test" ? nil : SMTPReply(550, .init(5, 7, 1), "Recipient not allowed") }
        }
        let lines = d.output.split(separator: "\r\n").map(String.init).suffix(5)
        #expect(Array(lines) == [
            "550 5.7.1 Sender address not allowed for this client", "250 2.1.0 Sender ok",
            "550 5.7.1 Recipient not allowed", "250 2.1.5 Recipient ok", "354 End data with <CR><LF>.<CR><LF>",
        ])
    }

    @Test func refusedClientOnlyGetsQuit() async {
        let d = await run("EHLO c\r\nMAIL FROM:<a@x.test>\r\nQUIT\r\n") { $0.refusal = SMTPReply(554, .init(5, 7, 1), "Access denied") }
        #expect(d.output == "554 5.7.1 Access denied\r\n503 5.7.1 Access denied; only QUIT is accepted\r\n503 5.7.1 Access denied; only QUIT is accepted\r\n221 2.0.0 Bye\r\n")
    }

    @Test func shutdownAnswersIdleSessionsAndLetsDataFinish() async {
        var idle = SMTPServerDriver(configuration: configuration())
        idle.shutdown()
        #expect(idle.closed)
        #expect(idle.output.hasSuffix("421 4.3.2 Service shutting down, closing connection\r\n"))

        var busy = SMTPServerDriver(configuration: configuration())
        busy.feed("EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n")
        busy.feed("DATA\r\n")
        busy.feed("Subject: x\r\n")
        busy.shutdown()
        #expect(!busy.closed)
        busy.feed("\r\nbody\r\n.\r\n")
        #expect(busy.committed.count == 1)
        #expect(busy.closed)
        #expect(busy.output.hasSuffix("250 2.0.0 Ok: queued as Q1\r\n421 4.3.2 Service shutting down, closing connection\r\n"))
    }

    @Test func rsetAndHeloResetTheTransaction() async {
        let d = await run("EHLO c\r\nMAIL FROM:<a@x.test>\r\nRSET\r\nRCPT TO:<b@x.test>\r\nMAIL FROM:<a@x.test>\r\nEHLO c\r\nDATA\r\n")
        let lines = d.output.split(separator: "\r\n").map(String.init)
        #expect(lines.suffix(2) == ["250 CHUNKING", "503 5.5.1 Need MAIL command first"])
        #expect(lines.contains("503 5.5.1 Need MAIL command first"))
    }
}
