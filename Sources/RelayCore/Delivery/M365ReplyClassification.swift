import Foundation
import SMTPCore

/// How the relay reached Microsoft 365 for one delivery attempt.
///
/// The classification reads the same reply codes on every transport; the
/// transport picks the advice an operator gets (a connector has no
/// credentials to fix, an SMTP AUTH route has no connector).
/// - SeeAlso: M365.md, Three ways in
public enum M365Transport: String, Sendable, Hashable, CaseIterable {
    /// SMTP AUTH client submission (`smtp.office365.com:587`), and High Volume
    /// Email (`smtp-hve.office365.com:587`), which speaks the same protocol.
    case smtp
    /// The tenant MX through an inbound connector matched by IP or certificate.
    case connector
    /// The tenant MX without authentication; internal recipients only.
    case directSend = "direct-send"
    /// Microsoft Graph `sendMail`.
    case graph

    /// The transport a route `mode` uses. The sandbox speaks SMTP AUTH submission.
    public init(_ mode: RelayConfiguration.RouteMode) {
        switch mode {
        case .smtp, .sandbox: self = .smtp
        case .connector: self = .connector
        case .directSend: self = .directSend
        case .graph: self = .graph
        }
    }
}

/// The parts of a Graph reply that decide what to do next.
///
/// Error bodies are JSON `{"error":{"code":...,"message":...}}`.
/// - SeeAlso: M365.md, Graph sendMail with MIME
public struct M365GraphResponse: Sendable, Hashable, CustomStringConvertible {
    /// The HTTP status, e.g. `202`, `429`.
    public var status: Int
    /// The `Retry-After` header in seconds, when present.
    public var retryAfter: TimeInterval?
    /// `error.code` of the JSON body, e.g. `ErrorSendAsDenied`.
    public var errorCode: String?
    /// `error.message` of the JSON body.
    public var message: String

    public init(status: Int, retryAfter: TimeInterval? = nil, errorCode: String? = nil, message: String = "") {
        self.status = status
        self.retryAfter = retryAfter
        self.errorCode = errorCode
        self.message = message
    }

    /// Status and error code only: the message can name mailboxes.
    public var description: String {
        errorCode.map { "HTTP \(status) \($0)" } ?? "HTTP \(status)"
    }
}

/// An attempt that ended without any reply from Microsoft 365.
public enum M365ConnectionFailure: String, Sendable, Hashable, CaseIterable {
    /// Connecting, or waiting for a reply, took too long.
    case timeout
    /// The endpoint refused the TCP connection.
    case connectionRefused
    /// The connection was reset or closed before the reply (also after the
    /// final dot, when the message may or may not have been accepted).
    case connectionReset
    /// The endpoint's name did not resolve.
    case dnsFailure
    /// The TLS handshake failed (alert, protocol error, reset during handshake).
    case tlsHandshakeFailed
    /// The endpoint's certificate did not verify against the trusted CAs.
    case untrustedCertificate
}

/// What Microsoft 365 answered to one attempt, whichever transport carried it.
public enum M365Reply: Sendable, Hashable {
    /// The reply that ended an SMTP attempt (or refused one recipient).
    case smtp(SMTPReply)
    /// The reply to a Graph request.
    case graph(M365GraphResponse)
    /// No reply at all.
    case connectionFailed(M365ConnectionFailure)
    /// The identity platform refused to issue a token (or could not be reached).
    case tokenRefused(M365TokenFailure)
}

/// Why the Microsoft identity platform issued no token.
///
/// Errors are JSON `{"error": ..., "error_description": "AADSTS7000215: ..."}`.
/// - SeeAlso: M365.md, OAuth
public struct M365TokenFailure: Sendable, Hashable, CustomStringConvertible {
    /// The HTTP status; nil when the endpoint could not be reached.
    public var status: Int?
    /// The OAuth `error`, e.g. `invalid_client`.
    public var error: String
    /// The `AADSTS` code at the start of `error_description`, e.g. `AADSTS7000215`.
    public var code: String?
    /// `error_description` without its trace and correlation ids.
    public var detail: String

    public init(status: Int?, error: String, code: String? = nil, detail: String = "") {
        self.status = status
        self.error = error
        self.code = code
        self.detail = detail
    }

    public var description: String {
        [status.map { "HTTP \($0)" }, code ?? error].compactMap { $0 }.joined(separator: " ")
    }

