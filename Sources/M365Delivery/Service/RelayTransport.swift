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
    /// What Microsoft answered, for the classification: the reply that ended
    /// the attempt (the end-of-data reply, the refused MAIL or AUTH, the Graph
    /// status, the refused token request, the connection failure). Nil when
    /// the relay decided alone (an invalid address, a missing route).
    public var reply: M365Reply?
    /// The mailbox the attempt authenticated or sent as; the governor's key.
    public var sendingMailbox: String?
    /// Whether the message reached Microsoft's submission (MAIL FROM was sent,
    /// the Graph request was made). False: the quota governor gives the counts back.
    public var submitted: Bool
    /// Graph's `request-id` (for Microsoft's message trace), or Microsoft's
    /// own ids from an SMTP `250`.
    public var upstreamID: String?
    /// Whether this attempt already fetched a new token after Microsoft
    /// refused one (`535 5.7.3`, Graph `401`): classify its reply with
    /// `canRefreshToken: false`, so a second refusal pauses the route.
    public var credentialsRefreshed: Bool = false

    public init(recipients: [Recipient], summary: String, reply: M365Reply? = nil, sendingMailbox: String? = nil, submitted: Bool = true, upstreamID: String? = nil, credentialsRefreshed: Bool = false) {
        self.recipients = recipients
        self.summary = summary
        self.reply = reply
        self.sendingMailbox = sendingMailbox
        self.submitted = submitted
        self.upstreamID = upstreamID
        self.credentialsRefreshed = credentialsRefreshed
    }

    /// Every recipient gets the same status and reason: a connection that failed, a route that is missing.
    public static func all(_ recipients: [String], _ status: Status, _ reason: String, reply: M365Reply? = nil, submitted: Bool = false) -> RelayTransportOutcome {
        RelayTransportOutcome(recipients: recipients.map { Recipient(address: $0, status: status, reply: reason) }, summary: reason, reply: reply, submitted: submitted)
    }
}
