import Foundation
import RelayCore
import Testing

/// Relaxed canonicalisation, pinned by RFC 6376's own example and the edge
/// cases of §3.4.2 and §3.4.4; every body is also fed in every chunking.
@Suite struct DKIMCanonicalizationTests {
    // MARK: Headers (RFC 6376 §3.4.2)

    @Test(arguments: [
        // RFC 6376 §3.4.5, the example's two header fields.
        ("A: X\r\n", "a:X\r\n"),
        ("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n"),
        // Name lower-cased, WSP runs made one SP, WSP at the end of the value dropped.
        ("SUBJECT:\tfoo \t bar \r\n", "subject:foo bar\r\n"),
        // WSP on either side of the colon removed; an empty value stays empty.
        ("X-Empty:   \r\n", "x-empty:\r\n"),
        ("To:a@b.example,\r\n c@d.example", "to:a@b.example, c@d.example\r\n"),
        // Case inside the value is kept.
        ("Message-ID: <AbC@Example.COM>\r\n", "message-id:<AbC@Example.COM>\r\n"),
    ])
    func relaxedHeader(_ input: String, _ expected: String) {
        let output = DKIMRelaxedHeader.canonicalize(Array(input.utf8))
        #expect(output.map { String(decoding: $0, as: UTF8.self) } == expected)
    }

    @Test func fieldWithoutColonIsNotAField() {
        #expect(DKIMRelaxedHeader.canonicalize(Array("no colon here\r\n".utf8)) == nil)
        #expect(DKIMRelaxedHeader.name(of: Array("Reply-To : x\r\n".utf8)) == "reply-to")
    }

    // MARK: Body (RFC 6376 §3.4.4, §3.4.3)

    static let bodies: [(String, String)] = [
        // RFC 6376 §3.4.5: the example body.
        (" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"),
        // An empty body, and one of empty lines only, canonicalise to nothing (errata 1384).
        ("", ""),
        ("\r\n", ""),
        ("\r\n\r\n\r\n", ""),
        // A last line without CRLF gets one.
        ("abc", "abc\r\n"),
        // Empty lines at the end go; empty lines inside stay.
        ("a\r\n\r\n\r\n", "a\r\n"),
        ("a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"),
        // A line of whitespace only is an empty line: inside it stays (empty), at the end it goes.
        ("a\r\n \t \r\nb\r\n", "a\r\n\r\nb\r\n"),
        ("a\r\n \t \r\n", "a\r\n"),
        // Whitespace at the end of a line, also just before the end of the body.
        ("a \t\r\n", "a\r\n"),
        ("a\r\nb  ", "a\r\nb\r\n"),
        // Leading whitespace is compressed, not removed.
        ("\t\tindented\r\n", " indented\r\n"),
        // A bare CR or LF is an ordinary byte, not a line end.
        ("a\rb\r\n", "a\rb\r\n"),
        ("a \r b\r\n", "a \r b\r\n"),
        ("a\nb\r\n", "a\nb\r\n"),
        ("a\r\r\n", "a\r\r\n"),
        ("a\r", "a\r\r\n"),
        // RFC 6376 Appendix A's body is already canonical.
        ("Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n", "Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n"),
    ]

    @Test(arguments: bodies)
    func relaxedBodyInEveryChunking(_ input: String, _ expected: String) {
        let bytes = Array(input.utf8)
        // Whole, byte by byte, and split at every position.
        var chunkings: [[[UInt8]]] = [[bytes], bytes.map { [$0] }]
        for cut in 0...bytes.count { chunkings.append([Array(bytes[..<cut]), Array(bytes[cut...])]) }
        for chunks in chunkings {
            var canonicalizer = DKIMRelaxedBodyCanonicalizer()
            var output: [UInt8] = []
            for chunk in chunks { canonicalizer.update(chunk, into: &output) }
            canonicalizer.finish(into: &output)
            #expect(String(decoding: output, as: UTF8.self) == expected, "chunks \(chunks.map(\.count))")
        }
    }

    @Test(arguments: [
        ("", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        ("\r\n\r\n", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        // RFC 6376 Appendix A.2's bh= (as corrected by errata 3192).
        ("Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n", "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="),
        (" C \r\nD \t E\r\n\r\n\r\n", "unak6JHq0wL+Q1HP7dW1tjBx9FLA6DffoZ0qrLwbbpo="),
    ])
    func bodyHash(_ body: String, _ expected: String) {
        var hasher = DKIMBodyHasher()
        for byte in body.utf8 { hasher.update(CollectionOfOne(byte)) }
        #expect(Data(hasher.finalize()).base64EncodedString() == expected)
    }

    // MARK: Header selection (RFC 6376 §5.4, §5.4.2)

    static func fields(_ lines: [String]) -> [[UInt8]] { lines.map { Array($0.utf8) } }

    @Test func onlyPresentFieldsAreSignedInConfiguredOrder() {
        let fields = Self.fields(["Subject: hi\r\n", "From: a@contoso.com\r\n", "X-Other: 1\r\n", "To: b@example.com\r\n"])
        let (names, canonical) = DKIMSigner.selectHeaders(DKIMSigner.defaultHeaders, in: fields)
        #expect(names == ["From", "To", "Subject"])
        #expect(String(decoding: canonical, as: UTF8.self) == "from:a@contoso.com\r\nto:b@example.com\r\nsubject:hi\r\n")
    }

    @Test func repeatedFieldsAreSignedBottomUp() {
        let fields = Self.fields(["From: a@contoso.com\r\n", "To: first@example.com\r\n", "Subject: s\r\n", "To: second@example.com\r\n"])
        let (names, canonical) = DKIMSigner.selectHeaders(["from", "to", "TO"], in: fields)
        // `to` listed twice in the configuration still counts once; each instance is named once.
        #expect(names == ["from", "to", "to"])
        #expect(String(decoding: canonical, as: UTF8.self) == "from:a@contoso.com\r\nto:second@example.com\r\nto:first@example.com\r\n")
    }

    @Test func fromIsAlwaysNamedEvenWhenAbsent() {
        let (names, canonical) = DKIMSigner.selectHeaders(["Subject", "From"], in: Self.fields(["Subject: s\r\n"]))
        #expect(names == ["From", "Subject"])
        #expect(String(decoding: canonical, as: UTF8.self) == "subject:s\r\n")
    }

    @Test func headerSectionSplitsWhereTheBodyStarts() throws {
        let message = Array("From: a@contoso.com\r\nSubject: a\r\n b\r\n\r\nbody\r\n".utf8)
        let split = try #require(DKIMSigner.headerFields(of: message, atEnd: true))
        #expect(split.fields.map { String(decoding: $0, as: UTF8.self) } == ["From: a@contoso.com\r\n", "Subject: a\r\n b\r\n"])
        #expect(String(decoding: message[split.bodyStart...], as: UTF8.self) == "body\r\n")
        // Not all here and no empty line yet: undecided.
        #expect(DKIMSigner.headerFields(of: Array("From: a@contoso.com\r\n".utf8), atEnd: false) == nil)
        // All here and all header fields: the body is empty.
        #expect(DKIMSigner.headerFields(of: Array("From: a@contoso.com\r\n".utf8), atEnd: true)?.bodyStart == 21)
    }
}