    /// What an administrator should know about the common `AADSTS` codes.
    public var meaning: String {
        switch code {
        case "AADSTS7000215": "Invalid client secret: the secret is wrong (use the secret's value, not its id)"
        case "AADSTS7000222": "The client secret has expired: create a new one in the app registration"
        case "AADSTS700016": "The application (client id) was not found in the tenant: check client_id and tenant_id, and admin consent"
        case "AADSTS90002", "AADSTS900023": "The tenant was not found: check tenant_id and the login host (national clouds have their own)"
        case "AADSTS700027": "The client assertion's signature did not verify: the certificate uploaded to the app registration must match the route's key"
        case "AADSTS700024": "The client assertion is not within its valid time range: check this host's clock"
        case "AADSTS70011": "The scope is invalid: app-only tokens need a `.default` scope of the right resource"
        case "AADSTS7000112": "The application is disabled"
        case "AADSTS53003": "Blocked by Conditional Access"
        default: status == nil ? "The identity platform could not be reached" : "The identity platform refused the token request"
        }
    }
}

/// What the relay does after a reply. Data only: the words are in
/// ``M365ReplyClassification/meaning`` and ``M365ReplyClassification/remedy``.
///
/// The action applies to what the reply answered: a refused `RCPT` to that
/// recipient, a refused `DATA` or Graph request to the whole message.
/// - SeeAlso: M365.md, Replies to classify (SMTP)
public enum M365ReplyAction: Sendable, Hashable {
    /// Microsoft 365 took the message.
    case delivered
    /// Transient: try again on the retry schedule, not before `retryAfter`
    /// seconds when the reply asked for it.
    case retry(retryAfter: TimeInterval?)
    /// The token is close to expiry or was refused: fetch a new one (once,
    /// shared by every delivery of the route) and try again at once.
    case refreshTokenAndRetry
    /// Throttled: lower this sending mailbox's concurrency and rate, then
    /// retry soon, not before `retryAfter` seconds when given. Other
    /// mailboxes carry on.
    case slowMailbox(retryAfter: TimeInterval?)
    /// The mailbox's recipients per rolling 24 hours are spent: hold its
    /// messages until the quota governor's window frees capacity. Other
    /// mailboxes carry on. The reply carries no time; the governor knows the window.
    case pauseMailboxUntilWindowFrees
    /// Authentication or configuration is wrong for the whole route: pause
    /// it (its fallback, if any, takes over) and alert the operator.
    case pauseRoute
    /// Microsoft refuses the tenant's traffic: open the tenant's circuit
    /// breaker, stop its queue and alert loudly. Retrying only worsens it.
    case stopTenant
    /// Permanent for this message (or recipient): fail it and send the DSN.
    case failMessage
    /// The message is over this route's size limit: use the route's
    /// fallback (or Graph's upload session) if there is one, else fail it.
    case tooLargeForRoute

    /// A short, stable name for metrics labels and the trace.
    public var className: String {
        switch self {
        case .delivered: "ok"
        case .retry: "transient"
        case .refreshTokenAndRetry: "token"
        case .slowMailbox: "throttled"
        case .pauseMailboxUntilWindowFrees: "quota"
        case .pauseRoute: "route-paused"
        case .stopTenant: "tenant-stopped"
        case .failMessage: "permanent"
        case .tooLargeForRoute: "too-large"
        }
    }
}

/// The decision for one Microsoft 365 reply, with the words to log it.
///
/// Pure: the same reply always gives the same decision; no clock, no I/O.
/// ``meaning`` and ``remedy`` are fixed texts, never the reply's own text
/// (which can name mailboxes): log the reply beside them.
/// - SeeAlso: M365.md, Replies to classify (SMTP), Quotas, Graph sendMail with MIME
public struct M365ReplyClassification: Sendable, Hashable {
    public var action: M365ReplyAction
    /// What the reply means, one sentence for logs, trace and the DSN.
    public var meaning: String
    /// What the operator should do, for the alert; nil when nothing.
    public var remedy: String?

    public init(_ action: M365ReplyAction, _ meaning: String, remedy: String? = nil) {
        self.action = action
        self.meaning = meaning
        self.remedy = remedy
    }

    /// Whether the operator must hear of it: the route or tenant stopped.
    public var alerts: Bool {
        switch action {
        case .pauseRoute, .stopTenant: true
        default: false
        }
    }

