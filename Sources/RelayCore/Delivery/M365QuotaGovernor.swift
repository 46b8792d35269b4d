import Foundation

/// Decides, per sending mailbox, whether a message may go to Microsoft 365 now
/// or when it may, so that the mailbox stays inside its quotas.
///
/// Microsoft 365 counts per mailbox: concurrent SMTP connections (or
/// concurrent Graph requests), messages per minute, recipients per rolling
/// 24 hours and, for Graph, requests per 10 minutes. Past them it delays,
/// answers `432 4.3.2`, `429` or `554 5.2.0 ... SubmissionQuotaExceeded`. The
/// governor keeps under them so that throttling is the exception, not the
/// control loop.
///
/// ## Rules
///
/// - **Windows.** Every admitted message is counted from the moment it is
///   admitted (``request(mailbox:recipients:requests:now:)`` returns
///   `.proceed`), in sliding windows: 1 message in the minute window, its
///   recipients in the 24-hour window, its Graph requests in the 10-minute
///   window. When its submission ends (``finished(_:outcome:now:)`` with
///   `.submitted`) the count moves to that moment, which is when Microsoft
///   counted it. An event at `t` counts while `now < t + window` and leaves
///   the window exactly at `t + window`.
/// - **Margin.** Each *rate* limit is paced below the quota by the route's
///   `quota_margin`: `floor(quota × (1 − margin))`, never below 1 (30 a minute
///   with 5 % gives 28; 10,000 a day gives 9,500). The margin absorbs the gap
///   between the time we count a message and the time Microsoft's window sees
///   it. **Concurrency is not reduced by the margin**: the relay counts its own
///   open connections exactly, there is no clock between the two counts, and
///   3 × 0.95 rounded down would throw away a third of the throughput.
/// - **Waiting.** When a rate window or a pause blocks, the answer is
///   `.wait(until:reason:)` with the earliest time *every* time-bound
///   constraint admits the message (windows only free up as time passes, so
///   that is the latest of the individual earliest times); the reason names
///   the binding one. Only when no time-bound constraint blocks and all
///   concurrency slots are taken is the answer `.waitForSlot`: no time is
///   known, a slot frees when one of this mailbox's tickets is
///   ``finished(_:outcome:now:)``.
/// - **Oversized messages.** A message whose recipients exceed the *paced*
///   daily limit but not the quota itself is admitted once the 24-hour window
///   is empty (it fits Microsoft's quota; the margin is ours). One whose
///   recipients exceed the quota itself can never be submitted whole, so the
///   answer is `.tooManyRecipients(maximum:)` at once: the caller splits the
///   recipients into submissions of at most `maximum` (or fails them). With
///   Microsoft's per-message limit of 500 (at most 1,000) this only happens
///   with a low configured `recipients_per_day`. The same "admit once the
///   window is empty" rule applies to a Graph request count above the paced
///   10-minute limit.
/// - **Throttling.** ``throttled(mailbox:retryAfter:now:)`` (a `432 4.3.2` or a
///   Graph `429`) lowers the mailbox's concurrency by one from its current
///   value (never below 1) and pauses it for `Retry-After` seconds when given.
///   **Recovery:** after ``recoveryInterval`` (default 5 minutes) with no
///   further throttle the concurrency rises by one, and by one more after each
///   further interval, until it is back at the quota. A new throttle lowers
///   from the partly recovered value and restarts the clock. A mailbox with
///   no concurrency quota is capped at its in-flight count minus one and the
///   cap is lifted after one quiet interval.
/// - **Pauses.** ``pause(mailbox:until:)`` only ever extends a pause;
///   ``resume(mailbox:)`` ends it.
/// - **Independence.** Every mailbox has its own state; nothing one mailbox
///   does is seen by another. Mailboxes are compared case-insensitively.
///
/// ## Memory
///
/// Per mailbox: the in-flight ticket ids (at most the concurrency), and per
/// window `(time, count)` pairs with one pair per admitted message (messages
/// admitted at the same instant share one), pruned as the window slides. A
/// window therefore holds at most as many pairs as its paced limit (plus one
/// oversized message). A mailbox with nothing in flight, nothing in its
/// windows, no pause and no throttle is forgotten; every mailbox is swept at
/// least once per `max(1,024, mailboxes)` calls, or on ``prune(now:)``.
///
/// Pure: no clock, no I/O, no locks. The caller passes `now`, owns the value
/// (an actor or one task) and keeps messages that must wait in the queue with
/// a not-before time, not in memory.
/// - SeeAlso: M365.md, Quotas; PRODUCT.md, Quotas
public struct M365QuotaGovernor: Sendable {
    /// The answer to ``request(mailbox:recipients:requests:now:)``.
    public enum Decision: Sendable, Hashable {
        /// Send now. The counts are taken; hand the ticket back to
        /// ``finished(_:outcome:now:)`` when the submission is over.
        case proceed(Ticket)
        /// No budget before `until` (always later than `now`): requeue the
        /// message not before then.
        case wait(until: Date, reason: WaitReason)
        /// Every concurrency slot of the mailbox is taken; try again when one
        /// of its submissions finishes (or after a short re-check delay).
        case waitForSlot
        /// The message has more recipients than the mailbox's whole daily
        /// quota; no wait helps. Split it into submissions of at most
        /// `maximum` recipients.
        case tooManyRecipients(maximum: Int)
    }

