import Foundation
import Logging
import NIOCore
import NIOPosix
import RelayCore
import RelayDNS

/// `m365-relay doctor`: walks the implementation checklist and proves each
/// step from the relay's own configuration, in the order an administrator
/// deploys: configuration, DNS, connectivity, authentication, the connector,
/// a test message, then this host.
///
/// Every row says what was checked, what was found and, when it is not
/// `pass`, exactly what to fix. A step whose prerequisite failed is `skip`
/// with a hint naming the prerequisite, so one cause is reported once.
/// Nothing is sent to Microsoft except with ``Options/sendTest``: the
/// authentication and connector checks stop before DATA.
public struct RelayDoctor: Sendable {
    public struct Options: Sendable {
        /// The configuration, or every problem that kept the file from loading.
        public var configuration: Result<RelayConfiguration, RelayConfigurationError>
        /// The file it came from, for the rows; nil: the built-in sandbox setup.
        public var configurationPath: String?
        /// Sender domains to check in DNS (`--domain`); empty: the domains the configuration sends from.
        public var domains: [String] = []
        /// `--dns-server`: overrides `dns.server`; both nil: the system resolver.
        public var dnsServer: RelayEndpoint?
        /// `--send-test ADDRESS`: send one real message to this address.
        public var sendTest: String?
        /// `--route NAME`: the route of the test message; nil: the first client's route.
        public var route: String?
        /// `--audit`: review the settings (compliance) instead of the checklist.
        public var audit = false
        /// `--widest-network`: the widest IPv4 client network the audit accepts (a prefix length).
        public var widestIPv4Prefix = RelayDoctorAudit.Options().widestIPv4Prefix
        /// One connection attempt, one reply, one HTTP request.
        public var timeout: TimeInterval = 10
        /// The clock expiry dates are compared with.
        public var now: Date = Date()

        public init(configuration: Result<RelayConfiguration, RelayConfigurationError>, configurationPath: String?) {
            self.configuration = configuration
            self.configurationPath = configurationPath
        }

        /// Loads `path`; its problems become the first rows instead of an error.
        public init(configurationFile path: String) {
            let result: Result<RelayConfiguration, RelayConfigurationError>
            do { result = .success(try RelayConfiguration.load(path: path)) } catch { result = .failure(error) }
            self.init(configuration: result, configurationPath: path)
        }
    }

    public var group: any EventLoopGroup
    public var logger: Logger

    /// - Parameter logger: for the delivery code the test message reuses; the rows carry the findings.
    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "m365-relay.doctor", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.group = group
        self.logger = logger
    }

    /// Runs the checklist (or the audit) and returns its rows, in order.
    public func run(_ options: Options) async -> [RelayDoctorRow] {
        let configuration: RelayConfiguration
        switch options.configuration {
        case .success(let loaded):
            configuration = loaded
        case .failure(let error):
            return RelayDoctorConfigurationCheck.problemRows(error, path: options.configurationPath)
                + RelayDoctorStep.afterConfiguration.map {
                    RelayDoctorRow(step: $0, action: "All \($0) checks", verification: "not run", result: .skip,
                                   hint: "Fix the configuration file first (step Configuration)")
                }
        }
        if options.audit {
            return await RelayDoctorIntegration.auditRows(configuration: configuration, options: options)
        }
        var run = RelayDoctorRun(configuration: configuration, options: options, group: group, logger: logger)
        var rows: [RelayDoctorRow] = []
        rows += run.configurationRows()
        rows += await RelayDoctorIntegration.dnsRows(configuration: configuration, options: options)
        rows += await run.connectivityRows()
        rows += await run.authenticationRows()
        rows += await run.connectorRows()
        rows += await run.testMessageRows()
        rows += run.localRows()
        return rows
    }

    /// The exit status of `doctor`: 1 when any row failed, else 0.
    public static func exitStatus(of rows: [RelayDoctorRow]) -> Int32 {
        rows.contains { $0.result == .fail } ? 1 : 0
    }
}

/// The checklist's sections, in order.
enum RelayDoctorStep {
    static let configuration = "Configuration"
    static let dns = "DNS"
    static let connectivity = "Connectivity"
    static let authentication = "Authentication"
    static let connector = "Connector"
    static let testMessage = "Test message"
    static let local = "Local"
    static let afterConfiguration = [dns, connectivity, authentication, connector, testMessage, local]
}

/// One checklist run: the configuration, the options, and what earlier steps
/// found that later ones depend on.
struct RelayDoctorRun {
    let configuration: RelayConfiguration
    let options: RelayDoctorOptionsView
    let group: any EventLoopGroup
    let logger: Logger
    /// Routes the Configuration step found incomplete, with that row's action.
    var incompleteRoutes: [String: String] = [:]
    /// Endpoints whose connectivity failed, with the failed row's action.
    var unreachable: [RelayDoctorEndpoint: String] = [:]
    /// Routes whose credential check failed, with the failed row's action.
    var authenticationFailures: [String: String] = [:]

    init(configuration: RelayConfiguration, options: RelayDoctor.Options, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.options = RelayDoctorOptionsView(options)
        self.group = group
        self.logger = logger
    }

    /// A skip row naming the prerequisite that failed.
    func skipped(_ step: String, _ action: String, because prerequisite: String) -> RelayDoctorRow {
        RelayDoctorRow(step: step, action: action, verification: "not run", result: .skip, hint: "Fix \"\(prerequisite)\" first")
    }
}

/// The options a run reads, without the configuration.
struct RelayDoctorOptionsView: Sendable {
    var configurationPath: String?
    var domains: [String]
    var dnsServer: RelayEndpoint?
    var sendTest: String?
    var route: String?
    var timeout: TimeInterval
    var now: Date

    init(_ options: RelayDoctor.Options) {
        configurationPath = options.configurationPath
        domains = options.domains
        dnsServer = options.dnsServer
        sendTest = options.sendTest
        route = options.route
        timeout = options.timeout
        now = options.now
    }
}
