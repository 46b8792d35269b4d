import NIOCore
import SMTPCore
import Testing

/// One fixture: wire bytes and the replies they hold.
struct ReplyFixture: CustomTestStringConvertible, Sendable {
    var wire: String
    var replies: [SMTPReply]
    var testDescription: String { wire.debugDescription }

    init(_ wire: String, _ replies: SMTPReply...) {
        self.wire = wire
        self.replies = replies
    }
}

/// One fixture that must fail, with the error code, whatever the chunking.
struct BadReplyFixture: CustomTestStringConvertible, Sendable {
    var wire: String
    var code: SMTPClientError.Code
    var testDescription: String { "\(wire.prefix(40).debugDescription) -> \(code)" }

    init(_ wire: String, _ code: SMTPClientError.Code) {
        self.wire = wire
        self.code = code
    }
}

@Suite("SMTP reply decoder")
struct ClientReplyDecoderTests {
    static let fixtures: [ReplyFixture] = [
        ReplyFixture("250 OK\r\n", SMTPReply(250, nil, "OK")),
        ReplyFixture("220 mail.example.com ESMTP ready\r\n", SMTPReply(220, nil, "mail.example.com ESMTP ready")),
        // RFC 5321 §4.2: the text after the code is optional.
        ReplyFixture("250\r\n", SMTPReply(250, nil, "")),
        ReplyFixture("354 \r\n", SMTPReply(354, nil, "")),
        // RFC 2034: enhanced status codes are split off when the class matches.
        ReplyFixture("250 2.1.5 Recipient OK\r\n", SMTPReply(250, SMTPEnhancedStatus(2, 1, 5), "Recipient OK")),
        ReplyFixture(
            "530 5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM\r\n",
            SMTPReply(530, SMTPEnhancedStatus(5, 7, 57), "Client was not authenticated to send anonymous mail during MAIL FROM")),
        ReplyFixture("250 2.0.0\r\n", SMTPReply(250, SMTPEnhancedStatus(2, 0, 0), "")),
        // A class that does not match the code is text, not a status.
        ReplyFixture("250 5.0.0 odd\r\n", SMTPReply(250, nil, "5.0.0 odd")),
        ReplyFixture("250 2.0.0OK\r\n", SMTPReply(250, nil, "2.0.0OK")),
        ReplyFixture("250 +2.0.0 x\r\n", SMTPReply(250, nil, "+2.0.0 x")),
        // Multi-line replies, the status repeated on each line as RFC 2034 §4 shows.
        ReplyFixture("250-first\r\n250-second\r\n250 last\r\n", SMTPReply(250, nil, ["first", "second", "last"])),
        ReplyFixture(
            "451-4.7.500 Access denied,\r\n451 4.7.500 please try again later\r\n",
            SMTPReply(451, SMTPEnhancedStatus(4, 7, 500), ["Access denied,", "please try again later"])),
        ReplyFixture("250-\r\n250 \r\n", SMTPReply(250, nil, ["", ""])),
        // Two replies back to back (pipelining).
        ReplyFixture(
            "250 2.1.0 Sender OK\r\n550 5.1.1 User unknown\r\n354 Go ahead\r\n",
            SMTPReply(250, SMTPEnhancedStatus(2, 1, 0), "Sender OK"),
            SMTPReply(550, SMTPEnhancedStatus(5, 1, 1), "User unknown"),
            SMTPReply(354, nil, "Go ahead")),
        // A bare LF ends a reply line (see SMTPReplyDecoder's documentation).
        ReplyFixture("250-a\n250 2.0.0 b\n", SMTPReply(250, nil, ["a", "2.0.0 b"])),
        ReplyFixture("221 2.0.0 Bye\n", SMTPReply(221, SMTPEnhancedStatus(2, 0, 0), "Bye")),
        // Tabs and UTF-8 are text.
        ReplyFixture("250 a\tb caf\u{E9}\r\n", SMTPReply(250, nil, "a\tb caf\u{E9}")),
    ]

    @Test(arguments: fixtures)
    func decodesInEveryChunking(_ fixture: ReplyFixture) {
        let bytes = Array(fixture.wire.utf8)
        for chunks in clientChunkings(of: bytes) {
            let (replies, error) = decodeReplies(chunks)
            #expect(error == nil, "chunking \(chunks.map(\.count))")
            #expect(replies == fixture.replies, "chunking \(chunks.map(\.count))")
        }
    }

