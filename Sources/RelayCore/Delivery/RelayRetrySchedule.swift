import Foundation

/// When to try a deferred message again, and when to give up on it.
///
/// After the n-th failed attempt the next one is `delays[n-1]` later; past the
/// end of the list the last delay repeats. A message lives at most `maxAge`
/// from arrival (its *deadline*):
///
/// - a failure at or after the deadline expires the message (as Postfix does
///   with `maximal_queue_lifetime`);
/// - a failure before the deadline whose next slot would fall after it gets
///   one final attempt *at* the deadline, so a message is neither given up
///   early (a 4 h delay would otherwise cost up to 4 h of its life) nor kept
///   past its age. The final attempt's failure then expires it.
///
/// Pure: the caller passes `now`.
/// - SeeAlso: RFC 5321 §4.5.4.1 (retry at least 30 minutes apart, give up after 4–5 days)
public struct RelayRetrySchedule: Sendable, Hashable {
    public enum Decision: Sendable, Hashable {
        /// Try again at this time.
        case retry(at: Date)
        /// Give up: the message is older than `maxAge`. Pending recipients fail (status 4.4.7).
        case expire
    }

    /// Delays after the 1st, 2nd, ... failed attempt, in seconds. Never empty.
    public let delays: [TimeInterval]
    /// Longest life of a message, in seconds from arrival.
    public let maxAge: TimeInterval

    /// - Parameters:
    ///   - delays: an empty list is taken as "no retry before the deadline";
    ///     negative delays count as zero.
    public init(delays: [TimeInterval], maxAge: TimeInterval) {
        self.delays = delays.isEmpty ? [max(maxAge, 0)] : delays.map { max($0, 0) }
        self.maxAge = max(maxAge, 0)
    }

    /// The schedule of a configuration's `delivery` section.
    public init(_ delivery: RelayConfiguration.Delivery) {
        self.init(delays: delivery.retry, maxAge: delivery.maxAge)
    }

    /// The delay after the `attemptNumber`-th failed attempt (1-based; below 1 counts as 1).
    public func delay(afterAttempt attemptNumber: Int) -> TimeInterval {
        delays[min(max(attemptNumber, 1), delays.count) - 1]
    }

    /// What to do after attempt number `attemptNumber` (1 for the first) failed temporarily.
    ///
    /// - Parameter notBefore: an earliest time the upstream asked for
    ///   (`Retry-After`, a quota window that rolls later); the retry is not
    ///   scheduled before it. The deadline rule still applies.
    public func nextAttempt(afterAttempt attemptNumber: Int, receivedAt: Date, now: Date, notBefore: Date? = nil) -> Decision {
        let deadline = receivedAt.addingTimeInterval(maxAge)
        guard now < deadline else { return .expire }
        var next = now.addingTimeInterval(delay(afterAttempt: attemptNumber))
        if let notBefore, notBefore > next { next = notBefore }
        return .retry(at: min(next, deadline))
    }
}
