import Foundation

/// The relay's configuration: the model of the YAML file described in PRODUCT.md.
///
/// Every value is a `var` with its default written next to it, and where the
/// default comes from (an RFC or a Microsoft 365 limit). The model never holds a
/// secret: secrets are referenced through ``RelaySecretSource`` (a file or an
/// environment variable) and read by the composition root.
///
/// Parse with ``parse(yaml:fileName:)``, read a file with ``load(path:)``, get
/// the built-in setup with ``builtInSandbox(dataDirectory:)``, print it with
/// ``renderRedacted()``. Keys the model knows but this version does not act on
/// yet are reported by ``warnings``.
public struct RelayConfiguration: Sendable, Hashable {
    public var server: Server
    public var storage: Storage
    /// The clients allowed to submit mail, matched in file order.
    public var clients: [Client]
    public var routes: [Route]
    public var delivery: Delivery
    /// Domains to sign. Default: none.
    public var dkim: [DKIM]
    /// Default nil: no `admin` section means the admin server is off (PRODUCT.md, Defaults).
    public var admin: Admin?
    /// Default nil: no alerts.
    public var alerts: Alerts?
    /// The message trace: retention and message bodies.
    public var trace: Trace = Trace()
    /// Log format and level.
    public var logging: Logging = Logging()
    /// How `doctor` resolves names.
    public var dns: DNS = DNS()

    public init(
        server: Server = Server(),
        storage: Storage = Storage(),
        clients: [Client] = [],
        routes: [Route] = [],
        delivery: Delivery = Delivery(),
        dkim: [DKIM] = [],
        admin: Admin? = nil,
        alerts: Alerts? = nil
    ) {
        self.server = server
        self.storage = storage
        self.clients = clients
        self.routes = routes
        self.delivery = delivery
        self.dkim = dkim
        self.admin = admin
        self.alerts = alerts
    }

    /// The route named `name`, if any.
    public func route(named name: String) -> Route? {
        routes.first { $0.name == name }
    }

    /// The client named `name`, if any.
    public func client(named name: String) -> Client? {
        clients.first { $0.name == name }
    }
}

// MARK: - server

extension RelayConfiguration {
    /// `server`: how the relay listens.
    public struct Server: Sendable, Hashable {
        /// `hostname`: the name in the greeting, EHLO and `Received:`, and the
        /// DSN's `Reporting-MTA`. Default `"localhost"`: the system host name is
        /// not available to a pure model; the composition root may fill it in.
        public var hostname: String
        /// `listeners`. Default: none (a configuration needs at least one).
        public var listeners: [Listener]
        /// `tls`: the certificate for STARTTLS and implicit TLS. Default nil.
        public var tls: TLS?
        public var limits: Limits
        /// `public_addresses`: the addresses Microsoft sees this relay connect
        /// from (its NAT's outside address), for the SPF and connector checks
        /// of `doctor` and `connector-script`. Default: none known.
        public var publicAddresses: [RelayIPAddress] = []

        public init(hostname: String = "localhost", listeners: [Listener] = [], tls: TLS? = nil, limits: Limits = Limits()) {
            self.hostname = hostname
            self.listeners = listeners
            self.tls = tls
            self.limits = limits
        }
    }

    /// One `server.listeners` entry.
    public struct Listener: Sendable, Hashable {
        /// `address`: `host:port`, IPv6 in brackets (`[::1]:25`). Port 0 picks a free port.
        public var address: RelayEndpoint
        /// `tls`. Default `.none`.
        public var tls: ListenerTLS
        /// `require_tls`: refuse MAIL before STARTTLS. Default false.
        public var requireTLS: Bool
        /// `allow_plaintext_auth`: offer AUTH without TLS, honoured for loopback
        /// clients only. Default false: AUTH only under TLS (RFC 4954 §4).
        public var allowPlaintextAuth: Bool

        public init(address: RelayEndpoint, tls: ListenerTLS = .none, requireTLS: Bool = false, allowPlaintextAuth: Bool = false) {
            self.address = address
            self.tls = tls
            self.requireTLS = requireTLS
            self.allowPlaintextAuth = allowPlaintextAuth
        }
    }

