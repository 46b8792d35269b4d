import Foundation
import RelayCore

/// The admin API's JSON: snake_case keys spelled out here (not derived from
/// Swift names, so renaming a property never changes the API), ISO 8601 UTC
/// dates with milliseconds, and every documented key present (`null` when
/// there is no value), so that `jq` scripts see a stable shape.
/// docs/openapi.json describes the same objects.
public enum RelayAdminJSON {
    /// Sorted keys: the same object always reads the same, byte for byte.
    public static func encode<Value: Encodable>(_ value: Value, pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatDate(date))
        }
        return try encoder.encode(value)
    }

    public static func decode<Value: Decodable>(_ type: Value.Type, from data: Data) throws -> Value {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseDate(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 date: \(text)")
            }
            return date
        }
        return try decoder.decode(type, from: data)
    }

    private static let fractionalStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    private static let wholeSecondStyle = Date.ISO8601FormatStyle()

    /// `2026-05-01T09:30:00.250Z`.
    public static func formatDate(_ date: Date) -> String {
        fractionalStyle.format(date)
    }

    /// An ISO 8601 date and time, with or without fractional seconds, `Z` or an offset.
    public static func parseDate(_ text: String) -> Date? {
        if let date = try? fractionalStyle.parse(text) { return date }
        return try? wholeSecondStyle.parse(text)
    }
}

// MARK: - Wire objects

/// `{"error": "..."}`: every error response of the API.
public struct RelayAdminErrorBody: Codable, Hashable, Sendable {
    public var error: String

    public init(error: String) { self.error = error }
}

/// One recipient of a message and where it stands.
public struct RelayAdminRecipient: Codable, Hashable, Sendable {
    public var address: String
    /// `pending`, `delivered` or `failed`.
    public var status: String
    public var lastReply: String?

    enum CodingKeys: String, CodingKey {
        case address, status
        case lastReply = "last_reply"
    }

    public init(_ recipient: RelayRecipient) {
        address = recipient.address
        status = recipient.status.rawValue
        lastReply = recipient.lastReply
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(address, forKey: .address)
        try container.encode(status, forKey: .status)
        try container.encode(lastReply, forKey: .lastReply)
    }
}

/// One message in a list (`GET /api/v1/messages`, and what an action returns).
public struct RelayAdminMessage: Codable, Hashable, Sendable {
    public var id: String
    public var status: RelayTraceStatus
    public var sender: String
    public var recipients: [RelayAdminRecipient]
    public var client: String
    public var clientAddress: String
    public var route: String
    public var size: Int
    public var messageID: String?
    public var receivedAt: Date
    public var finishedAt: Date?
    public var nextAttemptAt: Date?
    public var attempts: Int
    public var lastReply: String?

    enum CodingKeys: String, CodingKey {
        case id, status, sender, recipients, client, route, size, attempts
        case clientAddress = "client_address"
        case messageID = "message_id"
        case receivedAt = "received_at"
        case finishedAt = "finished_at"
        case nextAttemptAt = "next_attempt_at"
        case lastReply = "last_reply"
    }

    public init(_ summary: RelayTraceSummary) {
        id = summary.id
        status = summary.status
        sender = summary.sender
        recipients = summary.recipients.map(RelayAdminRecipient.init)
        client = summary.client
        clientAddress = summary.clientAddress
        route = summary.route
        size = summary.size
        messageID = summary.messageID
        receivedAt = summary.receivedAt
        finishedAt = summary.finishedAt
        nextAttemptAt = summary.nextAttemptAt
        attempts = summary.attempts
        lastReply = summary.lastReply
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(status, forKey: .status)
        try container.encode(sender, forKey: .sender)
        try container.encode(recipients, forKey: .recipients)
        try container.encode(client, forKey: .client)
        try container.encode(clientAddress, forKey: .clientAddress)
        try container.encode(route, forKey: .route)
        try container.encode(size, forKey: .size)
        try container.encode(messageID, forKey: .messageID)
        try container.encode(receivedAt, forKey: .receivedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
        try container.encode(nextAttemptAt, forKey: .nextAttemptAt)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(lastReply, forKey: .lastReply)
    }
}

/// A page of the trace search, newest first.
public struct RelayAdminMessagePage: Codable, Hashable, Sendable {
    public var messages: [RelayAdminMessage]
    /// Pass as `cursor` for the next (older) page; null on the last page.
    public var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case messages
        case nextCursor = "next_cursor"
    }