    static let badFixtures: [BadReplyFixture] = [
        BadReplyFixture("25 OK\r\n", .malformedReply),
        BadReplyFixture("\r\n", .malformedReply),
        BadReplyFixture("250xOK\r\n", .malformedReply),
        BadReplyFixture("2500 OK\r\n", .malformedReply),
        BadReplyFixture("650 no such class\r\n", .malformedReply),
        BadReplyFixture("160 no such class\r\n", .malformedReply),
        BadReplyFixture("260 no such category\r\n", .malformedReply),
        BadReplyFixture("abc def\r\n", .malformedReply),
        BadReplyFixture("250 a\rb\r\n", .malformedReply),
        BadReplyFixture("250 a\u{0}b\r\n", .malformedReply),
        BadReplyFixture("250-a\r\n251 b\r\n", .inconsistentReplyCode),
        BadReplyFixture("250-a\r\n550-b\r\n550 c\r\n", .inconsistentReplyCode),
        BadReplyFixture("250 " + String(repeating: "x", count: 995) + "\r\n", .lineTooLong),
        BadReplyFixture("250-" + String(repeating: "x", count: 2000), .lineTooLong),
    ]

    @Test(arguments: badFixtures)
    func refusesInEveryChunking(_ fixture: BadReplyFixture) {
        let bytes = Array(fixture.wire.utf8)
        for chunks in clientChunkings(of: bytes, pairsUpTo: 40) {
            let (replies, error) = decodeReplies(chunks)
            #expect(replies.isEmpty)
            #expect(error?.code == fixture.code, "chunking \(chunks.map(\.count))")
        }
    }

    @Test func lineLimitIsThousandOctetsIncludingCRLF() {
        let longest = "250 " + String(repeating: "x", count: 994) + "\r\n"
        #expect(longest.utf8.count == 1000)
        #expect(decodeReplies([Array(longest.utf8)]).replies.count == 1)
        let tooLong = "250 " + String(repeating: "x", count: 995) + "\r\n"
        #expect(decodeReplies([Array(tooLong.utf8)]).error?.code == .lineTooLong)
    }

    @Test func incompleteInputWaitsForMore() throws {
        var decoder = SMTPReplyDecoder()
        var buffer = ByteBuffer(string: "250-a\r\n250 b")
        #expect(try decoder.next(&buffer) == nil)
        #expect(decoder.hasPartialReply)
        #expect(buffer.readableBytes == 5, "the incomplete line stays in the buffer")
        buffer.writeString("\r\n")
        #expect(try decoder.next(&buffer) == SMTPReply(250, nil, ["a", "b"]))
        #expect(!decoder.hasPartialReply)
        #expect(buffer.readableBytes == 0)
    }

    @Test func bareLineFeedCanBeRefused() {
        var configuration = SMTPReplyDecoder.Configuration()
        configuration.acceptsBareLineFeed = false
        #expect(decodeReplies([Array("250 OK\n".utf8)], configuration: configuration).error?.code == .bareLineFeed)
        #expect(decodeReplies([Array("250 OK\r\n".utf8)], configuration: configuration).replies.count == 1)
    }

    @Test func tooManyLinesIsAnError() {
        var configuration = SMTPReplyDecoder.Configuration()
        configuration.maximumLineCount = 3
        let three = "250-a\r\n250-b\r\n250 c\r\n"
        #expect(decodeReplies([Array(three.utf8)], configuration: configuration).replies.count == 1)
        let four = "250-a\r\n250-b\r\n250-c\r\n250 d\r\n"
        #expect(decodeReplies([Array(four.utf8)], configuration: configuration).error?.code == .tooManyReplyLines)
    }

    @Test func errorsAreSticky() {
        var decoder = SMTPReplyDecoder()
        var buffer = ByteBuffer(string: "XYZ\r\n250 OK\r\n")
        #expect(throws: SMTPClientError.self) { try decoder.next(&buffer) }
        #expect(throws: SMTPClientError.self) { try decoder.next(&buffer) }
    }

    @Test(arguments: [
        SMTPReply.ok(),
        SMTPReply.closing,
        SMTPReply.startMailInput,
        SMTPReply(250, SMTPEnhancedStatus(2, 0, 0), ["one", "two", "three"]),
        SMTPReply(554, SMTPEnhancedStatus(5, 2, 0), "STOREDRV.Submission.Exception:SubmissionQuotaExceededException"),
        SMTPReply(250, nil, ["relay.test Hello client", "SIZE 10000", "PIPELINING"]),
    ])
    func decodesWhatSMTPReplyEncodes(_ original: SMTPReply) {
        #expect(reply(original.encoded) == original)
    }

    @Test func errorDescriptionHoldsNoReplyText() {
        let error = SMTPClientError(
            .authenticationFailed, reply: SMTPReply(535, SMTPEnhancedStatus(5, 7, 3), "Authentication unsuccessful for alice@contoso.com"))
        #expect(!error.description.contains("alice"))
        #expect(error.description.contains("535 5.7.3"))
        #expect(error.debugDescription.contains("alice"))
    }
}