    /// Which constraint a `.wait` is for.
    public enum WaitReason: String, Sendable, Hashable, CaseIterable {
        /// ``pause(mailbox:until:)`` or a `Retry-After`.
        case paused
        case messagesPerMinute
        case recipientsPerDay
        case requestsPer10Minutes
    }

    /// How a submission that held a ticket ended.
    public enum Outcome: Sendable, Hashable {
        /// The message reached Microsoft (accepted, rejected, or unknown, as
        /// with a connection lost after the data). Its counts stay.
        case submitted
        /// Nothing reached Microsoft's submission (connect, TLS or
        /// authentication failed before `MAIL FROM` / before the request was
        /// sent). Its counts are given back.
        case notSubmitted
    }

    /// Proof that a message was admitted; holds one concurrency slot.
    public struct Ticket: Sendable, Hashable {
        /// The mailbox key (lowercased).
        public let mailbox: String
        public let id: UInt64
        public let issuedAt: Date
        public let recipients: Int
        public let requests: Int
    }

    /// The paced limits the governor enforces; nil means no limit.
    public struct Limits: Sendable, Hashable {
        /// Concurrent connections (SMTP) or requests (Graph): the quota itself.
        public var concurrency: Int?
        public var messagesPerMinute: Int?
        public var recipientsPerDay: Int?
        public var requestsPer10Minutes: Int?

        public init(quotas: RelayConfiguration.Quotas, margin: Double) {
            concurrency = quotas.connections.map { max($0, 1) }
            messagesPerMinute = quotas.messagesPerMinute.map { Self.paced($0, margin: margin) }
            recipientsPerDay = quotas.recipientsPerDay.map { Self.paced($0, margin: margin) }
            requestsPer10Minutes = quotas.requestsPer10Minutes.map { Self.paced($0, margin: margin) }
        }

        /// `floor(quota × (1 − margin))`, at least 1. A margin outside [0, 1)
        /// or not finite counts as 0.
        public static func paced(_ quota: Int, margin: Double) -> Int {
            let margin = margin.isFinite && margin >= 0 && margin < 1 ? margin : 0
            // The epsilon keeps 10,000 × 0.95 at 9,500 whatever the binary rounding.
            let paced = (Double(quota) * (1 - margin) + 1e-9).rounded(.down)
            guard paced < Double(Int.max) else { return Int.max }
            return max(1, Int(paced))
        }
    }

    /// One counter against its limit.
    public struct Counter: Sendable, Hashable {
        public var used: Int
        /// The paced limit (for concurrency: the current, possibly lowered,
        /// one); nil means no limit.
        public var limit: Int?
    }

