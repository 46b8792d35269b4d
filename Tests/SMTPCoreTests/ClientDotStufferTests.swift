import NIOCore
import SMTPCore
import Testing

/// The reference: stuffing the whole content at once, written as plainly as the RFC says it.
///
/// RFC 5321 §4.5.2: before sending a line, if its first character is a period,
/// one more period is inserted at the start of the line. Lines end with CRLF.
private func referenceStuffing(_ content: [UInt8]) -> [UInt8] {
    var output: [UInt8] = []
    var lineStart = true
    var index = 0
    while index < content.count {
        if lineStart && content[index] == UInt8(ascii: ".") { output.append(UInt8(ascii: ".")) }
        output.append(content[index])
        lineStart = index > 0 && content[index - 1] == UInt8(ascii: "\r") && content[index] == UInt8(ascii: "\n")
        index += 1
    }
    if !lineStart { output += Array("\r\n".utf8) }
    return output + Array(".\r\n".utf8)
}

private func stuff(_ chunks: [[UInt8]]) -> [UInt8] {
    var stuffer = SMTPDotStuffer()
    var output = ByteBuffer()
    for chunk in chunks { stuffer.stuff(ByteBuffer(bytes: chunk), into: &output) }
    stuffer.finish(into: &output)
    return Array(output.readableBytesView)
}

@Suite("DATA dot-stuffing")
struct ClientDotStufferTests {
    /// Fixtures with the expected bytes spelled out, to pin the reference too.
    @Test(arguments: [
        ("", ".\r\n"),
        ("a", "a\r\n.\r\n"),
        ("a\r\n", "a\r\n.\r\n"),
        (".", "..\r\n.\r\n"),
        (".\r\n", "..\r\n.\r\n"),
        ("..", "...\r\n.\r\n"),
        ("a\r\n.b\r\n", "a\r\n..b\r\n.\r\n"),
        ("a\r\n.\r\nQUIT\r\n", "a\r\n..\r\nQUIT\r\n.\r\n"),
        ("a.b\r\n", "a.b\r\n.\r\n"),
        ("\r\n.\r\n.", "\r\n..\r\n..\r\n.\r\n"),
        // Only CRLF ends a line: no stuffing after a bare LF or a bare CR.
        ("a\n.b", "a\n.b\r\n.\r\n"),
        ("a\r.b", "a\r.b\r\n.\r\n"),
        ("a\r\r\n.b", "a\r\r\n..b\r\n.\r\n"),
        // A trailing bare CR is content; the terminator adds its own CRLF.
        ("a\r", "a\r\r\n.\r\n"),
    ])
    func stuffsWholeContent(_ content: String, _ expected: String) {
        #expect(stuff([Array(content.utf8)]) == Array(expected.utf8))
        #expect(referenceStuffing(Array(content.utf8)) == Array(expected.utf8))
    }

    @Test(arguments: [
        "Subject: test\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n",
        ".\r\n.\r\n.\r\n",
        "no final line end\r\n.",
        "\r\n\r\n.\r\n\r\n.",
        "x\r\r\n.\n.\r\n\r.",
        "From: a@b\r\nTo: c@d\r\n\r\nline\r\n.\r\nQUIT\r\n",
    ])
    func everyChunkingMatchesTheReference(_ content: String) {
        let bytes = Array(content.utf8)
        let expected = referenceStuffing(bytes)
        for chunks in clientChunkings(of: bytes) {
            #expect(stuff(chunks) == expected, "chunking \(chunks.map(\.count))")
        }
    }

    /// Random content over the bytes that matter, cut at every pair of positions.
    @Test func randomContentMatchesTheReference() {
        var generator = ClientTestRandom(seed: 0x5EED)
        let alphabet: [UInt8] = Array(".\r\na".utf8)
        for _ in 0..<300 {
            let length = Int(generator.next() % 14)
            let bytes = (0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }
            let expected = referenceStuffing(bytes)
            for chunks in clientChunkings(of: bytes) {
                #expect(stuff(chunks) == expected, "content \(bytes) chunking \(chunks.map(\.count))")
            }
        }
    }

    @Test func countsContentOctets() {
        var stuffer = SMTPDotStuffer()
        var output = ByteBuffer()
        stuffer.stuff(ByteBuffer(string: ".a\r\n"), into: &output)
        stuffer.stuff(ByteBuffer(string: ".b"), into: &output)
        #expect(stuffer.contentLength == 6)
        #expect(String(buffer: output) == "..a\r\n..b")
    }

    @Test func wholeMessageHelper() {
        #expect(String(buffer: SMTPDotStuffer.stuffed(ByteBuffer(string: ".hi"))) == "..hi\r\n.\r\n")
    }
}

/// A small deterministic generator, so that a failure reproduces.
struct ClientTestRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
