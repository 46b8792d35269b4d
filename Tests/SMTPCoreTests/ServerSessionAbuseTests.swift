import NIOCore
import RelayTestSupport
import SMTPCore
import Testing

private func configuration(_ adjust: (inout SMTPServerSession.Configuration) -> Void = { _ in }) -> SMTPServerSession.Configuration {
    var configuration = SMTPServerSession.Configuration(hostname: "relay.test")
    configuration.limits.maxErrors = 5
    adjust(&configuration)
    return configuration
}

private func timeouts(_ adjust: (inout SMTPServerTimeouts) -> Void) -> SMTPServerTimeouts {
    var timeouts = SMTPServerTimeouts()
    adjust(&timeouts)
    return timeouts
}

private let greeting = "220 relay.test ESMTP\r\n"
private let envelope = "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"

/// Abuse limits of the server session, driven by the transcript driver's mock clock.
@Suite("SMTP server session: abuse limits and deadlines")
struct ServerSessionAbuseTests {
    // MARK: Talking before the greeting

    @Test func greetingWaitsForTheDelay() {
        var d = SMTPServerDriver(configuration: configuration(), timeouts: timeouts { $0.greetingDelay = .seconds(2) })
        #expect(d.output == "", "no greeting before the delay")
        d.advance(by: .milliseconds(1999))
        #expect(d.output == "")
        d.advance(by: .milliseconds(1))
        #expect(d.takeOutput() == greeting)
        d.feed("EHLO c\r\nQUIT\r\n")
        #expect(d.takeOutput().hasSuffix("221 2.0.0 Bye\r\n"))
    }

    /// RFC 5321 §4.3.1: the client waits for the greeting. One that does not is refused, and nothing it sent is run.
    @Test(arguments: ["EHLO c\r\n", "E", envelope + "DATA\r\nSubject: x\r\n\r\nx\r\n.\r\n", "GET / HTTP/1.1\r\n"])
    func clientTalkingBeforeTheGreetingIsRefused(early: String) {
        var d = SMTPServerDriver(configuration: configuration(), timeouts: timeouts { $0.greetingDelay = .seconds(1) })
        d.advance(by: .milliseconds(500))
        d.feed(early)
        #expect(d.closed)
        #expect(d.output == "554 5.5.0 Protocol error: client sent before the greeting\r\n")
        #expect(d.committed.isEmpty)
        d.advance(by: .seconds(10))
        #expect(d.output == "554 5.5.0 Protocol error: client sent before the greeting\r\n", "no greeting after the refusal")
    }

    @Test func refusedClientAlsoWaitsForTheDelay() {
        var d = SMTPServerDriver(
            configuration: configuration { $0.refusal = SMTPReply(554, .init(5, 7, 1), "Access denied") },
            timeouts: timeouts { $0.greetingDelay = .seconds(1) })
        #expect(d.output == "")
        d.advance(by: .seconds(1))
        #expect(d.takeOutput() == "554 5.7.1 Access denied\r\n")
    }

    @Test func noDelayMeansAnImmediateGreeting() {
        let d = SMTPServerDriver(configuration: configuration())
        #expect(d.output == greeting)
    }

    // MARK: HTTP request lines

    @Test(arguments: [
        "GET / HTTP/1.1\r\nHost: relay.test\r\n\r\n",
        "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n" + envelope + "DATA\r\n",
        "HEAD / HTTP/1.0\r\n\r\n",
        "CONNECT relay.test:25 HTTP/1.1\r\n\r\n",
        "PUT /x HTTP/1.1\r\n",
        "OPTIONS * HTTP/1.1\r\n",
        "DELETE /x HTTP/1.1\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "get / HTTP/1.1\r\n",
    ])
    func httpRequestLineClosesAtOnce(request: String) {
        for chunks in [[Array(request.utf8)], Array(request.utf8).map { [$0] }] {
            var d = SMTPServerDriver(configuration: configuration())
            for chunk in chunks { d.feed(chunk) }
            #expect(d.closed, "\(request)")
            #expect(d.output == greeting + "554 5.5.0 HTTP is not accepted here, closing connection\r\n", "nothing after the request line may run")
            #expect(d.committed.isEmpty)
        }
    }

