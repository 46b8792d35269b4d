import Foundation

/// A route as the admin API, the dashboard, metrics and alerts see it.
public struct RelayRouteStatus: Hashable, Sendable, Codable {
    public enum Health: String, Hashable, Sendable, Codable {
        case ok
        /// Microsoft refused the route's set-up (authentication, connector); paused until `heldUntil`.
        case paused
        /// Every route of the tenant stopped (`5.7.705`, `5.7.708`) until `heldUntil`.
        case stopped
    }

    public var name: String
    /// `smtp`, `graph`, `connector`, `direct-send`, `sandbox`.
    public var mode: String
    public var tenantID: String?
    public var fallback: String?
    public var health: Health
    public var heldUntil: Date?
    /// Microsoft's reply and what it means, when paused or stopped.
    public var reason: String?
    /// Quota use of each sending mailbox the governor tracks.
    public var mailboxes: [RelayMailboxQuota]
    /// Expiry of the cached access token; nil when the route has none (yet).
    public var tokenExpiresAt: Date?
    /// Expiry of the client certificate, or of the client secret when configured.
    public var credentialExpiresAt: Date?

    public init(
        name: String, mode: String, tenantID: String? = nil, fallback: String? = nil, health: Health = .ok, heldUntil: Date? = nil,
        reason: String? = nil, mailboxes: [RelayMailboxQuota] = [], tokenExpiresAt: Date? = nil, credentialExpiresAt: Date? = nil
    ) {
        self.name = name
        self.mode = mode
        self.tenantID = tenantID
        self.fallback = fallback
        self.health = health
        self.heldUntil = heldUntil
        self.reason = reason
        self.mailboxes = mailboxes
        self.tokenExpiresAt = tokenExpiresAt
        self.credentialExpiresAt = credentialExpiresAt
    }
}

/// One sending mailbox's use of Microsoft's quotas, as the governor counts it.
public struct RelayMailboxQuota: Hashable, Sendable, Codable {
    public struct Use: Hashable, Sendable, Codable {
        public var used: Int
        /// Nil: no limit for this mode.
        public var limit: Int?

        public init(used: Int, limit: Int?) {
            self.used = used
            self.limit = limit
        }
    }

    public var mailbox: String
    public var messagesPerMinute: Use
    public var recipientsPerDay: Use
    public var connections: Use
    /// Set while Microsoft's throttling or the daily quota pauses it.
    public var pausedUntil: Date?

    public init(mailbox: String, messagesPerMinute: Use, recipientsPerDay: Use, connections: Use, pausedUntil: Date? = nil) {
        self.mailbox = mailbox
        self.messagesPerMinute = messagesPerMinute
        self.recipientsPerDay = recipientsPerDay
        self.connections = connections
        self.pausedUntil = pausedUntil
    }
}
