import RelayCore
import Testing

@Suite("Message repair: folding and quoted-printable")
struct RelayHeaderFoldingTests {
    static func lines(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n").dropLast().map { $0 }
    }

    @Test func foldingKeepsTheUnfoldedValue() throws {
        let value = (0..<400).map { "w\($0)" }.joined(separator: " ")
        let field = Array("Subject: \(value)\r\n".utf8)
        let folded = try #require(RelayHeaderFolding.fold(field))
        let lines = Self.lines(folded)
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.utf8.count <= 998 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" ") && $0.contains { $0 != " " } })
        #expect(lines.joined() == "Subject: \(value)", "folding inserts CRLF only")
    }

    @Test func foldingNeverBreaksTheFieldName() {
        let name = String(repeating: "X", count: 999)
        #expect(RelayHeaderFolding.fold(Array("\(name): a b\r\n".utf8)) == nil)
    }

    @Test func foldingRefoldsAnAlreadyFoldedField() throws {
        let long = (0..<300).map { "w\($0)" }.joined(separator: " ")
        let field = Array("X-List: short\r\n \(long)\r\n".utf8)
        let folded = try #require(RelayHeaderFolding.fold(field))
        #expect(Self.lines(folded).allSatisfy { $0.utf8.count <= 998 })
        #expect(Self.lines(folded).first == "X-List: short")
        #expect(Self.lines(folded).joined(separator: "\r\n").replacingOccurrences(of: "\r\n", with: "") == "X-List: short \(long)")
    }

    @Test func trailingWhitespaceIsNotAFoldPoint() {
        let field = Array(("X-A: " + String(repeating: "a", count: 995) + "          \r\n").utf8)
        #expect(RelayHeaderFolding.fold(field) == nil, "folding there would leave a line of only whitespace")
    }

    @Test(arguments: [
        "plain ascii text\r\n",
        "trailing space \r\nand tab\t\r\n",
        "equals = sign and 8-bit Grüße\r\n",
        String(repeating: "0123456789", count: 300) + "\r\n",
        String(repeating: "ab ", count: 700) + "\r\nshort\r\n",
        "no final line end",
        "ends in a space ",
        "a bare \r in the middle\r\n",
        ".leading dot\r\n",
        "",
    ])
    func quotedPrintableRoundTrips(_ text: String) {
        let input = Array(text.utf8)
        var encoder = RelayQuotedPrintableEncoder()
        let encoded = encoder.encode(input) + encoder.finish()
        #expect(RelayTransferEncoding.decodeQuotedPrintable(encoded) == input)
        let lines = Self.lines(encoded + [13, 10])
        #expect(lines.allSatisfy { $0.utf8.count <= 76 }, "\(lines.map(\.count).max() ?? 0)")
        #expect(lines.allSatisfy { !$0.hasSuffix(" ") && !$0.hasSuffix("\t") }, "whitespace at a line end is encoded")
        #expect(encoded.allSatisfy { $0 < 128 }, "the result is 7bit")
        // Any chunking gives the same bytes.
        for size in [1, 2, 3, 7, 76, 77] {
            var chunked = RelayQuotedPrintableEncoder()
            var output: [UInt8] = []
            var index = 0
            while index < input.count {
                output += chunked.encode(input[index..<min(index + size, input.count)])
                index += size
            }
            output += chunked.finish()
            #expect(output == encoded, "chunks of \(size)")
        }
    }

    @Test func quotedPrintableKeepsHardLineBreaks() {
        var encoder = RelayQuotedPrintableEncoder()
        let encoded = encoder.encode(Array("a\r\nb\r\n".utf8)) + encoder.finish()
        #expect(String(decoding: encoded, as: UTF8.self) == "a\r\nb\r\n")
    }

    @Test(arguments: [
        ("", 0), ("abc", 3), ("abc\r\n", 3), ("abc\r\nde\r\nfghij\r\n", 5), ("abc\rd\r\n", 5), ("a\r", 1),
    ])
    func lineLengthTracker(_ text: String, _ longest: Int) {
        var whole = RelayLineLengthTracker()
        whole.scan(Array(text.utf8))
        #expect(whole.longestLine == longest)
        var bytewise = RelayLineLengthTracker()
        for byte in text.utf8 { bytewise.scan([byte]) }
        #expect(bytewise.longestLine == longest)
    }
}