    /// `server.listeners[].tls`.
    public enum ListenerTLS: String, Sendable, Hashable, CaseIterable {
        /// Plain SMTP, no STARTTLS offered.
        case none
        /// Plain SMTP offering STARTTLS (RFC 3207).
        case starttls
        /// TLS from the first byte (RFC 8314 §3.3, usually port 465).
        case implicit
    }

    /// `server.tls`.
    public struct TLS: Sendable, Hashable {
        /// `certificate_file`: PEM certificate chain.
        public var certificateFile: String
        /// `private_key_file` / `private_key_env`: PEM private key.
        public var privateKey: RelaySecretSource
        /// `min_version`: `"1.2"` or `"1.3"`. Default 1.2 (RFC 8996 deprecates
        /// older versions; Microsoft 365 refuses them too).
        public var minimumVersion: TLSVersion

        public init(certificateFile: String, privateKey: RelaySecretSource, minimumVersion: TLSVersion = .v1_2) {
            self.certificateFile = certificateFile
            self.privateKey = privateKey
            self.minimumVersion = minimumVersion
        }
    }

    public enum TLSVersion: String, Sendable, Hashable, CaseIterable {
        case v1_2 = "1.2"
        case v1_3 = "1.3"
    }

    /// `server.limits`: everything that bounds what one client can make the relay do.
    public struct Limits: Sendable, Hashable {
        /// `max_message_size` in octets, advertised in `SIZE` (RFC 1870).
        /// Default 35 MiB: Microsoft 365's default message size limit.
        public var maxMessageSize: Int = 35 * 1_048_576
        /// `max_recipients` per message. Default 500: Microsoft 365's default
        /// recipients-per-message limit (RFC 5321 §4.5.3.1.8 asks for at least 100).
        public var maxRecipients: Int = 500
        /// `max_connections` in total. Default 1000.
        public var maxConnections: Int = 1000
        /// `max_connections_per_ip`. Default 50.
        public var maxConnectionsPerIP: Int = 50
        /// `idle_timeout`: waiting for the next command. Default 5 minutes (RFC 5321 §4.5.3.2.7).
        public var idleTimeout: TimeInterval = 300
        /// `command_timeout`: a started command line must complete within it.
        /// Default 5 minutes (RFC 5321 §4.5.3.2).
        public var commandTimeout: TimeInterval = 300
        /// `data_timeout`: between two chunks of message content, and for the
        /// final dot. Default 10 minutes (RFC 5321 §4.5.3.2.6).
        public var dataTimeout: TimeInterval = 600
        /// `max_errors`: failed commands before the session is closed with `421`. Default 20.
        public var maxErrors: Int = 20
        /// `max_junk_commands`: NOOP, RSET, VRFY and HELP answered free per
        /// accepted message; beyond, each counts as an error. Default 100
        /// (Postfix's `smtpd_junk_command_limit`).
        public var maxJunkCommands: Int = 100
        /// `max_command_line_length` in octets including CRLF. Default 512 (RFC 5321 §4.5.3.1.4).
        public var maxCommandLineLength: Int = 512
        /// `max_line_length` of message text in octets including CRLF. Default 65,536:
        /// devices send longer lines than RFC 5321's 1,000 and Microsoft refuses
        /// them, so the relay takes them and folds or re-encodes them to 998.
        public var maxLineLength: Int = 65_536
        /// `auth_failures`: failed AUTH attempts from one address within
        /// `auth_lockout` that lock it out. Default 5 (PRODUCT.md, Lockout).
        public var authFailures: Int = 5
        /// `auth_lockout`: the counting window and the first lockout, doubling on repeat. Default 15 minutes.
        public var authLockout: TimeInterval = 900
        /// `greeting_delay`: the relay waits this long before its greeting, and a
        /// client that sends anything meanwhile is refused with `554 5.5.0` and
        /// disconnected (RFC 5321 §4.3.1: a client waits for the greeting; spam
        /// engines do not). Default `0s`, off: the relay's clients are known devices,
        /// a connection matching no client is refused at the greeting anyway, and
        /// every connection would pay the wait. Postfix's postscreen waits 6 s;
        /// `1s` to `6s` suits a relay reachable from untrusted networks.
        public var greetingDelay: TimeInterval = 0
        /// `min_data_rate`: octets per second a client must keep up while it sends
        /// a message, measured with `data_timeout` as slack (each octet moves the
        /// deadline on by 1/rate seconds, never beyond `data_timeout` from now);
        /// a client below it gets `421 4.4.2` and is disconnected. `0` turns it off.
        /// Default 500, Postfix's `smtpd_min_data_rate`.
        public var minDataRate: Int = 500