    /// A mailbox's current counts, for metrics and the admin API.
    public struct Usage: Sendable, Hashable {
        /// Submissions in flight against the current concurrency.
        public var concurrency: Counter
        /// Messages in the last 60 seconds.
        public var messagesPerMinute: Counter
        /// Recipients in the last 24 hours.
        public var recipientsPerDay: Counter
        /// Graph requests in the last 10 minutes.
        public var requestsPer10Minutes: Counter
        /// Set while the mailbox is paused.
        public var pausedUntil: Date?
    }

    static let minute: TimeInterval = 60
    static let tenMinutes: TimeInterval = 600
    static let day: TimeInterval = 86_400

    /// The route's quotas, as configured.
    public let quotas: RelayConfiguration.Quotas
    /// The margin the rate limits are paced by.
    public let margin: Double
    /// What is enforced.
    public let limits: Limits
    /// The quiet time after which a lowered concurrency rises by one.
    public let recoveryInterval: TimeInterval

    var mailboxes: [String: MailboxState] = [:]
    private var nextTicketID: UInt64 = 1
    private var callsSinceSweep = 0

    /// - Parameters:
    ///   - margin: fraction below each rate quota to pace at (`quota_margin`, 0.05).
    ///   - recoveryInterval: see *Throttling* above; 5 minutes by default.
    public init(quotas: RelayConfiguration.Quotas, margin: Double = 0.05, recoveryInterval: TimeInterval = 300) {
        self.quotas = quotas
        self.margin = margin
        self.limits = Limits(quotas: quotas, margin: margin)
        self.recoveryInterval = recoveryInterval.isFinite ? max(recoveryInterval, 0) : 300
    }

    /// The governor for one route: its `quotas` and `quota_margin`.
    public init(route: RelayConfiguration.Route, recoveryInterval: TimeInterval = 300) {
        self.init(quotas: route.quotas, margin: route.quotaMargin, recoveryInterval: recoveryInterval)
    }

    /// The key a mailbox is tracked under: addresses compare case-insensitively.
    public static func key(for mailbox: String) -> String {
        mailbox.lowercased()
    }

    /// How many mailboxes hold state (for metrics and tests).
    public var trackedMailboxes: Int { mailboxes.count }
    /// The mailboxes that hold state, as keyed (for the API and metrics).
    public var mailboxNames: [String] { Array(mailboxes.keys) }

    // MARK: - events

    /// May a message from `mailbox` with `recipients` recipients go now?
    ///
    /// - Parameters:
    ///   - recipients: envelope recipients of this submission (below 0 counts as 0).
    ///   - requests: Graph requests the submission makes (1 for `sendMail`,
    ///     more for a draft and upload session); ignored without a
    ///     requests-per-10-minutes quota.
    /// - Returns: `.proceed` with the counts taken, or why and until when not.
    public mutating func request(mailbox: String, recipients: Int, requests: Int = 1, now: Date) -> Decision {
        sweepIfDue(now: now)
        let key = Self.key(for: mailbox)
        let recipients = max(recipients, 0)
        let requests = max(requests, 0)

        if let quota = quotas.recipientsPerDay, let paced = limits.recipientsPerDay, recipients > max(quota, paced) {
            return .tooManyRecipients(maximum: paced)
        }

        // Taken out of the dictionary, not copied: with the dictionary still
        // holding it, each change to a window would copy the whole window
        // (24 hours of entries for recipients per day) for every message.
        let stored = mailboxes.removeValue(forKey: key)
        let known = stored != nil
        var state = stored ?? MailboxState(limits: limits)
        state.prune(now: now, recoveryInterval: recoveryInterval, concurrencyQuota: limits.concurrency)

        var until: Date?
        var reason = WaitReason.paused
        func consider(_ date: Date?, _ why: WaitReason) {
            guard let date, date > now else { return }
            if let current = until, date <= current { return }
            until = date
            reason = why
        }
        consider(state.pausedUntil, .paused)
        consider(state.messages?.earliestAdmission(cost: 1), .messagesPerMinute)
        consider(state.recipients?.earliestAdmission(cost: recipients), .recipientsPerDay)
        consider(state.requests?.earliestAdmission(cost: requests), .requestsPer10Minutes)

        if let until {
            if known { mailboxes[key] = state }
            return .wait(until: until, reason: reason)
        }
        if let cap = state.concurrencyLimit(now: now, recoveryInterval: recoveryInterval, quota: limits.concurrency),
           state.inFlight.count >= cap {
            if known { mailboxes[key] = state }
            return .waitForSlot
        }

        state.messages?.record(1, at: now)
        state.recipients?.record(recipients, at: now)
        state.requests?.record(requests, at: now)
        let ticket = Ticket(mailbox: key, id: nextTicketID, issuedAt: now, recipients: recipients, requests: requests)
        nextTicketID &+= 1
        state.inFlight.insert(ticket.id)
        mailboxes[key] = state
        return .proceed(ticket)
    }

