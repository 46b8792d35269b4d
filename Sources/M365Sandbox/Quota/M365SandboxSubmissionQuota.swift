import Foundation

/// Exchange Online's per-mailbox submission quotas, decided without a clock:
/// messages per sliding minute and recipients per rolling 24 hours, shared by
/// SMTP AUTH and Graph.
///
/// Past the per-minute rate Microsoft delays the submission rather than
/// refusing it; the ledger reserves the earliest time the window allows, so
/// that concurrent submissions queue behind each other.
struct M365SandboxSubmissionQuota: Sendable {
    enum Decision: Hashable, Sendable {
        /// Accept at `at` (now, or later when the per-minute window is full).
        case accept(at: Date)
        /// Strict mode: the per-minute window is full until `retryAt`.
        case rateExceeded(retryAt: Date)
        /// The rolling 24 hours would exceed the recipients quota.
        case recipientsExceeded
    }

    var messagesPerMinute: Int
    var recipientsPerDay: Int
    var strict: Bool
    /// The per-minute window: 60 s (tests shorten it).
    var minute: TimeInterval
    private static let day: TimeInterval = 86_400

    /// Per mailbox: submission times (possibly reserved in the future) and recipients per submission.
    private var submissions: [String: [(at: Date, recipients: Int)]] = [:]

    init(messagesPerMinute: Int, recipientsPerDay: Int, strict: Bool, minute: TimeInterval = 60) {
        self.messagesPerMinute = messagesPerMinute
        self.recipientsPerDay = recipientsPerDay
        self.strict = strict
        self.minute = minute
    }

    /// Decides a submission of `recipients` recipients by `mailbox` at `now`, and records it when accepted.
    mutating func submit(mailbox: String, recipients: Int, now: Date) -> Decision {
        let key = mailbox.lowercased()
        var entries = submissions[key, default: []].filter { $0.at > now.addingTimeInterval(-Self.day) }
        defer { submissions[key] = entries }
        let recipientsInDay = entries.reduce(0) { $0 + $1.recipients }
        if recipientsInDay + recipients > recipientsPerDay { return .recipientsExceeded }
        // Reservations are made in time order, so the entries are sorted.
        let recent = entries.filter { $0.at > now.addingTimeInterval(-minute) }
        var slot = now
        if messagesPerMinute > 0, recent.count >= messagesPerMinute {
            slot = max(now, recent[recent.count - messagesPerMinute].at.addingTimeInterval(minute))
        }
        if slot > now && strict { return .rateExceeded(retryAt: slot) }
        entries.append((slot, recipients))
        return .accept(at: slot)
    }
}