        public init() {}
    }
}

// MARK: - storage

extension RelayConfiguration {
    /// `storage`.
    public struct Storage: Sendable, Hashable {
        /// `url`: `sqlite:PATH` or `postgres://...`. Default
        /// `sqlite:m365-relay-data/relay.sqlite`, relative to the working directory.
        public var location: RelayStorageLocation
        /// `password_file` / `password_env`: the PostgreSQL password, so that it
        /// need not be inline in `url`. Default nil.
        public var password: RelaySecretSource?

        public init(location: RelayStorageLocation = .sqlite(path: "m365-relay-data/relay.sqlite"), password: RelaySecretSource? = nil) {
            self.location = location
            self.password = password
        }
    }
}

// MARK: - clients

extension RelayConfiguration {
    /// One `clients` entry: who may submit, what they may send, and which route carries it.
    public struct Client: Sendable, Hashable {
        /// `name`: unique; recorded in each message's envelope.
        public var name: String
        /// `networks`: CIDRs. An `auth: none` client needs at least one; an
        /// `auth: password` client is limited to them when given.
        public var networks: [RelayNetwork]
        /// `auth`. Default `.none`.
        public var auth: ClientAuth
        /// `username`: the AUTH identity of a password client.
        public var username: String?
        /// `password_hash_file` / `password_hash_env`: the scrypt PHC string from `hash-password`.
        public var passwordHash: RelaySecretSource?
        /// `allowed_senders`: `user@domain`, `*@domain` or `*`. Default `["*"]`:
        /// the client entry itself is the access gate; patterns narrow it.
        public var allowedSenders: [String]
        /// `rewrite_sender`: replaces the envelope sender and `From:`. Default nil.
        public var rewriteSender: String?
        /// `rewrite_display_name`. Default `.keep`.
        public var rewriteDisplayName: DisplayNameRewrite
        /// `reply_to_original`: add `Reply-To:` with the original sender when rewriting. Default false.
        public var replyToOriginal: Bool
        /// `allowed_recipients`: same patterns as `allowed_senders`. Default `["*"]`.
        public var allowedRecipients: [String]
        /// `rate_limit`: e.g. `120/min`. Default nil: no limit besides the route's quotas.
        public var rateLimit: RelayRateLimit?
        /// `route`: the name of a `routes` entry.
        public var route: String
        /// `strip_headers`: header fields removed before queueing (e.g. `X-Originating-IP`),
        /// names compared without case. Default none.
        public var stripHeaders: [String]

        public init(
            name: String,
            route: String,
            networks: [RelayNetwork] = [],
            auth: ClientAuth = .none,
            username: String? = nil,
            passwordHash: RelaySecretSource? = nil,
            allowedSenders: [String] = ["*"],
            rewriteSender: String? = nil,
            rewriteDisplayName: DisplayNameRewrite = .keep,
            replyToOriginal: Bool = false,
            allowedRecipients: [String] = ["*"],
            rateLimit: RelayRateLimit? = nil,
            stripHeaders: [String] = []
        ) {
            self.name = name
            self.route = route
            self.networks = networks
            self.auth = auth
            self.username = username
            self.passwordHash = passwordHash
            self.allowedSenders = allowedSenders
            self.rewriteSender = rewriteSender
            self.rewriteDisplayName = rewriteDisplayName
            self.replyToOriginal = replyToOriginal
            self.allowedRecipients = allowedRecipients
            self.rateLimit = rateLimit
            self.stripHeaders = stripHeaders
        }
    }

    /// `clients[].auth`.
    public enum ClientAuth: String, Sendable, Hashable, CaseIterable {
        /// Matched by source address against `networks`.
        case none
        /// Matched by SMTP AUTH username (RFC 4954).
        case password
    }