    /// A submission is over: its concurrency slot is free again.
    ///
    /// Finishing a ticket twice, or one this governor did not issue, changes
    /// nothing. With `.notSubmitted` its message, recipients and requests are
    /// taken out of the windows again.
    public mutating func finished(_ ticket: Ticket, outcome: Outcome = .submitted, now: Date) {
        // Taken out, not copied (see `request`).
        guard var state = mailboxes.removeValue(forKey: ticket.mailbox) else { return }
        guard state.inFlight.remove(ticket.id) != nil else {
            mailboxes[ticket.mailbox] = state
            return
        }
        if outcome == .notSubmitted {
            state.messages?.refund(1, at: ticket.issuedAt)
            state.recipients?.refund(ticket.recipients, at: ticket.issuedAt)
            state.requests?.refund(ticket.requests, at: ticket.issuedAt)
        } else if now > ticket.issuedAt {
            // Microsoft counts a message when it accepts it, at the end of the
            // submission: the count moves there, so that a slow submission (a
            // new connection, a loaded host) cannot let the next one in early.
            state.messages?.refund(1, at: ticket.issuedAt)
            state.messages?.record(1, at: now)
            state.recipients?.refund(ticket.recipients, at: ticket.issuedAt)
            state.recipients?.record(ticket.recipients, at: now)
            state.requests?.refund(ticket.requests, at: ticket.issuedAt)
            state.requests?.record(ticket.requests, at: now)
        }
        state.prune(now: now, recoveryInterval: recoveryInterval, concurrencyQuota: limits.concurrency)
        mailboxes[ticket.mailbox] = state
    }

    /// Microsoft throttled the mailbox (`432 4.3.2`, Graph `429`): lower its
    /// concurrency by one (not below 1) and, when `retryAfter` seconds are
    /// given, pause it that long.
    /// - SeeAlso: M365.md, Replies to classify (`432 4.3.2`), Graph `Retry-After`
    public mutating func throttled(mailbox: String, retryAfter: TimeInterval?, now: Date) {
        let key = Self.key(for: mailbox)
        var state = mailboxes.removeValue(forKey: key) ?? MailboxState(limits: limits)
        state.prune(now: now, recoveryInterval: recoveryInterval, concurrencyQuota: limits.concurrency)
        let current = state.concurrencyLimit(now: now, recoveryInterval: recoveryInterval, quota: limits.concurrency)
            ?? max(state.inFlight.count, 1)
        state.throttle = Throttle(cap: max(current - 1, 1), since: now)
        if let retryAfter, retryAfter.isFinite, retryAfter > 0 {
            state.extendPause(until: now.addingTimeInterval(retryAfter))
        }
        mailboxes[key] = state
    }

    /// Hold the mailbox until `until` (a quota exhausted). Never shortens a
    /// pause already in place.
    public mutating func pause(mailbox: String, until: Date) {
        let key = Self.key(for: mailbox)
        var state = mailboxes.removeValue(forKey: key) ?? MailboxState(limits: limits)
        state.extendPause(until: until)
        mailboxes[key] = state
    }