    public init(_ page: RelayTracePage) {
        messages = page.messages.map(RelayAdminMessage.init)
        nextCursor = page.nextCursor
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(messages, forKey: .messages)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

/// The envelope as received and after policy.
public struct RelayAdminEnvelope: Codable, Hashable, Sendable {
    public var sender: String
    public var recipients: [String]
    public var clientName: String
    public var clientAddress: String
    public var heloName: String
    public var tlsVersion: String?
    public var authenticatedAs: String?
    public var route: String
    public var smtpUTF8: Bool
    public var body8Bit: Bool
    public var messageID: String?
    public var originalSender: String?
    public var policyNotes: [String]

    enum CodingKeys: String, CodingKey {
        case sender, recipients, route
        case clientName = "client_name"
        case clientAddress = "client_address"
        case heloName = "helo_name"
        case tlsVersion = "tls_version"
        case authenticatedAs = "authenticated_as"
        case smtpUTF8 = "smtputf8"
        case body8Bit = "body_8bit"
        case messageID = "message_id"
        case originalSender = "original_sender"
        case policyNotes = "policy_notes"
    }

    public init(_ envelope: RelayEnvelope) {
        sender = envelope.sender
        recipients = envelope.recipients
        clientName = envelope.clientName
        clientAddress = envelope.clientAddress
        heloName = envelope.heloName
        tlsVersion = envelope.tlsVersion
        authenticatedAs = envelope.authenticatedAs
        route = envelope.route
        smtpUTF8 = envelope.smtpUTF8
        body8Bit = envelope.body8Bit
        messageID = envelope.messageID
        originalSender = envelope.originalSender
        policyNotes = envelope.policyNotes ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sender, forKey: .sender)
        try container.encode(recipients, forKey: .recipients)
        try container.encode(clientName, forKey: .clientName)
        try container.encode(clientAddress, forKey: .clientAddress)
        try container.encode(heloName, forKey: .heloName)
        try container.encode(tlsVersion, forKey: .tlsVersion)
        try container.encode(authenticatedAs, forKey: .authenticatedAs)
        try container.encode(route, forKey: .route)
        try container.encode(smtpUTF8, forKey: .smtpUTF8)
        try container.encode(body8Bit, forKey: .body8Bit)
        try container.encode(messageID, forKey: .messageID)
        try container.encode(originalSender, forKey: .originalSender)
        try container.encode(policyNotes, forKey: .policyNotes)
    }
}

/// One event of a timeline.
public struct RelayAdminEvent: Codable, Hashable, Sendable {
    public var at: Date
    public var kind: String
    public var summary: String
    public var details: [String: String]

    public init(_ event: RelayTraceEvent) {
        at = event.at
        kind = event.kind.rawValue
        summary = event.summary
        details = event.details
    }
}

/// `GET /api/v1/messages/{id}`: one message and its whole life, oldest event first.
public struct RelayAdminTimeline: Codable, Hashable, Sendable {
    public var message: RelayAdminMessage
    public var envelope: RelayAdminEnvelope
    public var events: [RelayAdminEvent]
    public var hasContent: Bool

    enum CodingKeys: String, CodingKey {
        case message, envelope, events
        case hasContent = "has_content"
    }

    public init(_ timeline: RelayTraceTimeline) {
        message = RelayAdminMessage(timeline.message)
        envelope = RelayAdminEnvelope(timeline.envelope)
        events = timeline.events.map(RelayAdminEvent.init)
        hasContent = timeline.hasContent
    }
}

/// One quota of a sending mailbox: use and limit (null: no limit).
public struct RelayAdminQuotaUse: Codable, Hashable, Sendable {
    public var used: Int
    public var limit: Int?

