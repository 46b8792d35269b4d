import Foundation

// The message trace: what the relay knows of each message's life, as metadata.
// Content never enters the trace. These types are what storage returns and
// what the admin API, the dashboard and `m365-relay trace` show; their JSON
// (snake_case keys, ISO 8601 dates) is the API's (docs/openapi.json).

/// The status a user filters by. Derived from the queue state:
/// `queued` has no attempt yet, `deferred` is queued after a failed attempt,
/// `bounced` is failed with a delivery status notification sent.
public enum RelayTraceStatus: String, Hashable, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
    case queued, deferred, delivered, failed, bounced, held, deleted
}

/// One event in a message's timeline.
public struct RelayTraceEvent: Hashable, Sendable, Codable {
    public enum Kind: String, Hashable, Sendable, Codable, CaseIterable {
        /// Accepted from a client (the envelope, TLS, identity, size, Message-ID, rewrites and repairs in `details`).
        case received
        /// One delivery attempt (route, transport, mailbox, reply, ids, duration in `details`).
        case attempt
        case delivered
        case deferred
        case failed
        /// A delivery status notification was queued (`details["dsn_id"]`).
        case bounced
        /// Moved to a fallback route.
        case rerouted
        case held
        case released
        /// An administrator asked for an attempt now.
        case retried
        case deleted
    }

    public var at: Date
    public var kind: Kind
    /// One line for people, e.g. `250 2.6.0 <id> Queued mail for delivery`.
    public var summary: String
    /// Machine-readable facts, e.g. `route`, `transport`, `mailbox`, `reply`,
    /// `request_id`, `upstream_id`, `duration_ms`, `by` (who held or deleted).
    public var details: [String: String]

    public init(at: Date, kind: Kind, summary: String, details: [String: String] = [:]) {
        self.at = at
        self.kind = kind
        self.summary = summary
        self.details = details
    }
}

/// What an attempt adds to the trace beyond its summary; the delivery service
/// fills it from the transport's outcome.
public struct RelayAttemptDetail: Hashable, Sendable, Codable {
    /// The route's mode: `smtp`, `graph`, `connector`, `direct-send`, `sandbox`.
    public var transport: String?
    public var sendingMailbox: String?
    /// Graph's `request-id`, or Microsoft's own id from the SMTP `250`.
    public var upstreamID: String?
    /// The reply's class from M365ReplyClassification (e.g. `throttled`), for metrics and the trace.
    public var replyClass: String?

    public init(transport: String? = nil, sendingMailbox: String? = nil, upstreamID: String? = nil, replyClass: String? = nil) {
        self.transport = transport
        self.sendingMailbox = sendingMailbox
        self.upstreamID = upstreamID
        self.replyClass = replyClass
    }
}

/// A search of the trace. Every filter given must match; nil matches all.
public struct RelayTraceQuery: Hashable, Sendable {
    /// Substring of the envelope sender, case-insensitive.
    public var sender: String?
    /// Substring of any envelope recipient, case-insensitive.
    public var recipient: String?
    public var status: RelayTraceStatus?
    /// Received at or after.
    public var since: Date?
    /// Received before.
    public var until: Date?
    /// The `clients` entry's name, exact.
    public var client: String?
    /// The route's name, exact.
    public var route: String?
    /// The `Message-ID:` header, with or without angle brackets, exact.
    public var messageID: String?
    /// A queue id, exact.
    public var queueID: String?
    /// Page size: 1...500, default 50.
    public var limit: Int
    /// `next_cursor` of the previous page; newest first.
    public var cursor: String?

    public static let maximumLimit = 500

    public init(
        sender: String? = nil, recipient: String? = nil, status: RelayTraceStatus? = nil, since: Date? = nil, until: Date? = nil,
        client: String? = nil, route: String? = nil, messageID: String? = nil, queueID: String? = nil, limit: Int = 50, cursor: String? = nil
    ) {
        self.sender = sender
        self.recipient = recipient
        self.status = status
        self.since = since
        self.until = until
        self.client = client
        self.route = route
        self.messageID = messageID
        self.queueID = queueID
        self.limit = limit
        self.cursor = cursor
    }
}