    /// Microsoft said the daily recipient quota is used up
    /// (`554 5.2.0 ... SubmissionQuotaExceededException`) although the
    /// governor's own count may not show it (other clients send as the same
    /// mailbox). Pauses the mailbox until the oldest recipients the governor
    /// counted leave the 24-hour window, the earliest Microsoft's window could
    /// free anything we know of; with nothing counted, for `probeInterval`.
    /// - Returns: the end of the pause.
    @discardableResult
    public mutating func recipientQuotaExhausted(mailbox: String, now: Date, probeInterval: TimeInterval = 3600) -> Date {
        let key = Self.key(for: mailbox)
        var state = mailboxes.removeValue(forKey: key) ?? MailboxState(limits: limits)
        state.prune(now: now, recoveryInterval: recoveryInterval, concurrencyQuota: limits.concurrency)
        let until = state.recipients?.oldestExpiry ?? now.addingTimeInterval(max(probeInterval, 1))
        state.extendPause(until: until)
        mailboxes[key] = state
        return state.pausedUntil ?? until
    }

    /// End a pause early (an operator's `release`).
    public mutating func resume(mailbox: String) {
        let key = Self.key(for: mailbox)
        mailboxes[key]?.pausedUntil = nil
    }

    /// Slide every mailbox's windows to `now` and forget idle mailboxes.
    public mutating func prune(now: Date) {
        callsSinceSweep = 0
        for key in Array(mailboxes.keys) {
            guard var state = mailboxes.removeValue(forKey: key) else { continue }
            state.prune(now: now, recoveryInterval: recoveryInterval, concurrencyQuota: limits.concurrency)
            mailboxes[key] = state.isIdle(now: now) ? nil : state
        }
    }

    // MARK: - queries

    /// The mailbox's counts at `now` against its limits.
    public func usage(mailbox: String, now: Date) -> Usage {
        let state = mailboxes[Self.key(for: mailbox)] ?? MailboxState(limits: limits)
        return Usage(
            concurrency: Counter(
                used: state.inFlight.count,
                limit: state.concurrencyLimit(now: now, recoveryInterval: recoveryInterval, quota: limits.concurrency)),
            messagesPerMinute: Counter(used: state.messages?.used(at: now) ?? 0, limit: limits.messagesPerMinute),
            recipientsPerDay: Counter(used: state.recipients?.used(at: now) ?? 0, limit: limits.recipientsPerDay),
            requestsPer10Minutes: Counter(used: state.requests?.used(at: now) ?? 0, limit: limits.requestsPer10Minutes),
            pausedUntil: state.pausedUntil.flatMap { $0 > now ? $0 : nil })
    }

    /// `(time, count)` pairs held for a mailbox across its windows (tests, memory checks).
    func storedEntries(mailbox: String) -> Int {
        guard let state = mailboxes[Self.key(for: mailbox)] else { return 0 }
        return (state.messages?.entryCount ?? 0) + (state.recipients?.entryCount ?? 0) + (state.requests?.entryCount ?? 0)
    }

    private mutating func sweepIfDue(now: Date) {
        callsSinceSweep += 1
        if callsSinceSweep >= max(1024, mailboxes.count) { prune(now: now) }
    }
}

// MARK: - per-mailbox state

extension M365QuotaGovernor {
    struct Throttle: Sendable, Hashable {
        /// The lowered concurrency at `since`.
        var cap: Int
        /// The last throttle; recovery counts quiet intervals from here.
        var since: Date
    }

    struct MailboxState: Sendable {
        var inFlight: Set<UInt64> = []
        var messages: SlidingWindow?
        var recipients: SlidingWindow?
        var requests: SlidingWindow?
        var pausedUntil: Date?
        var throttle: Throttle?

        init(limits: Limits) {
            messages = limits.messagesPerMinute.map { SlidingWindow(length: M365QuotaGovernor.minute, limit: $0) }
            recipients = limits.recipientsPerDay.map { SlidingWindow(length: M365QuotaGovernor.day, limit: $0) }
            requests = limits.requestsPer10Minutes.map { SlidingWindow(length: M365QuotaGovernor.tenMinutes, limit: $0) }
        }

