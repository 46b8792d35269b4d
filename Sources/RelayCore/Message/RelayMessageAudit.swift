/// The audit line of one message: what came in, from whom, and what the relay decided.
///
/// Values a client chose (addresses, Message-ID, AUTH identity, HELO) are
/// escaped with ``RelayLogText`` so that a client can neither forge log lines
/// nor hide in terminal escapes. Content is never part of it.
public struct RelayMessageAudit: Hashable, Sendable {
    public enum Decision: String, Hashable, Sendable {
        case queued
        case refused
        /// Storage failed; the client was told to try again (4xx).
        case deferred
    }

    public var queueID: String
    public var envelope: RelayEnvelope
    /// The sender the client gave, when a rewrite replaced it.
    public var originalSender: String?
    public var size: Int?
    public var messageID: String?
    public var decision: Decision
    /// Stable, free of client data (e.g. `header-from-not-allowed`); nil when queued.
    public var reason: String?
    /// The reply code sent to the client.
    public var replyCode: Int
    public var repairs: [RelayRepair]

    public init(
        queueID: String, envelope: RelayEnvelope, originalSender: String? = nil, size: Int? = nil, messageID: String? = nil,
        decision: Decision, reason: String? = nil, replyCode: Int, repairs: [RelayRepair] = []
    ) {
        self.queueID = queueID
        self.envelope = envelope
        self.originalSender = originalSender
        self.size = size
        self.messageID = messageID
        self.decision = decision
        self.reason = reason
        self.replyCode = replyCode
        self.repairs = repairs
    }

    /// Key and value pairs for structured logging, in a stable order.
    public var fields: [(key: String, value: String)] {
        var fields: [(String, String)] = [
            ("queue_id", queueID),
            ("decision", decision.rawValue),
            ("reply", String(replyCode)),
            ("client", RelayLogText.escape(envelope.clientName)),
            ("client_ip", RelayLogText.escape(envelope.clientAddress)),
            ("tls", envelope.tlsVersion.map { RelayLogText.escape($0) } ?? "none"),
            ("auth_identity", envelope.authenticatedAs.map { RelayLogText.escape($0) } ?? "-"),
            ("from", envelope.sender.isEmpty ? "<>" : RelayLogText.escape(envelope.sender)),
            ("rcpt_count", String(envelope.recipients.count)),
            ("route", RelayLogText.escape(envelope.route)),
        ]
        if let originalSender { fields.append(("original_from", originalSender.isEmpty ? "<>" : RelayLogText.escape(originalSender))) }
        if let size { fields.append(("size", String(size))) }
        fields.append(("message_id", messageID.map { RelayLogText.escape($0) } ?? "-"))
        if let reason { fields.append(("reason", reason)) }
        fields.append(("repairs", repairs.isEmpty ? "none" : RelayLogText.escape(repairs.map(\.description).joined(separator: ","))))
        return fields
    }
}
