import Testing
@testable import RelayCore

@Suite("AUTH lockout")
struct AuthLockoutTests {
    typealias Lockout = RelayAuthLockout<String>

    enum Event: CustomStringConvertible {
        /// A failed AUTH at this time; expect this many failures counted, this delay, and a lockout until (if any).
        case fail(at: Double, failures: Int, delay: Double, lockedUntil: Double?)
        case succeed(at: Double)
        /// An AUTH attempt at this time: allowed, or locked out until.
        case admit(at: Double, lockedUntil: Double?)

        var description: String {
            switch self {
            case .fail(let at, _, _, _): "fail@\(at)"
            case .succeed(let at): "succeed@\(at)"
            case .admit(let at, _): "admit@\(at)"
            }
        }
    }

    static func run(_ events: [Event], policy: Lockout.Policy = .init()) {
        var lockout = Lockout(policy: policy)
        for (index, event) in events.enumerated() {
            switch event {
            case .fail(let at, let failures, let delay, let lockedUntil):
                let result = lockout.recordFailure("192.0.2.1", now: at)
                #expect(result.failures == failures, "event \(index) \(event)")
                #expect(abs(result.delay - delay) < 1e-9, "event \(index) \(event): delay \(result.delay)")
                #expect(result.lockedUntil == lockedUntil, "event \(index) \(event)")
            case .succeed(let at):
                lockout.recordSuccess("192.0.2.1", now: at)
            case .admit(let at, let lockedUntil):
                let expected: Lockout.Admission = lockedUntil.map { .lockedOut(until: $0) } ?? .allowed
                #expect(lockout.admission("192.0.2.1", now: at) == expected, "event \(index) \(event)")
            }
        }
    }

    @Test func fiveFailuresWithinFifteenMinutesLockForFifteenMinutes() {
        Self.run([
            .fail(at: 0, failures: 1, delay: 0.1, lockedUntil: nil),
            .fail(at: 60, failures: 2, delay: 0.2, lockedUntil: nil),
            .fail(at: 120, failures: 3, delay: 0.4, lockedUntil: nil),
            .admit(at: 121, lockedUntil: nil),
            .fail(at: 180, failures: 4, delay: 0.8, lockedUntil: nil),
            .fail(at: 240, failures: 5, delay: 1.6, lockedUntil: 1140),
            .admit(at: 241, lockedUntil: 1140),
            .admit(at: 1139.9, lockedUntil: 1140),
            .admit(at: 1140, lockedUntil: nil),
        ])
    }

    @Test func failuresOutsideTheWindowDoNotCount() {
        Self.run([
            .fail(at: 0, failures: 1, delay: 0.1, lockedUntil: nil),
            .fail(at: 100, failures: 2, delay: 0.2, lockedUntil: nil),
            .fail(at: 200, failures: 3, delay: 0.4, lockedUntil: nil),
            .fail(at: 300, failures: 4, delay: 0.8, lockedUntil: nil),
            // 900 s after the first: it has left the window.
            .fail(at: 900, failures: 4, delay: 0.8, lockedUntil: nil),
            .admit(at: 901, lockedUntil: nil),
            .fail(at: 1000, failures: 4, delay: 0.8, lockedUntil: nil),
            .fail(at: 1050, failures: 5, delay: 1.6, lockedUntil: 1950),
        ])
    }

    @Test func repeatedLockoutsDouble() {
        var events: [Event] = []
        var start = 0.0
        for (round, duration) in [900.0, 1800, 3600, 7200].enumerated() {
            for failure in 1...5 {
                let at = start + Double(failure)
                events.append(.fail(at: at, failures: failure, delay: 0.1 * Double(1 << (failure - 1)), lockedUntil: failure == 5 ? at + duration : nil))
            }
            events.append(.admit(at: start + 5 + duration - 1, lockedUntil: start + 5 + duration))
            start += 5 + duration
            _ = round
        }
        Self.run(events)
    }

    @Test func lockoutsStopDoublingAtTheMaximumAndStartOverAfterAQuietDay() {
        let policy = Lockout.Policy(lockout: 900, maximumLockout: 2000, forgetAfter: 86_400)
        var events: [Event] = []
        var start = 0.0
        for duration in [900.0, 1800, 2000, 2000] {
            for failure in 1...5 {
                let at = start + Double(failure)
                events.append(.fail(at: at, failures: failure, delay: 0.1 * Double(1 << (failure - 1)), lockedUntil: failure == 5 ? at + duration : nil))
            }
            start += 5 + duration
        }
        // A day later without a failure: back to 15 minutes.
        start += 86_400
        for failure in 1...5 {
            let at = start + Double(failure)
            events.append(.fail(at: at, failures: failure, delay: 0.1 * Double(1 << (failure - 1)), lockedUntil: failure == 5 ? at + 900 : nil))
        }
        Self.run(events, policy: policy)
    }

    @Test func aSuccessClearsTheCountButNotTheLockout() {
        Self.run([
            .fail(at: 0, failures: 1, delay: 0.1, lockedUntil: nil),
            .fail(at: 1, failures: 2, delay: 0.2, lockedUntil: nil),
            .fail(at: 2, failures: 3, delay: 0.4, lockedUntil: nil),
            .succeed(at: 3),
            .fail(at: 4, failures: 1, delay: 0.1, lockedUntil: nil),
        ])
    }

    @Test func theDelayIsCapped() {
        var events: [Event] = []
        let policy = Lockout.Policy(maxFailures: 20, delayBase: 0.1, maximumDelay: 5)
        let expected = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5, 5]
        for (index, delay) in expected.enumerated() {
            events.append(.fail(at: Double(index), failures: index + 1, delay: delay, lockedUntil: nil))
        }
        Self.run(events, policy: policy)
    }

    @Test(arguments: [1, 3, 5, 10])
    func theThresholdIsConfigurable(maxFailures: Int) {
        var lockout = Lockout(policy: .init(maxFailures: maxFailures, window: 900, lockout: 60))
        for failure in 1..<maxFailures {
            #expect(lockout.recordFailure("a", now: Double(failure)).lockedUntil == nil)
        }
        #expect(lockout.recordFailure("a", now: 100).lockedUntil == 160)
    }

    @Test func addressesAreIndependent() {
        var lockout = Lockout()
        for second in 0..<5 { _ = lockout.recordFailure("a", now: Double(second)) }
        #expect(lockout.admission("a", now: 10) == .lockedOut(until: 904))
        #expect(lockout.admission("b", now: 10) == .allowed)
    }

    @Test func theTableIsBounded() {
        var lockout = Lockout(policy: .init(maximumEntries: 100))
        for index in 0..<1000 {
            _ = lockout.recordFailure("addr-\(index)", now: Double(index))
            #expect(lockout.count <= 100)
        }
        // The most recent address is still remembered.
        #expect(lockout.recordFailure("addr-999", now: 1000).failures == 2)
    }
}