/// One message in a list.
public struct RelayTraceSummary: Hashable, Sendable, Codable {
    public var id: String
    public var status: RelayTraceStatus
    /// Empty for the null sender.
    public var sender: String
    public var recipients: [RelayRecipient]
    public var client: String
    public var clientAddress: String
    public var route: String
    public var size: Int
    public var messageID: String?
    public var receivedAt: Date
    /// When it was delivered, failed or deleted.
    public var finishedAt: Date?
    public var nextAttemptAt: Date?
    public var attempts: Int
    /// The last reply or error.
    public var lastReply: String?

    public init(
        id: String, status: RelayTraceStatus, sender: String, recipients: [RelayRecipient], client: String, clientAddress: String,
        route: String, size: Int, messageID: String?, receivedAt: Date, finishedAt: Date?, nextAttemptAt: Date?, attempts: Int, lastReply: String?
    ) {
        self.id = id
        self.status = status
        self.sender = sender
        self.recipients = recipients
        self.client = client
        self.clientAddress = clientAddress
        self.route = route
        self.size = size
        self.messageID = messageID
        self.receivedAt = receivedAt
        self.finishedAt = finishedAt
        self.nextAttemptAt = nextAttemptAt
        self.attempts = attempts
        self.lastReply = lastReply
    }
}

public struct RelayTracePage: Hashable, Sendable, Codable {
    public var messages: [RelayTraceSummary]
    /// Pass as `cursor` for the next (older) page; nil on the last page.
    public var nextCursor: String?

    public init(messages: [RelayTraceSummary], nextCursor: String?) {
        self.messages = messages
        self.nextCursor = nextCursor
    }
}

/// One message with its whole life, oldest event first.
public struct RelayTraceTimeline: Hashable, Sendable, Codable {
    public var message: RelayTraceSummary
    public var envelope: RelayEnvelope
    public var events: [RelayTraceEvent]
    /// Whether the content is still stored (queued, held, or kept by `trace.keep_bodies`).
    public var hasContent: Bool

    public init(message: RelayTraceSummary, envelope: RelayEnvelope, events: [RelayTraceEvent], hasContent: Bool) {
        self.message = message
        self.envelope = envelope
        self.events = events
        self.hasContent = hasContent
    }
}

/// Mail flow of one hour, for the dashboard's chart: attempts that ended so in that hour.
public struct RelayFlowHour: Hashable, Sendable, Codable {
    public var start: Date
    public var delivered: Int
    public var deferred: Int
    public var failed: Int

    public init(start: Date, delivered: Int, deferred: Int, failed: Int) {
        self.start = start
        self.delivered = delivered
        self.deferred = deferred
        self.failed = failed
    }
}

/// The queue at a glance, for metrics, `/readyz`, alerts and the dashboard.
public struct RelayQueueStatistics: Hashable, Sendable, Codable {
    /// Messages in each status; every status present.
    public var counts: [RelayTraceStatus: Int]
    /// Arrival of the oldest message still queued (not held); nil when none.
    public var oldestQueuedAt: Date?

    public init(counts: [RelayTraceStatus: Int], oldestQueuedAt: Date?) {
        self.counts = counts
        self.oldestQueuedAt = oldestQueuedAt
    }
}

/// An administrator's action on a message: `retry`, `hold`, `release`, `delete`.
public enum RelayQueueAction: String, Hashable, Sendable, Codable, CaseIterable {
    case retry, hold, release, delete

    /// The statuses a message may have for the action: the one rule the
    /// store enforces and the dashboard offers buttons by.
    public var applicableStatuses: Set<RelayTraceStatus> {
        switch self {
        case .retry, .hold: [.queued, .deferred]
        case .release: [.held]
        case .delete: [.queued, .deferred, .held]
        }
    }

    /// The actions a message of `status` allows, in the order above.
    public static func applicable(to status: RelayTraceStatus) -> [RelayQueueAction] {
        allCases.filter { $0.applicableStatuses.contains(status) }
    }
}

/// Why a queue action was refused; the admin API maps these to 404 and 409.
public enum RelayQueueActionError: Error, Hashable, Sendable, CustomStringConvertible {
    case notFound(String)
    /// The message's status does not allow the action (e.g. release of a delivered message).
    case notApplicable(String)
    /// A delivery attempt holds the message right now; try again in a moment.
    case busy(String)

    public var description: String {
        switch self {
        case .notFound(let text), .notApplicable(let text), .busy(let text): text
        }
    }
}
