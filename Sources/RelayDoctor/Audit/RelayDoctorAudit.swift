import Foundation
import RelayCore

/// `m365-relay doctor --audit`: the relay's own settings reviewed the way a
/// compliance review (GDPR art. 32, HIPAA §164.312) would: credentials only
/// over TLS, narrow client networks, no passwords to Microsoft, secrets
/// readable by the service only, nothing about to expire, personal data kept
/// no longer than needed, the admin API closed.
///
/// Every rule gives at least one row, `pass` included, so the output reads as
/// a complete review; each item that breaks a rule gives a row of its own
/// naming the setting (its YAML key path) and the fix. The rules are listed in
/// docs/audit.md.
public enum RelayDoctorAudit {
    /// The checklist section of every audit row.
    public static let step = "Audit"

    /// The bounds the review holds the configuration to.
    public struct Options: Sendable, Hashable {
        /// The shortest IPv4 prefix a client network may have (`--widest-network`). Default /16.
        public var widestIPv4Prefix: Int
        /// The shortest IPv6 prefix a client network may have. Default /48, a site's usual allocation.
        public var widestIPv6Prefix: Int
        /// Certificates and secrets expiring within this fail. Default 30 days.
        public var expiryWindow: TimeInterval
        /// A trace retention above this warns (data minimisation, GDPR art. 5(1)(e)). Default 90 days.
        public var longestTraceRetention: TimeInterval

        public init(
            widestIPv4Prefix: Int = 16,
            widestIPv6Prefix: Int = 48,
            expiryWindow: TimeInterval = 30 * 86_400,
            longestTraceRetention: TimeInterval = 90 * 86_400
        ) {
            self.widestIPv4Prefix = widestIPv4Prefix
            self.widestIPv6Prefix = widestIPv6Prefix
            self.expiryWindow = expiryWindow
            self.longestTraceRetention = longestTraceRetention
        }
    }

    /// The audit of `configuration`, one row per rule and per offending item, in a fixed order.
    ///
    /// Reads the files the configuration names (their mode and, for
    /// certificates, their expiry), never their secrets: call it off the
    /// cooperative pool.
    /// - Parameter configurationPath: the configuration file itself, checked
    ///   when it holds a secret (an alert webhook URL, a database password in `storage.url`).
    public static func rows(
        configuration: RelayConfiguration, configurationPath: String?, options: Options = Options(), now: Date = Date()
    ) -> [RelayDoctorRow] {
        var audit = Audit(configuration: configuration, options: options, now: now)
        audit.listenersOfferAuthOnlyUnderTLS()
        audit.clientNetworksAreNarrow()
        audit.openRelayRisk()
        audit.noBasicAuthentication()
        audit.secretFilesArePrivate(configurationPath: configurationPath)
        audit.credentialsDoNotExpireSoon()
        audit.messageBodiesAndTraceRetention()
        audit.adminAPIIsClosed()
        return audit.rows
    }
}

/// The review in progress: the rules append their rows.
struct Audit {
    let configuration: RelayConfiguration
    let options: RelayDoctorAudit.Options
    let now: Date
    var rows: [RelayDoctorRow] = []

    init(configuration: RelayConfiguration, options: RelayDoctorAudit.Options, now: Date) {
        self.configuration = configuration
        self.options = options
        self.now = now
    }

    mutating func add(_ action: String, _ verification: String, _ result: RelayDoctorRow.Result, hint: String = "") {
        rows.append(RelayDoctorRow(step: RelayDoctorAudit.step, action: action, verification: verification, result: result, hint: hint))
    }

    /// A duration as people read it: `30 days`, `12 hours`.
    static func duration(_ seconds: TimeInterval) -> String {
        let whole = Int(seconds.rounded())
        if whole >= 86_400, whole % 86_400 == 0 { return whole == 86_400 ? "1 day" : "\(whole / 86_400) days" }
        if whole >= 3600, whole % 3600 == 0 { return whole == 3600 ? "1 hour" : "\(whole / 3600) hours" }
        return RelayConfigurationSyntax.formatDuration(seconds)
    }
}
