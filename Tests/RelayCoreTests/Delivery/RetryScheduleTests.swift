import Foundation
import Testing
@testable import RelayCore

@Suite("Retry schedule")
struct RetryScheduleTests {
    static let minute: TimeInterval = 60
    static let hour: TimeInterval = 3600
    static let day: TimeInterval = 86_400
    /// The default schedule: 1m, 5m, 15m, 1h, 4h; 5 days.
    static let schedule = RelayRetrySchedule(RelayConfiguration.Delivery())
    static let received = Date(timeIntervalSince1970: 1_800_000_000)

    enum Expected: Sendable, CustomStringConvertible {
        /// Retry this many seconds after `now`.
        case after(TimeInterval)
        /// Retry exactly at the deadline, received + max age.
        case atDeadline
        case expire

        var description: String {
            switch self {
            case .after(let seconds): "retry after \(Int(seconds))s"
            case .atDeadline: "final attempt at the deadline"
            case .expire: "expire"
            }
        }
    }

    @Test(arguments: [
        // attempt that failed, seconds since arrival when it failed, expected
        (1, 0.0, Expected.after(1 * minute)),
        (2, 1 * minute, .after(5 * minute)),
        (3, 6 * minute, .after(15 * minute)),
        (4, 21 * minute, .after(1 * hour)),
        (5, 81 * minute, .after(4 * hour)),
        (6, 6 * hour, .after(4 * hour)),                    // the last delay repeats
        (30, 4 * day, .after(4 * hour)),
        (31, 5 * day - 4 * hour, .atDeadline),              // next slot lands exactly on the deadline
        (31, 5 * day - 1 * hour, .atDeadline),              // next slot would overshoot: one final try at the deadline
        (32, 5 * day, .expire),                             // failed at the deadline
        (33, 5 * day + 1, .expire),
        (1, 5 * day + 1 * hour, .expire),                   // first attempt only after the deadline (queue was down)
        (0, 0.0, .after(1 * minute)),                       // attempt numbers below 1 count as the first
    ])
    func defaultSchedule(attempt: Int, failedAfter: TimeInterval, expected: Expected) {
        let now = Self.received.addingTimeInterval(failedAfter)
        let decision = Self.schedule.nextAttempt(afterAttempt: attempt, receivedAt: Self.received, now: now)
        switch expected {
        case .after(let seconds):
            #expect(decision == .retry(at: now.addingTimeInterval(seconds)))
        case .atDeadline:
            #expect(decision == .retry(at: Self.received.addingTimeInterval(5 * Self.day)))
        case .expire:
            #expect(decision == .expire)
        }
    }

    @Test func upstreamAskedForLaterRetry() {
        let now = Self.received.addingTimeInterval(10)
        let retryAfter = now.addingTimeInterval(2 * Self.hour)
        #expect(Self.schedule.nextAttempt(afterAttempt: 1, receivedAt: Self.received, now: now, notBefore: retryAfter) == .retry(at: retryAfter))
        // An earlier hint does not shorten the schedule.
        #expect(Self.schedule.nextAttempt(afterAttempt: 1, receivedAt: Self.received, now: now, notBefore: now) == .retry(at: now.addingTimeInterval(Self.minute)))
        // Nor does a hint extend a message's life.
        let late = Self.received.addingTimeInterval(5 * Self.day - 10)
        #expect(Self.schedule.nextAttempt(afterAttempt: 9, receivedAt: Self.received, now: late, notBefore: late.addingTimeInterval(Self.day))
            == .retry(at: Self.received.addingTimeInterval(5 * Self.day)))
    }

    @Test func emptyScheduleRetriesOnlyAtTheDeadline() {
        let schedule = RelayRetrySchedule(delays: [], maxAge: Self.hour)
        #expect(schedule.nextAttempt(afterAttempt: 1, receivedAt: Self.received, now: Self.received)
            == .retry(at: Self.received.addingTimeInterval(Self.hour)))
        #expect(schedule.nextAttempt(afterAttempt: 2, receivedAt: Self.received, now: Self.received.addingTimeInterval(Self.hour)) == .expire)
    }

    @Test func delaysAreTakenFromTheConfiguration() throws {
        let config = try RelayConfiguration.parse(yaml: ConfigurationFixtures.minimal(extra: """
            delivery:
              retry: [30s, 2m]
              max_age: 1h
            """), fileName: "test.yaml")
        let schedule = RelayRetrySchedule(config.delivery)
        #expect(schedule.delays == [30, 120])
        #expect(schedule.maxAge == Self.hour)
        #expect(schedule.delay(afterAttempt: 1) == 30)
        #expect(schedule.delay(afterAttempt: 2) == 120)
        #expect(schedule.delay(afterAttempt: 3) == 120)
    }
}
