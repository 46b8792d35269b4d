/// AUTH failures per client address and the lockouts they earn, as a pure
/// state machine: times are seconds on any monotonic-enough scale the caller
/// chooses, passed in with each event.
///
/// The rule (PRODUCT.md, Lockout): `maxFailures` failed AUTH attempts from
/// one address within `window` lock that address out for `lockout`; each
/// further lockout of the same address doubles (up to `maximumLockout`).
/// The doubling is forgotten once the address has gone `forgetAfter`
/// without a failure after its last lockout ended. A success clears the
/// failures counted so far, not the lockout history: one address may be a
/// NAT in front of both a legitimate device and a guesser.
///
/// Each failure also earns a delay before its reply (``Failure/delay``),
/// doubling from `delayBase` with the failures in the window, so that even
/// within the allowance guessing is slow.
///
/// The table is bounded: past `maximumEntries` addresses, idle entries are
/// pruned and then the least recently seen ones dropped.
public struct RelayAuthLockout<Key: Hashable & Sendable>: Sendable {
    public struct Policy: Sendable, Hashable {
        /// `server.limits.auth_failures`. Default 5.
        public var maxFailures: Int
        /// `server.limits.auth_lockout`: the counting window. Default 15 minutes.
        public var window: Double
        /// The first lockout, `auth_lockout` too. Default 15 minutes.
        public var lockout: Double
        /// Doubling stops here. Default 24 hours.
        public var maximumLockout: Double
        /// Quiet time after which the doubling starts over. Default 24 hours.
        public var forgetAfter: Double
        /// Delay before the reply to the first failure, doubled for each later one in the window. Default 0.1 s.
        public var delayBase: Double
        /// Default 5 s: long enough to slow a guesser, short of a client's AUTH timeout.
        public var maximumDelay: Double
        /// Default 100,000 addresses.
        public var maximumEntries: Int

        public init(
            maxFailures: Int = 5, window: Double = 900, lockout: Double = 900, maximumLockout: Double = 86_400,
            forgetAfter: Double = 86_400, delayBase: Double = 0.1, maximumDelay: Double = 5, maximumEntries: Int = 100_000
        ) {
            self.maxFailures = max(1, maxFailures)
            self.window = window
            self.lockout = lockout
            self.maximumLockout = maximumLockout
            self.forgetAfter = forgetAfter
            self.delayBase = delayBase
            self.maximumDelay = maximumDelay
            self.maximumEntries = max(1, maximumEntries)
        }
    }

    /// Whether an AUTH attempt may be checked at all.
    public enum Admission: Sendable, Hashable {
        case allowed
        /// Locked out: refuse without checking the credentials.
        case lockedOut(until: Double)
    }

    /// What a failed attempt earned.
    public struct Failure: Sendable, Hashable {
        /// Failures counted in the window, this one included.
        public var failures: Int
        /// Seconds to wait before replying.
        public var delay: Double
        /// Set when this failure started a lockout.
        public var lockedUntil: Double?
    }

    private struct Entry: Sendable {
        /// Times of the failures still inside the window, oldest first.
        var failures: [Double] = []
        var lockedUntil: Double?
        /// Lockouts so far (for the doubling).
        var lockouts = 0
        var lastSeen: Double
    }

    public let policy: Policy
    private var entries: [Key: Entry] = [:]

    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Addresses remembered (for tests and metrics).
    public var count: Int { entries.count }

    public mutating func admission(_ key: Key, now: Double) -> Admission {
        guard var entry = entries[key] else { return .allowed }
        refresh(&entry, now: now)
        entries[key] = entry
        if let until = entry.lockedUntil, now < until { return .lockedOut(until: until) }
        return .allowed
    }

    public mutating func recordFailure(_ key: Key, now: Double) -> Failure {
        var entry = entries[key] ?? Entry(lastSeen: now)
        refresh(&entry, now: now)
        entry.lastSeen = now
        entry.failures.append(now)
        let count = entry.failures.count
        let delay = min(policy.maximumDelay, policy.delayBase * Double(1 << min(count - 1, 30)))
        var lockedUntil: Double?
        if count >= policy.maxFailures {
            let duration = min(policy.maximumLockout, policy.lockout * Double(1 << min(entry.lockouts, 30)))
            lockedUntil = now + duration
            entry.lockedUntil = lockedUntil
            entry.lockouts += 1
            entry.failures = []
        }
        if entries[key] == nil && entries.count >= policy.maximumEntries { makeRoom(now: now) }
        entries[key] = entry
        return Failure(failures: count, delay: delay, lockedUntil: lockedUntil)
    }

    public mutating func recordSuccess(_ key: Key, now: Double) {
        guard var entry = entries[key] else { return }
        refresh(&entry, now: now)
        entry.failures = []
        entry.lastSeen = now
        entries[key] = isIdle(entry, now: now) ? nil : entry
    }

    /// Drops failures older than the window, an expired lockout, and the
    /// doubling after a quiet `forgetAfter`.
    private func refresh(_ entry: inout Entry, now: Double) {
        entry.failures.removeAll { now - $0 >= policy.window }
        if let until = entry.lockedUntil, now >= until {
            entry.lockedUntil = nil
        }
        if entry.lockedUntil == nil, entry.lockouts > 0, entry.failures.isEmpty, now - entry.lastSeen >= policy.forgetAfter {
            entry.lockouts = 0
        }
    }

    private func isIdle(_ entry: Entry, now: Double) -> Bool {
        entry.failures.isEmpty && entry.lockedUntil == nil && entry.lockouts == 0
    }

    private mutating func makeRoom(now: Double) {
        for (key, var entry) in entries {
            refresh(&entry, now: now)
            if isIdle(entry, now: now) { entries[key] = nil } else { entries[key] = entry }
        }
        // Still full: forget the quarter seen longest ago rather than grow without bound.
        if entries.count >= policy.maximumEntries {
            let oldest = entries.sorted { $0.value.lastSeen < $1.value.lastSeen }.prefix(max(1, entries.count / 4))
            for (key, _) in oldest { entries[key] = nil }
        }
    }
}