    public init(_ use: RelayMailboxQuota.Use) {
        used = use.used
        limit = use.limit
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(used, forKey: .used)
        try container.encode(limit, forKey: .limit)
    }

    enum CodingKeys: String, CodingKey { case used, limit }
}

public struct RelayAdminMailbox: Codable, Hashable, Sendable {
    public var mailbox: String
    public var messagesPerMinute: RelayAdminQuotaUse
    public var recipientsPerDay: RelayAdminQuotaUse
    public var connections: RelayAdminQuotaUse
    public var pausedUntil: Date?

    enum CodingKeys: String, CodingKey {
        case mailbox, connections
        case messagesPerMinute = "messages_per_minute"
        case recipientsPerDay = "recipients_per_day"
        case pausedUntil = "paused_until"
    }

    public init(_ quota: RelayMailboxQuota) {
        mailbox = quota.mailbox
        messagesPerMinute = RelayAdminQuotaUse(quota.messagesPerMinute)
        recipientsPerDay = RelayAdminQuotaUse(quota.recipientsPerDay)
        connections = RelayAdminQuotaUse(quota.connections)
        pausedUntil = quota.pausedUntil
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(mailbox, forKey: .mailbox)
        try container.encode(messagesPerMinute, forKey: .messagesPerMinute)
        try container.encode(recipientsPerDay, forKey: .recipientsPerDay)
        try container.encode(connections, forKey: .connections)
        try container.encode(pausedUntil, forKey: .pausedUntil)
    }
}

/// `GET /api/v1/routes`: one route with its health, quota use and expiries.
public struct RelayAdminRoute: Codable, Hashable, Sendable {
    public var name: String
    public var mode: String
    public var tenantID: String?
    public var fallback: String?
    /// `ok`, `paused` or `stopped`.
    public var health: String
    public var heldUntil: Date?
    public var reason: String?
    public var mailboxes: [RelayAdminMailbox]
    public var tokenExpiresAt: Date?
    public var credentialExpiresAt: Date?

    enum CodingKeys: String, CodingKey {
        case name, mode, fallback, health, reason, mailboxes
        case tenantID = "tenant_id"
        case heldUntil = "held_until"
        case tokenExpiresAt = "token_expires_at"
        case credentialExpiresAt = "credential_expires_at"
    }

    public init(_ route: RelayRouteStatus) {
        name = route.name
        mode = route.mode
        tenantID = route.tenantID
        fallback = route.fallback
        health = route.health.rawValue
        heldUntil = route.heldUntil
        reason = route.reason
        mailboxes = route.mailboxes.map(RelayAdminMailbox.init)
        tokenExpiresAt = route.tokenExpiresAt
        credentialExpiresAt = route.credentialExpiresAt
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(mode, forKey: .mode)
        try container.encode(tenantID, forKey: .tenantID)
        try container.encode(fallback, forKey: .fallback)
        try container.encode(health, forKey: .health)
        try container.encode(heldUntil, forKey: .heldUntil)
        try container.encode(reason, forKey: .reason)
        try container.encode(mailboxes, forKey: .mailboxes)
        try container.encode(tokenExpiresAt, forKey: .tokenExpiresAt)
        try container.encode(credentialExpiresAt, forKey: .credentialExpiresAt)
    }
}

/// `GET /api/v1/routes`.
public struct RelayAdminRouteList: Codable, Hashable, Sendable {
    public var routes: [RelayAdminRoute]

    public init(routes: [RelayAdminRoute]) { self.routes = routes }
}

/// `GET /readyz` (and `/healthz`): `ok`, or `not_ready` with the reason.
public struct RelayAdminReadiness: Codable, Hashable, Sendable {
    public var status: String
    public var reason: String?

    public init(status: String, reason: String?) {
        self.status = status
        self.reason = reason
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(status, forKey: .status)
        try container.encode(reason, forKey: .reason)
    }

    enum CodingKeys: String, CodingKey { case status, reason }
}