    /// `clients[].rewrite_display_name`: what happens to the display name of `From:` when the sender is rewritten.
    public enum DisplayNameRewrite: Sendable, Hashable {
        /// `keep`: the original display name stays.
        case keep
        /// `drop`: no display name.
        case drop
        /// Any other text: this display name.
        case replace(String)
    }
}

// MARK: - recipients inside the tenant

extension RelayConfiguration {
    /// The `allowed_recipients` entry that stands for the tenant's own domains:
    /// the `accepted_domains` (or `domain`) of the client's route.
    public static let internalRecipients = "internal"

    /// A client's `allowed_recipients` with `internal` spelled out as `*@domain`
    /// for each accepted domain of its route.
    public func recipientPatterns(for client: Client) -> [String] {
        guard client.allowedRecipients.contains(Self.internalRecipients) else { return client.allowedRecipients }
        let domains = route(named: client.route)?.effectiveAcceptedDomains ?? []
        return client.allowedRecipients.flatMap { pattern in
            pattern == Self.internalRecipients ? domains.map { "*@" + $0 } : [pattern]
        }
    }
}

// MARK: - routes

extension RelayConfiguration {
    /// One `routes` entry: how messages reach Microsoft 365.
    ///
    /// Defaults that depend on `mode` (endpoint, quotas, maximum size) are
    /// filled in by ``init(name:mode:)`` so that the model always holds the
    /// effective values.
    public struct Route: Sendable, Hashable {
        /// `name`: unique.
        public var name: String
        public var mode: RouteMode
        /// `tenant_id`: tenant GUID or `*.onmicrosoft.com` name.
        public var tenantID: String?
        /// `client_id`: the app registration's application id.
        public var clientID: String?
        /// `client_secret_file` / `client_secret_env`.
        public var clientSecret: RelaySecretSource?
        /// `client_secret_expires`: the day the client secret expires, `YYYY-MM-DD`
        /// (UTC), as Entra shows it under Certificates & secrets. Microsoft does
        /// not tell the relay, so alerts warn only when this is given. Default nil.
        public var clientSecretExpires: Date?
        /// `client_certificate_file`: PEM certificate of the app (JWT client assertion).
        public var clientCertificateFile: String?
        /// `client_key_file` / `client_key_env`: its PEM private key.
        public var clientKey: RelaySecretSource?
        /// `login_url`. Default `https://login.microsoftonline.com` (public cloud).
        public var loginURL: String
        /// `graph_url`. Default `https://graph.microsoft.com` (public cloud).
        public var graphURL: String
        /// `smtp_endpoint`: `host:port`. Default `smtp.office365.com:587` for
        /// `smtp` (M365.md); nil for other modes (connector and direct send use
        /// the tenant MX; the sandbox route runs in-process unless given).
        public var smtpEndpoint: RelayEndpoint?
        /// `ca_file`: extra trust anchors (a corporate TLS-inspecting proxy). Default nil.
        public var caFile: String?
        /// `tls`. Default `.required`; `.none` is accepted for a loopback endpoint only.
        public var tls: RouteTLS
        /// `username`: basic AUTH LOGIN user, where the tenant still allows it.
        public var username: String?
        /// `password_file` / `password_env`: basic AUTH password.
        public var password: RelaySecretSource?
        /// `token_file` / `token_env`: a static OAuth access token for XOAUTH2.
        public var token: RelaySecretSource?
        /// `mailbox`: the sending mailbox. Default nil: send as the envelope sender.
        public var mailbox: String?
        /// `scope`: OAuth scope override (national clouds). Default nil: see ``effectiveScope``.
        public var scope: String?
        /// `quotas`. Keys left out take the mode's defaults (M365.md, Quotas).
        public var quotas: Quotas
        /// `quota_margin`: the governor paces this fraction below each quota.
        /// Default 0.05 (PRODUCT.md, Quotas). Written `5%` or `0.05`.
        public var quotaMargin: Double
        /// `fallback`: the route for messages larger than `max_message_size`. Default nil.
        public var fallback: String?
        /// `max_message_size` in octets. Default 35 MiB (Microsoft 365's
        /// default), 150 MiB for `graph` (upload sessions, M365.md).
        public var maxMessageSize: Int
        /// The tenant's MX for `connector` and `direct-send` (port 25 unless
        /// given); nil: derived from `domain` (`contoso-com.mail.protection.outlook.com`).
        public var mxEndpoint: RelayEndpoint?
        /// The tenant's domain the MX is derived from, e.g. `contoso.com`.
        public var domain: String?
        /// Domains Direct Send may deliver to (the tenant's accepted domains);
        /// empty: `domain` alone.
        public var acceptedDomains: [String] = []
        /// What a `graph` route does with a message over Graph's request limit.
        public var largeMessages: LargeMessages = .upload

