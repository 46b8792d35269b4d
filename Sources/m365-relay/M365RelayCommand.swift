import ArgumentParser
import Foundation
import Logging
import M365Sandbox
import NIOPosix
import RelayCore
import RelayServer
import ServiceLifecycle

/// The `m365-relay` command line: argument parsing only; the work is in RelayServer.
@main
struct M365RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "m365-relay",
        abstract: "An SMTP relay that delivers mail through Microsoft 365.",
        subcommands: [Serve.self, CheckConfig.self, DoctorCommand.self, ConnectorScriptCommand.self, Sandbox.self, HashPassword.self, QueueCommand.self, TraceCommand.self])

    /// Exit codes of PRODUCT.md: 0 success, 1 a check failed, 2 usage error, 3 could not start.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as RelayStartupError {
            FileHandle.standardError.write(Data("m365-relay: could not start: \(error)\n".utf8))
            Foundation.exit(3)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (overrides logging.level).")
    var logLevel: Logger.Level?

    @Option(help: "Log format: text, json or logfmt (overrides logging.format).")
    var logFormat: RelayConfiguration.Logging.Format?

    /// Bootstraps swift-log once, from the flags, else the configuration's `logging` section.
    func makeLogger(label: String, configured: RelayConfiguration.Logging = .init()) -> Logger {
        let level = logLevel ?? Logger.Level(rawValue: configured.level) ?? .info
        let format = logFormat ?? configured.format
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json, .logfmt:
                return RelayLogHandler(label: label, format: format, level: level)
            }
        }
        return Logger(label: label)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension RelayConfiguration.Logging.Format: ExpressibleByArgument {}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the relay. Without --config: the built-in sandbox setup on 127.0.0.1:2525.")

    @Option(name: .shortAndLong, help: "Configuration file (YAML).")
    var config: String?

    @Option(help: "Data directory of the built-in sandbox setup (ignored with --config).")
    var dataDirectory: String = "m365-relay-data"

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let configuration: RelayConfiguration
        if let config {
            do {
                configuration = try RelayConfiguration.load(path: config)
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
        } else {
            configuration = RelayConfiguration.builtInSandbox(dataDirectory: dataDirectory)
        }
        let logger = logging.makeLogger(label: "m365-relay", configured: configuration.logging)
        for warning in configuration.warnings {
            logger.warning("\(warning)")
        }
        let application = try await RelayApplication.start(configuration: configuration, configurationPath: config, logger: logger)
        let listening = application.smtpAddresses.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" }.joined(separator: ", ")
        if config == nil {
            let data = (dataDirectory as NSString).expandingTildeInPath
            logger.notice("""
                Built-in sandbox setup: mail sent to \(listening) is delivered to the Microsoft 365 sandbox, not to Microsoft. \
                Queue: \(data)/relay.sqlite. What the sandbox received: \(data)/sandbox/messages/. \
                Dashboard, API and metrics: \(application.adminAddress.map { "http://\($0)/" } ?? "off"). \
                Pass --config FILE to relay through a real tenant.
                """)
        } else {
            var metadata: Logger.Metadata = ["smtp": "\(listening)"]
            if let admin = application.adminAddress { metadata["admin"] = "http://\(admin)/" }
            logger.notice("m365-relay started", metadata: metadata)
        }
        try await application.run()
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file and print the effective configuration, secrets redacted.")

    @Option(name: .shortAndLong, help: "Configuration file (YAML).")
    var config: String

    func run() throws {
        do {
            let configuration = try RelayConfiguration.load(path: config)
            print(configuration.renderRedacted(), terminator: "")
            for warning in configuration.warnings {
                FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
            }
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Sandbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the Microsoft 365 simulator alone: SMTP submission (STARTTLS, AUTH), optionally the tenant MX (connectors, Direct Send) and HTTPS (token endpoint, Graph).")

    @Option(help: "Address of the SMTP submission endpoint.")
    var smtp: String = "127.0.0.1:2587"

    @Option(help: "Address of the tenant MX (inbound connectors and Direct Send), e.g. 127.0.0.1:2526.")
    var connector: String?

    @Option(help: "Address of the HTTPS endpoint (token endpoint and Graph), e.g. 127.0.0.1:8443.")
    var http: String?

    @Option(help: "Where received messages and the sandbox CA are kept.")
    var dataDirectory: String = "m365-relay-data/sandbox"

    @Option(help: "A mailbox and its OAuth token, as ADDRESS:TOKEN (repeatable).")
    var mailbox: [String] = []

    @Option(help: "A mailbox and its password for basic AUTH LOGIN, as ADDRESS:PASSWORD (repeatable; Microsoft is turning basic authentication off).")
    var mailboxPassword: [String] = []

    @Option(help: "A token accepted for any mailbox (sending only as itself).")
    var anyMailboxToken: String?

    @Option(help: "An app registration for the token endpoint, as CLIENT_ID:SECRET; it may send as every mailbox (repeatable).")
    var app: [String] = []

    @Option(help: "The tenant id of the token endpoint.")
    var tenant: String = "sandbox.onmicrosoft.com"

    @Option(help: "An inbound connector matching client IPs, as NAME:CIDR (repeatable).")
    var connectorNetwork: [String] = []

    @Option(help: "Messages per minute each mailbox may submit (Microsoft's default 30).")
    var messagesPerMinute: Int = 30

    @Option(help: "Recipients per rolling 24 hours each mailbox may submit (Microsoft's default 10,000).")
    var recipientsPerDay: Int = 10_000

    @Flag(help: "Refuse submissions past the per-minute quota (450 4.7.0 / Graph 429) instead of delaying them, and count each refusal.")
    var strictQuotas = false

    @Option(help: "Lifetime of issued access tokens, in seconds (Microsoft's about 3600).")
    var tokenLifetime: Int = 3599

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        for (flag, value) in [("--smtp", smtp), ("--connector", connector), ("--http", http)] {
            if let value, RelayEndpoint(parsing: value) == nil { throw ValidationError("\(flag) must be HOST:PORT, got \(value)") }
        }
        for entry in mailbox where !entry.contains(":") {
            throw ValidationError("--mailbox must be ADDRESS:TOKEN, got \(entry)")
        }
        for entry in mailboxPassword where !entry.contains(":") {
            throw ValidationError("--mailbox-password must be ADDRESS:PASSWORD, got \(entry)")
        }
        for entry in app where !entry.contains(":") {
            throw ValidationError("--app must be CLIENT_ID:SECRET, got \(entry)")
        }
        for entry in connectorNetwork where !entry.contains(":") {
            throw ValidationError("--connector-network must be NAME:CIDR, got \(entry)")
        }
        if messagesPerMinute < 1 || recipientsPerDay < 1 || tokenLifetime < 1 {
            throw ValidationError("--messages-per-minute, --recipients-per-day and --token-lifetime must be at least 1")
        }
        if mailbox.isEmpty && mailboxPassword.isEmpty && anyMailboxToken == nil && app.isEmpty {
            throw ValidationError("give at least one --mailbox ADDRESS:TOKEN, --mailbox-password ADDRESS:PASSWORD, --any-mailbox-token TOKEN or --app CLIENT_ID:SECRET")
        }
    }

    func run() async throws {
        let logger = logging.makeLogger(label: "m365-relay.sandbox")
        let endpoint = RelayEndpoint(parsing: smtp)!
        let connectorEndpoint = connector.flatMap(RelayEndpoint.init(parsing:))
        let httpEndpoint = http.flatMap(RelayEndpoint.init(parsing:))
        var configuration = M365SandboxConfiguration(dataDirectory: dataDirectory)
        configuration.anyMailboxToken = anyMailboxToken
        configuration.tenantID = tenant
        configuration.messagesPerMinute = messagesPerMinute
        configuration.recipientsPerDay = recipientsPerDay
        configuration.strictQuotas = strictQuotas
        configuration.tokenLifetime = TimeInterval(tokenLifetime)
        configuration.mailboxes = mailbox.map { entry in
            let parts = entry.split(separator: ":", maxSplits: 1)
            return .init(address: String(parts[0]), tokens: [String(parts[1])])
        } + mailboxPassword.map { entry in
            let parts = entry.split(separator: ":", maxSplits: 1)
            return .init(address: String(parts[0]), password: String(parts[1]))
        }
        configuration.apps = app.map { entry in
            let parts = entry.split(separator: ":", maxSplits: 1)
            return .init(clientID: String(parts[0]), secret: String(parts[1]), mailboxes: ["*"])
        }
        var networks: [String: [String]] = [:]
        for entry in connectorNetwork {
            let parts = entry.split(separator: ":", maxSplits: 1)
            networks[String(parts[0]), default: []].append(String(parts[1]))
        }
        configuration.connectors = networks.keys.sorted().map { .init(name: $0, senderNetworks: networks[$0]!) }
        let sandbox: M365Sandbox
        do {
            sandbox = try M365Sandbox(
                configuration: configuration, smtp: (endpoint.host, endpoint.port),
                connector: connectorEndpoint.map { ($0.host, $0.port) }, http: httpEndpoint.map { ($0.host, $0.port) },
                group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            try await sandbox.start()
        } catch {
            throw RelayStartupError("sandbox: \(error)")
        }
        let ports = sandbox.ports
        var metadata: Logger.Metadata = [
            "smtp": "\(endpoint.host):\(ports.smtp)", "ca_file": "\(sandbox.caFile)", "messages": "\(sandbox.mailStore.directory)",
        ]
        if let connectorEndpoint, let port = ports.connector { metadata["connector"] = "\(connectorEndpoint.host):\(port)" }
        if let base = sandbox.httpBaseURL {
            metadata["token_endpoint"] = "\(base)/\(configuration.tenantID)/oauth2/v2.0/token"
            metadata["graph"] = "\(base)/v1.0"
        }
        logger.notice("Microsoft 365 sandbox running", metadata: metadata)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: sandbox)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// `hash-password`: one line in (the password; its newline is not part of
/// it), one line out (the scrypt PHC string for `password_hash_file`).
struct HashPassword: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-password",
        abstract: "Read a password from standard input (one line) and print its scrypt hash for password_hash_file.")

    func run() throws {
        // readLine strips "\n" or "\r\n": neither is part of the password.
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            FileHandle.standardError.write(Data("m365-relay hash-password: no password on standard input (expected one non-empty line)\n".utf8))
            throw ExitCode(2)
        }
        do {
            print(try RelayPasswordHash.make(password: Array(line.utf8)).encoded)
        } catch {
            FileHandle.standardError.write(Data("m365-relay hash-password: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
