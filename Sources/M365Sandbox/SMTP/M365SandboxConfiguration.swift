import Foundation

/// How the Microsoft 365 simulator behaves. Defaults follow ../shared/M365.md.
public struct M365SandboxConfiguration: Sendable {
    public struct Mailbox: Sendable, Hashable {
        public var address: String
        /// OAuth access tokens accepted for this mailbox with XOAUTH2 (and as Graph bearer tokens).
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

    /// An app registration in Entra ID: its credentials and the mailboxes it
    /// may send as (an application access policy; `["*"]` = every mailbox).
    public struct App: Sendable, Hashable {
        public var clientID: String
        /// Client secret; nil when the app authenticates with a certificate only.
        public var secret: String?
        /// When the secret stops working (`AADSTS7000222`); nil = never.
        public var secretExpires: Date?
        /// The certificate whose key signs client assertions (RS256), as PEM.
        public var certificatePEM: String?
        public var mailboxes: [String]

        public init(clientID: String, secret: String? = nil, secretExpires: Date? = nil, certificatePEM: String? = nil, mailboxes: [String] = ["*"]) {
            self.clientID = clientID
            self.secret = secret
            self.secretExpires = secretExpires
            self.certificatePEM = certificatePEM
            self.mailboxes = mailboxes
        }

        /// Whether the app may send as `mailbox`.
        public func maySend(as mailbox: String) -> Bool {
            mailboxes.contains { $0 == "*" || $0.caseInsensitiveCompare(mailbox) == .orderedSame }
        }
    }

    /// An inbound connector on the tenant MX: matches a client by its IP or
    /// by the subject of its TLS client certificate.
    public struct Connector: Sendable, Hashable {
        public var name: String
        /// CIDR networks, e.g. `"203.0.113.0/24"`.
        public var senderNetworks: [String]
        /// Subject CN or DNS SAN the client certificate must carry.
        public var certificateSubject: String?

        public init(name: String, senderNetworks: [String] = [], certificateSubject: String? = nil) {
            self.name = name
            self.senderNetworks = senderNetworks
            self.certificateSubject = certificateSubject
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

    // MARK: Identity platform (token endpoint)

    /// The tenant in `/{tenant}/oauth2/v2.0/token`; any other is `AADSTS90002`.
    public var tenantID = "sandbox.onmicrosoft.com"
    /// The tenant's directory id, accepted in place of ``tenantID``.
    public var tenantGUID = "5a1db0c5-0000-4000-8000-00000000365a"
    public var apps: [App] = []
    /// `expires_in` of issued tokens: Microsoft issues about an hour (3599 s).
    public var tokenLifetime: TimeInterval = 3599
    /// SMTP refuses a token with less than this left (`501 5.5.127`), as the
    /// High Volume Email endpoint does (600 there); 0 = the submission endpoint's behaviour.
    public var minimumTokenLifetime: TimeInterval = 0
    /// Client assertions may be this far outside `nbf`/`exp` (Entra ID allows 5 minutes).
    public var assertionClockSkew: TimeInterval = 300

    // MARK: Submission quotas, per mailbox (SMTP AUTH and Graph together)

    /// Messages per sliding minute: 30. Past it the submission is delayed (or refused with ``strictQuotas``).
    public var messagesPerMinute = 30
    /// Recipients per rolling 24 hours: 10,000. Past it `554 5.2.0 ... SubmissionQuotaExceededException`.
    public var recipientsPerDay = 10_000
    /// The window of ``messagesPerMinute``: Microsoft's minute; tests shorten it to see a delay in seconds.
    public var messageRateWindow: TimeInterval = 60
    /// Refuse instead of delaying past ``messagesPerMinute`` (SMTP `450 4.7.0`, Graph `429`).
    public var strictQuotas = false

    // MARK: Graph

    /// Largest Graph request body: about 4 MB (`413 ErrorMessageSizeExceeded`).
    public var graphRequestLimit = 4 * 1024 * 1024
    /// Concurrent Graph requests per app and mailbox: 4 (`429 MailboxConcurrency`).
    public var graphConcurrency = 4
    /// Graph requests per app and mailbox in a sliding 10 minutes: 10,000 (`429 ApplicationThrottled`).
    public var graphRequestsPer10Minutes = 10_000
    /// Largest attachment through an upload session: 150 MB.
    public var uploadSessionMaxSize = 150 * 1024 * 1024
    /// How long an upload session URL stays valid.
    public var uploadSessionLifetime: TimeInterval = 3600
    /// Simulated processing time of each authenticated Graph request, so
    /// that tests can hold requests in flight (0 = answer at once).
    public var graphLatency: TimeInterval = 0

    // MARK: Tenant MX (connector endpoint)

    public var connectors: [Connector] = []
    /// Domains of the tenant (Direct Send may deliver to these); nil = the domains of ``mailboxes``.
    public var acceptedDomains: [String]?
    /// The tenant refuses Direct Send (`550 5.7.68`).
    public var rejectDirectSend = false
    /// PEM files of further CAs whose client certificates the MX accepts (the sandbox CA always is).
    public var trustedClientCAFiles: [String] = []

    // MARK: Faults

    /// Faults armed from the start; more can be injected at runtime.
    public var faults: [M365SandboxFault] = []

    /// The clock of quotas, tokens, drafts and upload sessions; tests may move it.
    public var now: @Sendable () -> Date = { Date() }

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }

    /// Accepted domains in effect, lowercased.
    var effectiveAcceptedDomains: Set<String> {
        if let acceptedDomains { return Set(acceptedDomains.map { $0.lowercased() }) }
        return Set(mailboxes.compactMap { $0.address.split(separator: "@").last.map { $0.lowercased() } })
    }

    func mailbox(_ address: String) -> Mailbox? {
        mailboxes.first { $0.address.caseInsensitiveCompare(address) == .orderedSame }
    }

    /// Lowercased addresses `mailbox` may use as sender: itself and its Send As rights.
    func allowedSenders(for mailbox: String) -> Set<String> {
        Set(([mailbox] + (self.mailbox(mailbox)?.sendAs ?? [])).map { $0.lowercased() })
    }
}
