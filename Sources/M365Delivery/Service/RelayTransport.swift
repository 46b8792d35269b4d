import RelayCore
import RelayStorage

/// Carries messages of one route to the next hop. One implementation per route `mode`.
public protocol RelayTransport: Sendable {
    /// Sends `message` to `recipients` (its pending ones), reading its content
    /// from `content`. Never throws: every failure is an outcome per recipient.
    func deliver(_ message: RelayQueuedMessage, recipients: [String], content: any RelayContentReader) async -> RelayTransportOutcome
    /// Closes idle connections.
    func shutdown() async
}

/// What one attempt achieved, recipient by recipient.
public struct RelayTransportOutcome: Sendable, Hashable {
    public enum Status: Sendable, Hashable {
        case delivered
        case temporaryFailure
        case permanentFailure
    }

    public struct Recipient: Sendable, Hashable {
        public var address: String
        public var status: Status
        /// The upstream reply or error, for the trace and the DSN.
        public var reply: String

        public init(address: String, status: Status, reply: String) {
            self.address = address
            self.status = status
            self.reply = reply
        }
    }

    public var recipients: [Recipient]
    /// The reply that sums the attempt up (the end-of-data reply, or the error).
    public var summary: String

    public init(recipients: [Recipient], summary: String) {
        self.recipients = recipients
        self.summary = summary
    }

    /// Every recipient gets the same status and reason: a connection that failed, a route that is missing.
    public static func all(_ recipients: [String], _ status: Status, _ reason: String) -> RelayTransportOutcome {
        RelayTransportOutcome(recipients: recipients.map { Recipient(address: $0, status: status, reply: reason) }, summary: reason)
    }
}
