import Testing
@testable import RelayCore

@Suite("Client-supplied text in logs")
struct LogTextTests {
    @Test(arguments: [
        ("printer.local", "printer.local"),
        ("evil\r\nSession ended client=ceo", "evil\\r\\nSession ended client=ceo"),
        ("tab\there", "tab\\there"),
        ("nul\u{0}bell\u{7}esc\u{1B}[31m", "nul\\x00bell\\x07esc\\x1B[31m"),
        ("del\u{7F}", "del\\x7F"),
        ("c1\u{85}next", "c1\\u{0085}next"),
        ("bidi\u{202E}txt", "bidi\\u{202E}txt"),
        ("line\u{2028}sep", "line\\u{2028}sep"),
        ("back\\slash", "back\\\\slash"),
        ("Grüße", "Grüße"),
    ])
    func escapes(input: String, expected: String) {
        #expect(RelayLogText.escape(input) == expected)
    }

    @Test func longTextIsCut() {
        let escaped = RelayLogText.escape(String(repeating: "a", count: 1000), limit: 10)
        #expect(escaped == "aaaaaaaaaa…")
    }
}
