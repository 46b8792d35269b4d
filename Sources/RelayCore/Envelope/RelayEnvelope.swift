import Foundation

/// What the relay knows about a message besides its content: who sent it,
/// to whom, from where, and which route carries it.
public struct RelayEnvelope: Hashable, Sendable, Codable {
    /// The envelope sender; empty for the null sender `<>`.
    public var sender: String
    public var recipients: [String]
    /// Name of the `clients` entry that matched the connection.
    public var clientName: String
    /// The client's IP address as text.
    public var clientAddress: String
    public var heloName: String
    /// TLS protocol of the ingress session, e.g. `TLSv1.3`; nil for plaintext.
    public var tlsVersion: String?
    /// Authenticated identity, if the client used SMTP AUTH.
    public var authenticatedAs: String?
    /// Name of the `routes` entry that delivers the message.
    public var route: String
    /// The client asked for SMTPUTF8 (RFC 6531).
    public var smtpUTF8: Bool
    /// `BODY=8BITMIME` or `BINARYMIME` was given (RFC 6152, RFC 3030).
    public var body8Bit: Bool
    /// The `Message-ID:` header after repair, for the trace; nil when unknown.
    public var messageID: String?
    /// The sender the client gave, when `rewrite_sender` replaced it.
    public var originalSender: String?
    /// What policy changed before queueing (rewrites, repairs), one short text each, for the trace.
    public var policyNotes: [String]?

    public init(
        sender: String, recipients: [String], clientName: String, clientAddress: String,
        heloName: String, tlsVersion: String? = nil, authenticatedAs: String? = nil,
        route: String, smtpUTF8: Bool = false, body8Bit: Bool = false,
        messageID: String? = nil, originalSender: String? = nil, policyNotes: [String]? = nil
    ) {
        self.sender = sender
        self.recipients = recipients
        self.clientName = clientName
        self.clientAddress = clientAddress
        self.heloName = heloName
        self.tlsVersion = tlsVersion
        self.authenticatedAs = authenticatedAs
        self.route = route
        self.smtpUTF8 = smtpUTF8
        self.body8Bit = body8Bit
        self.messageID = messageID
        self.originalSender = originalSender
        self.policyNotes = policyNotes
    }
}

/// Where a message is in its life.
public enum RelayMessageState: String, Hashable, Sendable, Codable, CaseIterable {
    /// Waiting for its next attempt.
    case queued
    /// Every recipient accepted upstream.
    case delivered
    /// Given up: permanent failure or too old. A DSN was sent where one is due.
    case failed
    /// Held by an administrator; not delivered until released.
    case held
    /// Deleted by an administrator before it finished; its content is gone.
    case deleted
}

/// Where one recipient of a message stands.
public enum RelayRecipientStatus: String, Hashable, Sendable, Codable {
    case pending
    case delivered
    case failed
}

public struct RelayRecipient: Hashable, Sendable, Codable {
    public var address: String
    public var status: RelayRecipientStatus
    /// The last upstream reply about this recipient, for the trace and the DSN.
    public var lastReply: String?

    public init(address: String, status: RelayRecipientStatus = .pending, lastReply: String? = nil) {
        self.address = address
        self.status = status
        self.lastReply = lastReply
    }
}

/// A message as the queue holds it.
public struct RelayQueuedMessage: Hashable, Sendable {
    public var id: RelayQueueID
    public var envelope: RelayEnvelope
    public var recipients: [RelayRecipient]
    public var state: RelayMessageState
    public var size: Int
    public var receivedAt: Date
    public var nextAttemptAt: Date
    public var attempts: Int
    public var lastError: String?

    public init(
        id: RelayQueueID, envelope: RelayEnvelope, recipients: [RelayRecipient], state: RelayMessageState,
        size: Int, receivedAt: Date, nextAttemptAt: Date, attempts: Int, lastError: String?
    ) {
        self.id = id
        self.envelope = envelope
        self.recipients = recipients
        self.state = state
        self.size = size
        self.receivedAt = receivedAt
        self.nextAttemptAt = nextAttemptAt
        self.attempts = attempts
        self.lastError = lastError
    }

    public var pendingRecipients: [String] {
        recipients.filter { $0.status == .pending }.map(\.address)
    }
}

/// The result of one delivery attempt, as the queue records it.
public struct RelayAttemptResult: Hashable, Sendable {
    public enum Disposition: Hashable, Sendable {
        /// No recipient is pending any more (each delivered or failed).
        case finished
        /// Some recipients remain; try again at this time.
        case deferred(until: Date)
    }

    public var startedAt: Date
    public var finishedAt: Date
    public var route: String
    /// New status of each recipient that this attempt decided; others stay pending.
    public var recipientUpdates: [RelayRecipient]
    /// The reply or error that sums the attempt up, for the trace.
    public var summary: String
    public var disposition: Disposition
    /// The route the message moves to for its next attempt (a fallback),
    /// when the attempt found this one unable to carry it. Only for a message
    /// none of whose recipients was delivered: never two routes for one message.
    public var reroute: String?
    /// Transport, mailbox and upstream ids, for the trace.
    public var detail: RelayAttemptDetail?

    public init(
        startedAt: Date, finishedAt: Date, route: String, recipientUpdates: [RelayRecipient], summary: String, disposition: Disposition,
        reroute: String? = nil, detail: RelayAttemptDetail? = nil
    ) {
        self.detail = detail
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.route = route
        self.recipientUpdates = recipientUpdates
        self.summary = summary
        self.disposition = disposition
        self.reroute = reroute
    }
}
