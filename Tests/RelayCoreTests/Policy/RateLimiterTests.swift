import Testing
@testable import RelayCore

@Suite("Per-client message rate (token bucket)")
struct RateLimiterTests {
    /// (time, allowed?) in order, for one client.
    @Test(arguments: [
        // 3/min: a burst of three, then one every 20 seconds.
        ("3/min", [(0.0, true), (0, true), (0, true), (0, false), (10, false), (21, true), (21, false), (45, true), (100, true), (100, true), (100, true), (100, false)]),
        // 1/s: one a second, no burst beyond one.
        ("1/s", [(0, true), (0.5, false), (1.1, true), (1.5, false), (2.2, true)]),
        // 120/min: 120 at once, then 2 a second.
        ("120/min", Array(repeating: (0.0, true), count: 120) + [(0, false), (0.25, false), (0.6, true), (0.6, false), (1.2, true)]),
        // 2/h: refills at one per 30 minutes; a long pause refills only to the capacity.
        ("2/h", [(0, true), (1, true), (2, false), (1900, true), (1901, false), (100_000, true), (100_000, true), (100_000, false)]),
    ] as [(String, [(Double, Bool)])])
    func bucket(limit text: String, events: [(Double, Bool)]) throws {
        let limit = try #require(RelayRateLimit(parsing: text))
        var limiter = RelayRateLimiter<String>()
        for (index, (at, allowed)) in events.enumerated() {
            let decision = limiter.take("erp", limit: limit, now: at)
            #expect((decision == .allowed) == allowed, "\(text) event \(index) at \(at): \(decision)")
        }
    }

    @Test func clientsHaveTheirOwnBuckets() throws {
        let limit = try #require(RelayRateLimit(parsing: "1/min"))
        var limiter = RelayRateLimiter<String>()
        #expect(limiter.take("a", limit: limit, now: 0) == .allowed)
        #expect(limiter.take("b", limit: limit, now: 0) == .allowed)
        guard case .limited(let retryAfter) = limiter.take("a", limit: limit, now: 1) else {
            Issue.record("not limited")
            return
        }
        #expect(abs(retryAfter - 59) < 1e-6)
    }

    @Test func aClockGoingBackwardsRefillsNothing() throws {
        let limit = try #require(RelayRateLimit(parsing: "1/min"))
        var limiter = RelayRateLimiter<String>()
        #expect(limiter.take("a", limit: limit, now: 1000) == .allowed)
        #expect(limiter.take("a", limit: limit, now: 0) != .allowed)
        #expect(limiter.take("a", limit: limit, now: 1059) != .allowed)
        #expect(limiter.take("a", limit: limit, now: 1061) == .allowed)
    }
}