        /// The concurrency allowed at `now`: the quota, or the throttled cap
        /// plus one per quiet `recoveryInterval`, up to the quota.
        func concurrencyLimit(now: Date, recoveryInterval: TimeInterval, quota: Int?) -> Int? {
            guard let throttle else { return quota }
            let quiet = now.timeIntervalSince(throttle.since)
            let steps: Int
            if quiet < 0 {
                steps = 0
            } else if recoveryInterval <= 0 {
                steps = Int.max
            } else {
                let intervals = (quiet / recoveryInterval).rounded(.down)
                steps = intervals >= Double(Int.max / 2) ? Int.max / 2 : Int(intervals)
            }
            guard let quota else { return steps >= 1 ? nil : throttle.cap }
            return min(quota, throttle.cap + min(steps, quota))
        }

        mutating func extendPause(until: Date) {
            if let current = pausedUntil, current >= until { return }
            pausedUntil = until
        }

        mutating func prune(now: Date, recoveryInterval: TimeInterval, concurrencyQuota: Int?) {
            messages?.prune(now: now)
            recipients?.prune(now: now)
            requests?.prune(now: now)
            if let until = pausedUntil, until <= now { pausedUntil = nil }
            if throttle != nil,
               concurrencyLimit(now: now, recoveryInterval: recoveryInterval, quota: concurrencyQuota) == concurrencyQuota {
                throttle = nil
            }
        }

        /// Nothing worth remembering (call after ``prune``).
        func isIdle(now: Date) -> Bool {
            inFlight.isEmpty && pausedUntil == nil && throttle == nil
                && (messages?.isEmpty ?? true) && (recipients?.isEmpty ?? true) && (requests?.isEmpty ?? true)
        }
    }

    /// Counts in a sliding window of `length` seconds, as `(time, count)`
    /// pairs oldest first, with a running total.
    struct SlidingWindow: Sendable {
        struct Entry: Sendable {
            var time: Date
            var count: Int
        }

        let length: TimeInterval
        let limit: Int
        private var entries: [Entry] = []
        /// Entries before `head` have left the window (compacted lazily).
        private var head = 0
        private(set) var total = 0

        init(length: TimeInterval, limit: Int) {
            self.length = length
            self.limit = limit
        }

        var entryCount: Int { entries.count - head }
        var isEmpty: Bool { head == entries.count }

        /// When the oldest entry leaves, if any.
        var oldestExpiry: Date? {
            head < entries.count ? entries[head].time.addingTimeInterval(length) : nil
        }

        private func expired(_ entry: Entry, at now: Date) -> Bool {
            entry.time.addingTimeInterval(length) <= now
        }

        mutating func prune(now: Date) {
            while head < entries.count, expired(entries[head], at: now) {
                total -= entries[head].count
                head += 1
            }
            if head == entries.count {
                entries.removeAll(keepingCapacity: entries.count <= 1024)
                head = 0
            } else if head >= 64, head * 2 >= entries.count {
                entries.removeFirst(head)
                head = 0
            }
        }

        /// The count at `now` without pruning.
        func used(at now: Date) -> Int {
            var used = total
            var index = head
            while index < entries.count, expired(entries[index], at: now) {
                used -= entries[index].count
                index += 1
            }
            return used
        }

        /// nil when `cost` fits now (the window must be pruned to now), else
        /// the time enough has left the window. A cost above the limit fits
        /// only an empty window.
        func earliestAdmission(cost: Int) -> Date? {
            if total == 0 || total + cost <= limit { return nil }
            let mustLeave = cost > limit ? total : total + cost - limit
            var left = 0
            for entry in entries[head...] {
                left += entry.count
                if left >= mustLeave { return entry.time.addingTimeInterval(length) }
            }
            return entries.last.map { $0.time.addingTimeInterval(length) }
        }

        mutating func record(_ count: Int, at now: Date) {
            guard count > 0 else { return }
            if head < entries.count, entries[entries.count - 1].time == now {
                entries[entries.count - 1].count += count
            } else {
                entries.append(Entry(time: now, count: count))
            }
            total += count
        }

        /// Take back `count` recorded at `time`, if still in the window.
        mutating func refund(_ count: Int, at time: Date) {
            var index = entries.count - 1
            while index >= head {
                if entries[index].time == time {
                    let taken = min(count, entries[index].count)
                    entries[index].count -= taken
                    total -= taken
                    return
                }
                if entries[index].time < time { return }
                index -= 1
            }
        }
    }
}
