/// How the Microsoft 365 simulator behaves. Defaults follow ../shared/M365.md.
public struct M365SandboxConfiguration: Sendable {
    public struct Mailbox: Sendable, Hashable {
        public var address: String
        /// OAuth access tokens accepted for this mailbox with XOAUTH2.
        public var tokens: [String]
        /// Password accepted with basic AUTH LOGIN (while the tenant allows it).
        public var password: String?
        /// Addresses this mailbox may send as (Send As permission).
        public var sendAs: [String]

        public init(address: String, tokens: [String] = [], password: String? = nil, sendAs: [String] = []) {
            self.address = address
            self.tokens = tokens
            self.password = password
            self.sendAs = sendAs
        }
    }

    /// Host name in the greeting and in replies, like `*.outlook.office365.com`.
    public var hostname = "sandbox.outlook.office365.com"
    /// Where received messages are kept: `<dataDirectory>/messages/<id>.eml` and `.json`.
    public var dataDirectory: String
    public var mailboxes: [Mailbox] = []
    /// A token accepted for ANY mailbox, which may send only as itself. The
    /// built-in setup uses it so that a new user needs no tenant data.
    public var anyMailboxToken: String?
    /// Message size limit: 35 MB is Microsoft's default.
    public var maxMessageSize = 35 * 1024 * 1024
    /// Concurrent SMTP AUTH connections per mailbox: 3.
    public var maxConnectionsPerMailbox = 3
    /// Recipients per message: 500.
    public var maxRecipients = 500
    /// Addresses the tenant does not know: RCPT gets Exchange's
    /// `550 5.1.10 RESOLVER.ADR.RecipientNotFound`.
    public var unknownRecipients: Set<String> = []

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }
}