        /// The tenant MX a `connector` or `direct-send` route delivers to.
        public var effectiveMXEndpoint: RelayEndpoint? {
            if let mxEndpoint { return mxEndpoint }
            guard let domain, !domain.isEmpty else { return nil }
            return RelayEndpoint(host: domain.lowercased().replacingOccurrences(of: ".", with: "-") + ".mail.protection.outlook.com", port: 25)
        }

        /// The domains Direct Send accepts recipients in.
        public var effectiveAcceptedDomains: [String] {
            acceptedDomains.isEmpty ? (domain.map { [$0.lowercased()] } ?? []) : acceptedDomains.map { $0.lowercased() }
        }

        public init(name: String, mode: RouteMode) {
            self.name = name
            self.mode = mode
            self.loginURL = "https://login.microsoftonline.com"
            self.graphURL = "https://graph.microsoft.com"
            self.smtpEndpoint = mode == .smtp ? RelayEndpoint(host: "smtp.office365.com", port: 587) : nil
            self.tls = .required
            self.quotas = Quotas.defaults(for: mode)
            self.quotaMargin = 0.05
            self.maxMessageSize = mode == .graph ? 150 * 1_048_576 : 35 * 1_048_576
        }

        /// The OAuth scope to request: `scope` when set, else the mode's
        /// resource (`https://outlook.office365.com/.default` for SMTP,
        /// `<graph_url>/.default` for Graph).
        /// - SeeAlso: M365.md, OAuth
        public var effectiveScope: String {
            if let scope { return scope }
            switch mode {
            case .graph:
                let base = graphURL.hasSuffix("/") ? String(graphURL.dropLast()) : graphURL
                return base + "/.default"
            case .smtp, .connector, .directSend, .sandbox:
                return "https://outlook.office365.com/.default"
            }
        }
    }

    /// `routes[].mode`.
    /// What a `graph` route does with a message larger than one Graph request.
    public enum LargeMessages: String, Sendable, Hashable, CaseIterable {
        /// A draft, upload sessions for the attachments, then send.
        case upload
        /// The route's `fallback` takes it.
        case fallback
    }

    public enum RouteMode: String, Sendable, Hashable, CaseIterable {
        /// SMTP AUTH client submission (XOAUTH2, or basic where still allowed).
        case smtp
        /// Microsoft Graph `sendMail` with the MIME message.
        case graph
        /// The tenant MX through a certificate- or IP-based inbound connector.
        case connector
        /// The tenant MX without authentication; internal recipients only.
        case directSend = "direct-send"
        /// The built-in Microsoft 365 simulator.
        case sandbox
    }

    /// `routes[].tls`.
    public enum RouteTLS: String, Sendable, Hashable, CaseIterable {
        /// STARTTLS (or HTTPS) with certificate verification.
        case required
        /// Plaintext; loopback endpoints only (a local sandbox or test peer).
        case none
    }

    /// `routes[].quotas`. nil means "no limit known for this mode".
    public struct Quotas: Sendable, Hashable {
        /// `messages_per_minute` per sending mailbox.
        public var messagesPerMinute: Int?
        /// `recipients_per_day` per sending mailbox, rolling 24 hours.
        public var recipientsPerDay: Int?
        /// `connections`: concurrent SMTP connections, or concurrent requests for `graph`.
        public var connections: Int?
        /// `requests_per_10_minutes`: Graph requests per app and mailbox.
        public var requestsPer10Minutes: Int?

        public init(messagesPerMinute: Int? = nil, recipientsPerDay: Int? = nil, connections: Int? = nil, requestsPer10Minutes: Int? = nil) {
            self.messagesPerMinute = messagesPerMinute
            self.recipientsPerDay = recipientsPerDay
            self.connections = connections
            self.requestsPer10Minutes = requestsPer10Minutes
        }