    /// Classifies one reply.
    ///
    /// - Parameters:
    ///   - reply: what Microsoft 365 answered, or how the connection failed.
    ///   - transport: the route's transport; it shapes the remedy.
    ///   - canRefreshToken: false when this attempt already used a token
    ///     fetched after an authentication failure, or credentials that
    ///     cannot be refreshed (basic AUTH, a static token). A refused
    ///     credential then pauses the route instead of refreshing again
    ///     (M365.md: "refresh token once; then pause route").
    public static func classify(_ reply: M365Reply, on transport: M365Transport, canRefreshToken: Bool = true) -> M365ReplyClassification {
        switch reply {
        case .smtp(let reply): classify(smtp: reply, on: transport, canRefreshToken: canRefreshToken)
        case .graph(let response): classify(graph: response, canRefreshToken: canRefreshToken)
        case .connectionFailed(let failure): classify(failure)
        case .tokenRefused(let failure): classify(failure)
        }
    }

    // MARK: - SMTP

    /// The rows of M365.md's table, first match wins: specific codes and
    /// texts before the generic `4xx` / `5xx` rows.
    static func classify(smtp reply: SMTPReply, on transport: M365Transport, canRefreshToken: Bool) -> M365ReplyClassification {
        let status = reply.enhanced.map { ($0.statusClass, $0.subject, $0.detail) }
        let text = reply.text
        func says(_ words: String) -> Bool { text.range(of: words, options: .caseInsensitive) != nil }

        switch (reply.code, status) {
        case (200..<300, _):
            return .init(.delivered, "Accepted by Microsoft 365")

        // `554 5.2.0` is two things: decided by the text.
        case (500..<600, _) where says("SubmissionQuotaExceeded"):
            return .init(.pauseMailboxUntilWindowFrees,
                         "The sending mailbox has reached its recipients per rolling 24 hours (10,000 by default)",
                         remedy: "Other mailboxes continue; spread the volume over more mailboxes or use High Volume Email")
        case (500..<600, _) where says("SendAsDenied"),
             (_, (5, 2, 252)?),
             (_, (5, 7, 60)?):
            return .init(.failMessage,
                         "The sending mailbox is not allowed to send as this From address (no Send As right)",
                         remedy: "Grant the mailbox Send As on the From address, or send from the mailbox's own address")

        // Authentication and configuration of the route.
        case (_, (5, 7, 57)?):
            return .init(.pauseRoute,
                         "The route sent mail without authenticating, and the endpoint requires it",
                         remedy: transport == .smtp
                             ? "Give the route credentials (OAuth, or basic where still allowed) so that it authenticates before MAIL FROM"
                             : "Anonymous submission reached the SMTP AUTH endpoint: connector and Direct Send routes must use the tenant's MX on port 25")
        case (_, (5, 7, 139)?):
            return .init(.pauseRoute,
                         "SMTP AUTH is disabled for the tenant (or the mailbox)",
                         remedy: "Enable it: Set-TransportConfig -SmtpClientAuthenticationDisabled $false for the tenant, or Set-CASMailbox <mailbox> -SmtpClientAuthenticationDisabled $false for the sending mailbox; security defaults also turn it off")
        case (535, _):
            return authenticationRefused(canRefreshToken: canRefreshToken,
                                         "Microsoft 365 refused the credentials",
                                         remedy: "Check the app's SMTP.SendAsApp permission (admin consent), its Exchange service principal and its permission on the mailbox; that SMTP AUTH is enabled for the mailbox; and that security defaults do not block it")
        case (_, (5, 7, 30)?):
            return .init(.pauseRoute,
                         "Basic authentication is not supported for client submission in this tenant",
                         remedy: "Move the route to OAuth (an app with SMTP.SendAsApp and XOAUTH2) instead of username and password")
        case (430, _),
             (400..<500, _) where says("mailbox logon failure"):
            return .init(.pauseRoute,
                         "The app may not log on to the sending mailbox",
                         remedy: "Register the app's Exchange service principal (New-ServicePrincipal) and grant it the mailbox (Add-MailboxPermission -AccessRights FullAccess)")
        case (_, (5, 5, 127)?),
             (_, _) where says("Token will expire soon"):
            return canRefreshToken
                ? .init(.refreshTokenAndRetry, "The endpoint refused a token close to expiry (High Volume Email wants at least 10 minutes left)")
                : .init(.retry(retryAfter: nil), "The endpoint refused a freshly issued token as close to expiry",
                        remedy: "Check this host's clock and the token lifetime")
        case (504, nil),
             (_, (5, 7, 4)?):
            return .init(.pauseRoute,
                         "The endpoint refused the authentication mechanism",
                         remedy: "AUTH must follow STARTTLS, and the route's mechanism (XOAUTH2 or LOGIN) must be one the endpoint offers")
        case (_, (5, 7, 64)?):
            return .init(.pauseRoute,
                         "No inbound connector of the tenant matched this relay (TenantAttribution)",
                         remedy: "Check the tenant's inbound connector: its sender IP addresses must include this relay's public IP, or its certificate subject must match the route's client certificate; the From domain must be an accepted domain")
        case (_, (5, 7, 68)?):
            return .init(.pauseRoute,
                         "The tenant rejects Direct Send from unauthorised sources",
                         remedy: "Use a connector or SMTP AUTH route, or allow Direct Send again (Set-OrganizationConfig -RejectDirectSend $false)")
        case (421, (4, 7, 66)?):
            return .init(.pauseRoute,
                         "The endpoint refuses TLS 1.0 and 1.1",
                         remedy: "Allow TLS 1.2 or later for the route (system TLS policy, or a TLS-inspecting proxy in the path)")

        // Microsoft refuses the sending IP or the tenant.
        case (_, (_, 7, 705)?),
             (_, (_, 7, 708)?):
            return .init(.stopTenant,
                         "Microsoft 365 refuses this tenant's traffic as suspicious (tenant over threshold, or sending IP not accepted)",
                         remedy: "Check the tenant in the Microsoft 365 Defender portal (restricted entities, compromised accounts) and with Microsoft support; resume the tenant's queue by hand once cleared")
        case (_, (5, 7, 606...649)?):
            return .init(.pauseRoute,
                         "The relay's sending IP is on Microsoft's block list",
                         remedy: "Request delisting at https://sender.office.com, and send through another IP or route meanwhile")

        // Size: another route may take it.
        case (_, (5, 3, 4)?),
             (_, (5, 2, 3)?):
            return .init(.tooLargeForRoute, "The message is larger than the endpoint accepts")

        // Throttling.
        case (432, _),
             (_, (4, 3, 2)?) where says("limit exceeded"):
            return .init(.slowMailbox(retryAfter: nil), "Too many concurrent connections for the sending mailbox")
        case (_, (4, 7, 500...699)?):
            return .init(.retry(retryAfter: nil), "Microsoft 365 restricts this sender for now (access denied, try again later)")

        // Rejected by the ingress first, so only a bug gets here.
        case (_, (5, 7, 512)?),
             (_, (5, 6, 11)?):
            return .init(.failMessage,
                         "The message's From header or line endings are malformed",
                         remedy: "The ingress should have repaired or refused this message: report it as a bug")

        // The generic rows.
        case (400..<500, (4, 4, _)?):
            return .init(.retry(retryAfter: nil), "A network or routing problem on Microsoft's side")
        case (421, _):
            return .init(.retry(retryAfter: nil), "The endpoint is closing the connection (service not available)")
        case (400..<500, _):
            return .init(.retry(retryAfter: nil), "A temporary failure")
        case (500..<600, _):
            return .init(.failMessage, "Microsoft 365 rejected the message permanently")
        default:
            return .init(.retry(retryAfter: nil), "An unexpected reply code")
        }
    }

