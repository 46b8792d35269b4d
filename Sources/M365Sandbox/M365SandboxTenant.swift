import Foundation
import Logging
import NIOConcurrencyHelpers
import SMTPCore

/// What the sandbox has done so far, for tests and benchmarks (`GET /sandbox/stats`).
public struct M365SandboxStats: Codable, Sendable, Hashable {
    /// Messages stored by every endpoint.
    public var messagesStored: Int
    /// Refusals for a quota or throttle: `432 4.3.2`, strict per-minute
    /// refusals, the daily recipients quota, Graph `429`s.
    public var throttleRejections: Int
    /// Access tokens issued by the token endpoint.
    public var tokensIssued: Int
    /// Fault strikes still armed.
    public var faultsPending: Int
    /// First and last acceptance time (seconds since 1970, with fractions), for drain times.
    public var firstAcceptedAt: Double?
    public var lastAcceptedAt: Double?
}

/// The tenant's state shared by every endpoint: issued tokens, the
/// per-mailbox submission quotas, armed faults and counters.
final class M365SandboxTenant: Sendable {
    /// How a submission fared against the quotas.
    enum QuotaOutcome: Sendable {
        case accepted(at: Date)
        /// Strict mode only: retry after this many seconds.
        case rateExceeded(retryAfter: Int)
        case recipientsExceeded
    }

    let configuration: M365SandboxConfiguration
    let store: M365SandboxMailStore
    let identity: M365SandboxIdentityPlatform
    let faults: M365SandboxFaults
    let connections = M365SandboxConnections()
    let logger: Logger
    private let quota: NIOLockedValueBox<M365SandboxSubmissionQuota>
    private let throttleRejections = NIOLockedValueBox(0)

    init(configuration: M365SandboxConfiguration, store: M365SandboxMailStore, logger: Logger) throws {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        identity = try M365SandboxIdentityPlatform(configuration: configuration)
        faults = M365SandboxFaults(configuration.faults)
        quota = NIOLockedValueBox(M365SandboxSubmissionQuota(
            messagesPerMinute: configuration.messagesPerMinute, recipientsPerDay: configuration.recipientsPerDay,
            strict: configuration.strictQuotas, minute: configuration.messageRateWindow))
    }

    func recordThrottleRejection() {
        throttleRejections.withLockedValue { $0 += 1 }
    }

    /// Counts a submission against `mailbox`'s quotas; waits out a per-minute
    /// delay unless the quotas are strict.
    func submit(mailbox: String, recipients: Int) async -> QuotaOutcome {
        let now = configuration.now()
        let decision = quota.withLockedValue { $0.submit(mailbox: mailbox, recipients: recipients, now: now) }
        switch decision {
        case .accept(let slot):
            let wait = slot.timeIntervalSince(now)
            if wait > 0 {
                logger.debug("Submission delayed by the per-minute quota", metadata: ["mailbox": "\(mailbox)", "seconds": "\(wait)"])
                try? await Task.sleep(for: .milliseconds(Int((wait * 1000).rounded(.up))))
            }
            return .accepted(at: configuration.now())
        case .rateExceeded(let retryAt):
            recordThrottleRejection()
            return .rateExceeded(retryAfter: max(1, Int(retryAt.timeIntervalSince(now).rounded(.up))))
        case .recipientsExceeded:
            recordThrottleRejection()
            return .recipientsExceeded
        }
    }

    /// The SMTP reply to a quota outcome that refuses.
    static func smtpReply(refusing outcome: QuotaOutcome, limit: Int) -> SMTPReply? {
        switch outcome {
        case .accepted: nil
        case .rateExceeded(let retryAfter):
            SMTPReply(450, .init(4, 7, 0), "Message submission rate for this client has exceeded the configured limit of \(limit) messages per minute; try again in \(retryAfter) seconds")
        case .recipientsExceeded:
            SMTPReply(554, .init(5, 2, 0), "STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Message submission quota exceeded[EndDiagnosticData]")
        }
    }

    var stats: M365SandboxStats {
        let acceptances = store.acceptances
        return M365SandboxStats(
            messagesStored: acceptances.count,
            throttleRejections: throttleRejections.withLockedValue { $0 },
            tokensIssued: identity.tokensIssued,
            faultsPending: faults.pending.reduce(0) { $0 + $1.count },
            firstAcceptedAt: acceptances.map(\.acceptedAt).min()?.timeIntervalSince1970,
            lastAcceptedAt: acceptances.map(\.acceptedAt).max()?.timeIntervalSince1970)
    }

    /// Whether `token` lets its bearer act for `mailbox` with `resource`.
    enum TokenCheck: Sendable, Equatable {
        case valid(app: String?, expiresAt: Date?)
        case expired
        /// A token for another resource (an Outlook token at Graph).
        case wrongAudience
        /// The app may not act for this mailbox (application access policy).
        case mailboxNotAllowed
        case unknown
    }

    func checkToken(_ token: String, mailbox: String, resource: M365SandboxIdentityPlatform.Resource, now: Date = Date()) -> TokenCheck {
        if let issued = identity.issuedToken(token) {
            guard issued.expiresAt > now else { return .expired }
            guard issued.resource == resource else { return .wrongAudience }
            guard issued.app.maySend(as: mailbox) else { return .mailboxNotAllowed }
            return .valid(app: issued.app.clientID, expiresAt: issued.expiresAt)
        }
        // Static tokens from the configuration: the built-in setup and older tests.
        if let any = configuration.anyMailboxToken, token == any { return .valid(app: nil, expiresAt: nil) }
        if configuration.mailbox(mailbox)?.tokens.contains(token) == true { return .valid(app: nil, expiresAt: nil) }
        return .unknown
    }
}