        /// Microsoft 365's documented defaults per mode (M365.md, Quotas):
        /// SMTP AUTH 3 connections, 30 messages a minute, 10,000 recipients a
        /// day; Graph 4 concurrent requests, 10,000 requests per 10 minutes and
        /// the same mailbox limits. Connector and Direct Send have no
        /// per-mailbox limits. The sandbox reproduces SMTP AUTH's.
        public static func defaults(for mode: RouteMode) -> Quotas {
            switch mode {
            case .smtp, .sandbox:
                Quotas(messagesPerMinute: 30, recipientsPerDay: 10_000, connections: 3)
            case .graph:
                Quotas(messagesPerMinute: 30, recipientsPerDay: 10_000, connections: 4, requestsPer10Minutes: 10_000)
            case .connector, .directSend:
                Quotas()
            }
        }
    }
}

// MARK: - delivery

extension RelayConfiguration {
    /// `delivery`.
    public struct Delivery: Sendable, Hashable {
        /// `retry`: delays after the 1st, 2nd, ... failed attempt; the last repeats.
        /// Default 1m, 5m, 15m, 1h, 4h.
        public var retry: [TimeInterval] = [60, 300, 900, 3600, 14_400]
        /// `max_age`: a message still undelivered this long after arrival fails.
        /// Default 5 days (RFC 5321 §4.5.4.1 suggests at least 4–5 days).
        public var maxAge: TimeInterval = 5 * 86_400
        /// `bounces`: who gets the DSN for a failed message. Default `.sender`.
        public var bounces: BounceTarget = .sender
        /// `operator`: the address for `bounces: operator`, and the sender of
        /// bounces for routes without a `mailbox`. Default nil.
        public var operatorAddress: String?
        /// `concurrency`: simultaneous deliveries. Default 16.
        public var concurrency: Int = 16
        /// `route_pause`: how long a route Microsoft refused (authentication,
        /// connector attribution) waits before it is tried again. Default 5m.
        public var routePause: TimeInterval = 300
        /// `tenant_stop`: how long a tenant's routes stop when Microsoft refuses
        /// the tenant's traffic (`5.7.705`, `5.7.708`). Default 1h.
        public var tenantStop: TimeInterval = 3600

        public init() {}
    }

    /// `delivery.bounces`.
    public enum BounceTarget: String, Sendable, Hashable, CaseIterable {
        /// The message's envelope sender (RFC 5321 §6.1).
        case sender
        /// `delivery.operator`.
        case `operator`
        /// No DSN; the failure is in the trace only.
        case none
    }
}

// MARK: - dkim, admin, alerts

extension RelayConfiguration {
    /// One `dkim` entry.
    public struct DKIM: Sendable, Hashable {
        public var domain: String
        public var selector: String
        /// `private_key_file` / `private_key_env`: PEM, RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
        public var privateKey: RelaySecretSource
        /// `headers` to sign. Default ``defaultHeaders`` (PRODUCT.md, DKIM).
        public var headers: [String]

        public static let defaultHeaders = [
            "From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Reply-To",
        ]

        public init(domain: String, selector: String, privateKey: RelaySecretSource, headers: [String] = DKIM.defaultHeaders) {
            self.domain = domain
            self.selector = selector
            self.privateKey = privateKey
            self.headers = headers
        }
    }

    /// `admin`: the HTTP admin API, metrics and dashboard.
    public struct Admin: Sendable, Hashable {
        /// `address`. Default `127.0.0.1:8025`.
        public var address: RelayEndpoint
        /// `token_file` / `token_env`: the bearer token, required outside loopback.
        public var token: RelaySecretSource?

        public init(address: RelayEndpoint = RelayEndpoint(host: "127.0.0.1", port: 8025), token: RelaySecretSource? = nil) {
            self.address = address
            self.token = token
        }
    }

    /// `trace`: how long the message trace is kept.
    public struct Trace: Sendable, Hashable {
        /// `retention`: finished messages (delivered, failed, deleted) are
        /// removed from the trace this long after they finished. Default 30 days.
        public var retention: TimeInterval = 30 * 86_400
        /// `keep_bodies`: how long a finished message's content is kept, for
        /// inspection. Default 0: removed once delivered or failed for good.
        public var keepBodies: TimeInterval = 0