    // MARK: - Graph

    /// Graph's replies: by status, where one error code can change the
    /// decision (`403 ErrorSendAsDenied` fails the message, other `403`s
    /// pause the route).
    ///
    /// `ErrorMessageSizeExceeded` and `413` are always ``M365ReplyAction/tooLargeForRoute``:
    /// whether a draft with an upload session, the fallback route, or a
    /// failure follows is the route's choice, not the reply's.
    static func classify(graph response: M365GraphResponse, canRefreshToken: Bool) -> M365ReplyClassification {
        let code = response.errorCode ?? ""
        func hasCode(_ name: String) -> Bool { code.caseInsensitiveCompare(name) == .orderedSame }

        switch response.status {
        case 200..<300:
            return .init(.delivered, "Accepted by Graph (delivery continues asynchronously)")
        case 429:
            return .init(.slowMailbox(retryAfter: response.retryAfter), "Graph throttled the app for this mailbox (429 Too Many Requests)")
        case 401:
            return authenticationRefused(canRefreshToken: canRefreshToken,
                                         "Graph refused the access token",
                                         remedy: "Check the app's client id, secret or certificate and the tenant; the login and Graph hosts must be of the same cloud")
        case _ where hasCode("ErrorSendAsDenied"):
            return .init(.failMessage,
                         "The sending mailbox is not allowed to send as this From address (no Send As right)",
                         remedy: "Grant the mailbox Send As on the From address, or send from the mailbox's own address")
        case _ where hasCode("ErrorInvalidRecipients"):
            return .init(.failMessage, "Graph rejected the message's recipients as invalid")
        case 413,
             _ where hasCode("ErrorMessageSizeExceeded"):
            return .init(.tooLargeForRoute, "The request is larger than Graph accepts in one request")
        // The same Exchange exception as over SMTP.
        case 400..<500 where response.message.range(of: "SubmissionQuotaExceeded", options: .caseInsensitive) != nil:
            return .init(.pauseMailboxUntilWindowFrees,
                         "The sending mailbox has reached its recipients per rolling 24 hours (10,000 by default)",
                         remedy: "Other mailboxes continue; spread the volume over more mailboxes")
        case 403,
             _ where hasCode("ErrorAccessDenied"):
            return .init(.pauseRoute,
                         "The app may not send as this mailbox",
                         remedy: "Grant the app the Mail.Send application permission with admin consent, and include the mailbox in any application access policy or RBAC for Applications scope")
        case _ where hasCode("ErrorMimeContentInvalidBase64String"):
            return .init(.failMessage, "Graph could not decode the message",
                         remedy: "The relay sent invalid base64: report it as a bug")
        case 404:
            return .init(.failMessage, "The sending mailbox does not exist in the tenant or has no Exchange Online licence")
        case 408, 500..<600:
            return .init(.retry(retryAfter: response.retryAfter), "Graph failed temporarily")
        case 400..<500:
            return .init(.failMessage, "Graph rejected the message permanently")
        default:
            return .init(.retry(retryAfter: response.retryAfter), "An unexpected HTTP status")
        }
    }