    @Test func httpRequestLineAfterEHLOClosesToo() {
        var d = SMTPServerDriver(configuration: configuration())
        d.feed("EHLO c\r\n")
        _ = d.takeOutput()
        d.feed("POST / HTTP/1.1\r\nMAIL FROM:<a@x.test>\r\n")
        #expect(d.closed)
        #expect(d.takeOutput() == "554 5.5.0 HTTP is not accepted here, closing connection\r\n")
    }

    @Test(arguments: ["GETX / HTTP/1.1", "GET", "POSTMASTER x", "HELO get"])
    func wordsThatOnlyLookLikeHTTPAreOrdinaryErrors(line: String) {
        var d = SMTPServerDriver(configuration: configuration())
        d.feed(line + "\r\n")
        #expect(!d.closed, "\(line)")
    }

    @Test func anHTTPLineInsideDataIsContent() {
        var d = SMTPServerDriver(configuration: configuration())
        d.feed(envelope + "DATA\r\n")
        d.feed("GET / HTTP/1.1\r\n.\r\n")
        #expect(d.committed.map(\.content) == ["GET / HTTP/1.1\r\n"])
        #expect(!d.closed)
    }

    // MARK: Errors and junk commands

    /// Unknown verbs, broken lines and overlong lines all count towards `maxErrors`.
    @Test(arguments: ["XYZZY\r\n", "\u{1}\u{2}\u{3}\r\n", "NOOP\0\r\n", "NOOP\nNOOP\r\n", String(repeating: "A", count: 600) + "\r\n", "MAIL FROM:<@@>\r\n"])
    func junkLinesCountToA421(line: String) {
        var d = SMTPServerDriver(configuration: configuration())
        for _ in 0..<4 { d.feed(line) }
        #expect(!d.closed)
        d.feed(line)
        #expect(d.closed)
        #expect(d.output.hasSuffix("421 4.7.0 Too many errors, closing connection\r\n"), "\(d.output)")
    }

    @Test func noopForeverEndsIn421() {
        var d = SMTPServerDriver(configuration: configuration { $0.limits.maxJunkCommands = 10 })
        for _ in 0..<10 { d.feed("NOOP\r\n") }
        #expect(!d.closed)
        for _ in 0..<4 { d.feed("RSET\r\n") }
        #expect(!d.closed)
        d.feed("VRFY x\r\n")
        #expect(d.closed)
        #expect(d.output.hasSuffix("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n421 4.7.0 Too many errors, closing connection\r\n"))
    }

    @Test func anAcceptedMessageResetsTheJunkCount() {
        var d = SMTPServerDriver(configuration: configuration { $0.limits.maxJunkCommands = 3 })
        for _ in 0..<10 {
            d.feed("NOOP\r\nNOOP\r\nRSET\r\n" + envelope + "DATA\r\n")
            d.feed("x\r\n.\r\n")
        }
        #expect(!d.closed)
        #expect(d.committed.count == 10)
    }

    // MARK: Command and idle deadlines

    @Test func idleSessionTimesOut() {
        var d = SMTPServerDriver(configuration: configuration(), timeouts: timeouts { $0.idle = .seconds(300); $0.command = .seconds(60) })
        d.feed("EHLO c\r\n")
        _ = d.takeOutput()
        d.advance(by: .seconds(299))
        #expect(!d.closed, "a complete command waits out the idle timeout, not the command timeout")
        d.feed("NOOP\r\n")
        d.advance(by: .seconds(299))
        #expect(!d.closed, "input restarts the idle clock")
        d.advance(by: .seconds(1))
        #expect(d.closed)
        #expect(d.takeOutput() == "250 2.0.0 Ok\r\n421 4.4.2 Idle timeout, closing connection\r\n")
    }

    /// A command trickled one octet at a time must not extend its own deadline.
    @Test func tricklingACommandHitsTheCommandTimeout() {
        var d = SMTPServerDriver(configuration: configuration(), timeouts: timeouts { $0.idle = .seconds(300); $0.command = .seconds(60) })
        _ = d.takeOutput()
        for byte in "MAIL FROM:<a@x.test>".utf8 {
            d.feed([byte])
            d.advance(by: .seconds(5))
            if d.closed { break }
        }
        #expect(d.closed)
        #expect(d.output == "421 4.4.2 Command timeout, closing connection\r\n")
        #expect(d.now <= .uptimeNanoseconds(1_000_000_000) + .seconds(65))
    }

