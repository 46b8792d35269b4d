/// `clients[].rate_limit` as token buckets, one per key (a client name),
/// pure: time is passed in with each event.
///
/// A bucket holds up to `count` messages and refills at `count` per
/// `period`, so `120/min` allows a burst of 120 and then 2 a second. A token
/// bucket rather than a sliding log: constant memory per client whatever the
/// limit, and no cliff when a window rolls.
public struct RelayRateLimiter<Key: Hashable & Sendable>: Sendable {
    private struct Bucket: Sendable {
        var tokens: Double
        var updated: Double
    }

    public enum Decision: Sendable, Hashable {
        case allowed
        /// Refused; a token is next available after `retryAfter` seconds.
        case limited(retryAfter: Double)
    }

    private var buckets: [Key: Bucket] = [:]

    public init() {}

    /// Takes one message from `key`'s bucket if it has one.
    public mutating func take(_ key: Key, limit: RelayRateLimit, now: Double) -> Decision {
        let capacity = Double(limit.count)
        let rate = capacity / limit.period
        var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: now)
        // A clock that went backwards refills nothing rather than draining.
        let elapsed = max(0, now - bucket.updated)
        bucket.tokens = min(capacity, bucket.tokens + elapsed * rate)
        bucket.updated = max(bucket.updated, now)
        guard bucket.tokens >= 1 else {
            buckets[key] = bucket
            return .limited(retryAfter: (1 - bucket.tokens) / rate)
        }
        bucket.tokens -= 1
        buckets[key] = bucket
        return .allowed
    }
}