    // MARK: - Connection

    /// No reply: transient, except a certificate that will not verify,
    /// which no retry fixes.
    static func classify(_ failure: M365ConnectionFailure) -> M365ReplyClassification {
        switch failure {
        case .timeout:
            .init(.retry(retryAfter: nil), "The endpoint did not answer in time")
        case .connectionRefused:
            .init(.retry(retryAfter: nil), "The endpoint refused the connection")
        case .connectionReset:
            .init(.retry(retryAfter: nil), "The connection was lost before the reply; if it was lost after the message was sent, a duplicate is possible")
        case .dnsFailure:
            .init(.retry(retryAfter: nil), "The endpoint's name did not resolve", remedy: "If it persists, check the route's host")
        case .tlsHandshakeFailed:
            .init(.retry(retryAfter: nil), "The TLS handshake failed")
        case .untrustedCertificate:
            .init(.pauseRoute,
                  "The endpoint's certificate is not trusted",
                  remedy: "If a TLS-inspecting proxy sits in the path, give the route its CA (ca_file); otherwise check the route's host")
        }
    }

    // MARK: - Identity platform

    /// A refused client (bad secret, unknown app, bad assertion) needs the
    /// administrator: pause the route. An unreachable endpoint or a server
    /// error is transient.
    static func classify(_ failure: M365TokenFailure) -> M365ReplyClassification {
        switch failure.status ?? 0 {
        case 0, 408, 429, 500..<600:
            .init(.retry(retryAfter: nil), failure.meaning)
        default:
            .init(.pauseRoute, failure.meaning,
                  remedy: "Fix the route's tenant_id, client_id and secret or certificate; the route resumes on its own once a token is issued")
        }
    }

    // MARK: - Shared

    /// `535 5.7.3` and Graph `401`: refresh the token once, then pause the route.
    private static func authenticationRefused(canRefreshToken: Bool, _ meaning: String, remedy: String) -> M365ReplyClassification {
        canRefreshToken
            ? .init(.refreshTokenAndRetry, meaning + "; fetching a new token")
            : .init(.pauseRoute, meaning, remedy: remedy)
    }
}