        public init() {}
    }

    /// `dns`: the resolver `doctor` asks (the relay itself resolves nothing:
    /// Microsoft's endpoints are reached through the system's resolver).
    public struct DNS: Sendable, Hashable {
        /// `server`: `host:port` of a DNS server; default nil, the first
        /// `nameserver` of /etc/resolv.conf. `doctor --dns-server` overrides it.
        public var server: RelayEndpoint?
        /// `timeout`: for one query. Default 5 s.
        public var timeout: TimeInterval = 5

        public init() {}
    }

    /// `logging`: one line per event on standard error.
    public struct Logging: Sendable, Hashable {
        public enum Format: String, Sendable, Hashable, CaseIterable {
            /// swift-log's default text lines.
            case text
            /// One JSON object per line.
            case json
            /// `key=value` pairs (logfmt).
            case logfmt
        }

        /// `format`. Default text.
        public var format: Format = .text
        /// `level`: trace, debug, info, notice, warning, error, critical. Default info.
        /// `--log-level` on the command line overrides it.
        public var level: String = "info"

        public static let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

        public init() {}
    }

    /// `alerts`: webhook notifications.
    ///
    /// An alert fires when AUTH failures burst, when Microsoft throttles a
    /// route, when a route is paused or a tenant's routes are stopped, when
    /// the queue grows or ages past a threshold, and when a certificate,
    /// client secret or static token expires. While it keeps firing it is
    /// repeated at most every `repeat_interval`; when it clears, one
    /// `resolved` message is sent.
    public struct Alerts: Sendable, Hashable {
        /// `format`: the body of the webhook POST.
        public enum Format: String, Sendable, Hashable, CaseIterable {
            /// `{"alert", "status", "severity", "title", "text", "relay", "at", "details"}`.
            case json
            /// `{"text": ...}`: Slack incoming webhooks (and most chat webhooks).
            case slack
            /// A message with an Adaptive Card attachment, as Microsoft Teams Workflows webhooks accept.
            case teams
        }

        /// `webhook_url`: receives a POST per alert. Shown redacted: webhook URLs often carry a capability in their path.
        public var webhookURL: String?
        /// `format`. Default `json`.
        public var format: Format = .json
        /// `queue_size`: alert when more messages than this wait for delivery. Default 1000.
        public var queueSize: Int = 1000
        /// `queue_age`: alert when the oldest queued message is older than this. Default 1 hour.
        public var queueAge: TimeInterval = 3600
        /// `repeat_interval`: the same alert is not sent again within this. Default 15 minutes.
        public var repeatInterval: TimeInterval = 900
        /// `auth_failures`: alert when more AUTH failures than this (from all
        /// addresses together) happen within `auth_window`. Default 20.
        public var authFailures: Int = 20
        /// `auth_window`. Default 5 minutes.
        public var authWindow: TimeInterval = 300
        /// `expiry_warning`: alert when a certificate or client secret expires
        /// within this. Default 14 days. (Access tokens live an hour and are
        /// renewed; a static `token_file` alerts once it has expired.)
        public var expiryWarning: TimeInterval = 14 * 86_400
        /// `check_interval`: how often the queue and the expiry dates are checked. Default 30 seconds.
        public var checkInterval: TimeInterval = 30
        /// `ca_file`: extra trust anchors for an `https` webhook (a private CA).
        /// Default nil: the system's trust store.
        public var caFile: String?

        public init(webhookURL: String? = nil) {
            self.webhookURL = webhookURL
        }
    }
}

extension RelayConfigurationSyntax {
    /// Parses a calendar day `YYYY-MM-DD` as its first instant in UTC; nil when malformed or not a real day.
    public static func day(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let parts = trimmed.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].utf8.count == 4, parts[1].utf8.count == 2, parts[2].utf8.count == 2,
              parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2])
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: day)) else { return nil }
        // `date(from:)` rolls 2025-02-30 over to March: refuse days that do not exist.
        let back = calendar.dateComponents([.year, .month, .day], from: date)
        guard back.year == year, back.month == month, back.day == day else { return nil }
        return date
    }

    /// Writes the UTC calendar day of `date` as `YYYY-MM-DD`.
    public static func formatDay(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }
}