    @Test func anOverlongLineWithNoEndIsStillACommandInProgress() {
        var d = SMTPServerDriver(configuration: configuration(), timeouts: timeouts { $0.idle = .seconds(300); $0.command = .seconds(60) })
        _ = d.takeOutput()
        for _ in 0..<20 {
            d.feed(String(repeating: "x", count: 100))
            d.advance(by: .seconds(5))
        }
        #expect(d.closed)
        #expect(d.output == "421 4.4.2 Command timeout, closing connection\r\n")
    }

    // MARK: Minimum data rate

    private static func trickle(_ rate: Int, octetsPerSecond: Int, seconds: Int, bdat: Bool = false) -> SMTPServerDriver {
        var d = SMTPServerDriver(configuration: configuration { $0.limits.maxMessageSize = 10_000_000 }, timeouts: timeouts {
            $0.data = .seconds(60)
            $0.idle = .seconds(60)
            $0.minDataRate = rate
        })
        d.feed(envelope + (bdat ? "" : "DATA\r\n"))
        _ = d.takeOutput()
        let line = String(repeating: "x", count: max(octetsPerSecond - 2, 0)) + "\r\n"
        for _ in 0..<seconds {
            d.feed(bdat ? "BDAT \(line.utf8.count)\r\n" + line : line)
            d.advance(by: .seconds(1))
            if d.closed { break }
        }
        return d
    }

    @Test func aClientBelowTheMinimumDataRateIsClosed() {
        // 10 octets a second against a minimum of 100, with 60 s of slack: closed after about 67 s,
        // though no gap between two chunks ever comes near the data timeout.
        let d = Self.trickle(100, octetsPerSecond: 10, seconds: 200)
        #expect(d.closed)
        #expect(d.committed.isEmpty)
        #expect(d.output.hasSuffix("421 4.4.2 Data rate too low, closing connection\r\n"), "\(d.output)")
        let elapsed = (d.now - .uptimeNanoseconds(1_000_000_000)).nanoseconds / 1_000_000_000
        #expect((60...75).contains(elapsed), "closed after \(elapsed) s")
    }

    @Test func aClientAboveTheMinimumDataRateIsNot() {
        let d = Self.trickle(100, octetsPerSecond: 120, seconds: 200)
        #expect(!d.closed)
    }

    @Test func theRateCheckCanBeTurnedOff() {
        let d = Self.trickle(0, octetsPerSecond: 10, seconds: 200)
        #expect(!d.closed)
    }

    @Test func bdatChunksAreHeldToTheRateAcrossTheMessage() {
        let slow = Self.trickle(100, octetsPerSecond: 10, seconds: 200, bdat: true)
        #expect(slow.closed)
        #expect(slow.output.hasSuffix("421 4.4.2 Data rate too low, closing connection\r\n"), "\(slow.output)")
        let fast = Self.trickle(100, octetsPerSecond: 200, seconds: 200, bdat: true)
        #expect(!fast.closed)
    }

    @Test func aSilentClientInDataGetsTheIdleReply() {
        var d = SMTPServerDriver(configuration: configuration(), timeouts: timeouts { $0.data = .seconds(60); $0.minDataRate = 100 })
        d.feed(envelope + "DATA\r\n")
        _ = d.takeOutput()
        d.feed("Subject: x\r\n")
        d.advance(by: .seconds(61))
        #expect(d.closed)
        #expect(d.output == "421 4.4.2 Idle timeout, closing connection\r\n")
        #expect(d.committed.isEmpty)
    }

    @Test func theRateClockStopsWithTheMessage() {
        var d = SMTPServerDriver(configuration: configuration(), timeouts: timeouts {
            $0.data = .seconds(10)
            $0.idle = .seconds(300)
            $0.minDataRate = 1_000_000
        })
        d.feed(envelope + "DATA\r\n")
        d.feed("x\r\n.\r\n")
        #expect(d.committed.count == 1)
        d.advance(by: .seconds(200))
        #expect(!d.closed, "after the message, the idle timeout applies again")
    }
}
