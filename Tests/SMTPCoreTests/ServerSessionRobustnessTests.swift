import RelayTestSupport
import SMTPCore
import Testing

/// A small deterministic generator so that a failure can be replayed from its seed.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Fragments that make random input reach deep states: commands, line ends, dots.
private let fragments: [[UInt8]] = [
    "EHLO x\r\n", "HELO x\r\n", "MAIL FROM:<a@b.test>\r\n", "RCPT TO:<c@d.test>\r\n", "DATA\r\n", "BDAT 3\r\n",
    "BDAT 0 LAST\r\n", "RSET\r\n", "NOOP\r\n", "STARTTLS\r\n", "AUTH LOGIN\r\n", "AUTH PLAIN dGVzdA==\r\n", "*\r\n",
    "\r\n.\r\n", ".\r\n", "\r\n", "\n", "\r", ".", "\0", "QUIT\r\n", "VRFY x\r\n", "MAIL FROM:<>\r\n",
].map { Array($0.utf8) }

@Suite("SMTP server session under random input")
struct ServerSessionRobustnessTests {
    @Test(arguments: 0..<8)
    func randomInputNeverBreaksTheReplyGrammar(seed: Int) async {
        var random = SplitMix64(state: UInt64(seed) &* 7919)
        for round in 0..<250 {
            if round % 50 == 0 { await Task.yield() }
            var configuration = SMTPServerSession.Configuration(hostname: "relay.test")
            configuration.limits.maxMessageSize = 2000
            configuration.limits.maxErrors = 1000
            configuration.startTLSAvailable = true
            configuration.authMechanisms = ["PLAIN", "LOGIN"]
            configuration.allowPlaintextAuth = true
            var driver = SMTPServerDriver(configuration: configuration)
            var input: [UInt8] = []
            for _ in 0..<Int.random(in: 1...40, using: &random) {
                if Bool.random(using: &random) {
                    input += fragments.randomElement(using: &random)!
                } else {
                    input += (0..<Int.random(in: 1...30, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                }
            }
            var offset = 0
            while offset < input.count {
                let length = Int.random(in: 1...64, using: &random)
                driver.feed(input[offset..<min(offset + length, input.count)])
                offset += length
                if driver.tlsRequested { driver.completeTLS() }
            }
            let lines = driver.output.split(separator: "\r\n", omittingEmptySubsequences: false).dropLast()
            #expect(driver.output.hasSuffix("\r\n"), "seed \(seed) round \(round): output does not end with CRLF")
            var inEHLO = false
            for (index, line) in lines.enumerated() {
                let code = line.prefix(3)
                #expect(code.count == 3 && code.allSatisfy(\.isNumber), "seed \(seed) round \(round): not a reply line: \(line)")
                let separator = line.dropFirst(3).first
                #expect(separator == " " || separator == "-", "seed \(seed) round \(round): \(line)")
                // RFC 2034: every reply but the greeting, the EHLO/HELO list and AUTH challenges carries an enhanced code.
                let text = line.dropFirst(4)
                let isGreetingOrList = index == 0 || inEHLO || code == "334" || text.hasPrefix("relay.test Hello") || text.hasPrefix("relay.test ESMTP")
                if !isGreetingOrList {
                    let enhanced = text.split(separator: " ").first.map { SMTPEnhancedStatus(parsing: $0) } ?? nil
                    #expect(enhanced != nil, "seed \(seed) round \(round): no enhanced code in \(line)")
                    #expect(enhanced.map { String($0.statusClass) == String(code.prefix(1)) } ?? true, "class mismatch in \(line)")
                }
                inEHLO = separator == "-" && (inEHLO || text.hasPrefix("relay.test Hello"))
            }
        }
    }
}
