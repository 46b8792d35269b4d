import Foundation
import Logging
import M365Delivery
import M365Sandbox
import NIOCore
import NIOPosix
import NIOSSL
import RelayAdmin
import RelayCore
import RelayStorage
import SMTPCore
import SMTPNIO
import ServiceLifecycle

/// The composition root: configuration in, running services out.
///
/// `start` does everything that can fail for reasons the administrator must
/// fix (storage, certificates, secrets, ports) before anything runs, so that
/// such failures exit with code 3 and a reason; `run` then serves until
/// SIGTERM or SIGINT and shuts down in order: ingress first (idle sessions
/// get `421`, messages in flight finish), then delivery, then the sandbox.
/// SIGHUP reloads the server certificate and key (``reloadTLS()``).
public final class RelayApplication: Sendable {
    public let configuration: RelayConfiguration
    /// Where the SMTP listeners are bound (port 0 in the configuration becomes a real port).
    public let smtpAddresses: [SocketAddress]
    /// The embedded Microsoft 365 simulator, when a route has mode `sandbox`.
    public let sandbox: M365Sandbox?
    public let store: SQLiteQueueStore
    public let delivery: RelayDeliveryService
    /// The Prometheus metrics behind `/metrics`.
    public let metrics: RelayMetrics
    /// Webhook alerts, when `alerts` is configured.
    public let alerts: RelayAlerts?
    /// Where the admin server listens (port 0 in the configuration becomes a real port); nil without `admin`.
    public let adminAddress: RelayEndpoint?
    private let routes: RelayRouteTransports
    private let serviceGroup: ServiceGroup
    private let logger: Logger
    /// The certificate the TLS listeners present; nil without `server.tls`.
    private let serverTLS: RelayServerTLS?
    /// The client rules every listener reads; a reload replaces them.
    private let ingressSecurity: RelayIngressSecurity?
    /// The file the configuration came from, for SIGHUP's reload; nil when built in code.
    public let configurationPath: String?

    private init(configuration: RelayConfiguration, smtpAddresses: [SocketAddress], sandbox: M365Sandbox?, store: SQLiteQueueStore,
                 delivery: RelayDeliveryService, routes: RelayRouteTransports, serviceGroup: ServiceGroup, logger: Logger,
                 serverTLS: RelayServerTLS?, metrics: RelayMetrics, alerts: RelayAlerts?, adminAddress: RelayEndpoint?,
                 ingressSecurity: RelayIngressSecurity?, configurationPath: String?) {
        self.serverTLS = serverTLS
        self.ingressSecurity = ingressSecurity
        self.configurationPath = configurationPath
        self.metrics = metrics
        self.alerts = alerts
        self.adminAddress = adminAddress
        self.configuration = configuration
        self.smtpAddresses = smtpAddresses
        self.sandbox = sandbox
        self.store = store
        self.delivery = delivery
        self.routes = routes
        self.serviceGroup = serviceGroup
        self.logger = logger
    }

    /// The SMTP port of the first listener, for tests and the start message.
    public var smtpPort: Int { smtpAddresses.first?.port ?? 0 }

    /// - Parameter configurationPath: the file `configuration` was read from; SIGHUP and
    ///   ``reloadConfiguration()`` read it again to apply changed `clients`.
    public static func start(
        configuration: RelayConfiguration, configurationPath: String? = nil, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, handleSignals: Bool = true
    ) async throws(RelayStartupError) -> RelayApplication {
        // DKIM keys before anything opens: a bad key file is a reason not to start.
        let dkim = try RelayDKIMKeys.signer(for: configuration.dkim, logger: logger)
        // Storage first: nothing may be accepted that cannot be kept.
        let store: SQLiteQueueStore
        let dataDirectory: String
        switch configuration.storage.location {
        case .sqlite(let path):
            dataDirectory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
            do {
                try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            } catch {
                throw RelayStartupError("storage \(path): cannot create directory \(dataDirectory): \((error as NSError).localizedDescription)")
            }
            do {
                store = try SQLiteQueueStore(path: path, keepBodies: configuration.trace.keepBodies, logger: logger)
            } catch {
                throw RelayStartupError("storage \(path) is not usable: \(error)")
            }
        case .postgres:
            throw RelayStartupError("storage: PostgreSQL is not available in this version; use sqlite:PATH")
        }

        // The embedded sandbox, when a route uses it, listens before delivery starts.
        var sandbox: EmbeddedSandbox?
        let routes: RelayRouteTransports
        do {
            if configuration.routes.contains(where: { $0.mode == .sandbox }) {
                sandbox = try await EmbeddedSandbox.start(dataDirectory: dataDirectory, group: group, logger: logger)
            }
            routes = try RelayRouteTransports.make(configuration: configuration, sandbox: sandbox, group: group, logger: logger)
        } catch let error as RelayStartupError {
            if let sandbox { await sandbox.instance.shutdown() }
            store.close()
            throw error
        } catch {
            if let sandbox { await sandbox.instance.shutdown() }
            store.close()
            throw RelayStartupError("sandbox: \(error)")
        }

        let owner = "\(configuration.server.hostname)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: .min ... .max))"
        var settings = RelayDeliveryService.Settings(
            hostname: configuration.server.hostname,
            schedule: RelayRetrySchedule(delays: configuration.delivery.retry, maxAge: configuration.delivery.maxAge),
            bounces: configuration.delivery.bounces, operatorAddress: configuration.delivery.operatorAddress,
            concurrency: configuration.delivery.concurrency)
        settings.bounceSenders = Dictionary(uniqueKeysWithValues: configuration.routes.map {
            ($0.name, RelayRouteTransports.bounceSender(for: $0, in: configuration))
        })
        settings.routes = Dictionary(uniqueKeysWithValues: configuration.routes.map { ($0.name, RelayDeliveryRoute($0)) })
        settings.routePause = configuration.delivery.routePause
        settings.tenantStop = configuration.delivery.tenantStop
        settings.dkim = dkim
        // Metrics and alerts hear of ingress and delivery through one fan-out.
        let metrics = RelayMetrics(version: RelayVersion.current)
        var alerts: RelayAlerts?
        if let alertSettings = configuration.alerts, alertSettings.webhookURL != nil {
            var alertLogger = logger
            alertLogger[metadataKey: "component"] = "alerts"
            do {
                alerts = try RelayAlerts(
                    configuration: alertSettings, hostname: configuration.server.hostname,
                    queueStatistics: { [store] in try await store.queueStatistics() },
                    credentialExpiries: { [configuration] in RelayCredentialExpiry.expiries(in: configuration) },
                    logger: alertLogger)
            } catch {
                await routes.shutdown()
                if let sandbox { await sandbox.instance.shutdown() }
                store.close()
                throw error
            }
        }
        let observer = RelayEventFanOut([metrics] + (alerts.map { [$0] } ?? []))
        settings.observer = observer
        var deliveryLogger = logger
        deliveryLogger[metadataKey: "component"] = "delivery"
        let delivery = RelayDeliveryService(store: store, transports: routes.transports, settings: settings, owner: owner, logger: deliveryLogger)

        // The admin server before the SMTP listeners: a port in use is a reason not to start.
        var adminServer: RelayAdminServer?
        var adminAddress: RelayEndpoint?
        if let admin = configuration.admin {
            var adminLogger = logger
            adminLogger[metadataKey: "component"] = "admin"
            let report = RelayRouteStatusReport(
                configuration: configuration, delivery: delivery, tokenProviders: routes.tokenProvidersByRoute,
                credentialExpiry: RelayRouteStatusReport.credentialExpiries(of: configuration))
            let backend = RelayLiveAdminBackend(trace: store, routeReport: report, metrics: metrics, configuration: configuration)
            do {
                let token = try admin.token.map { source throws(RelayStartupError) in try RelaySecrets.read(source) }
                let server = try RelayAdminServer(address: admin.address, token: token, backend: backend, logger: adminLogger)
                let port = try await server.start()
                adminServer = server
                adminAddress = RelayEndpoint(host: admin.address.host, port: port)
            } catch {
                await alerts?.shutdown()
                await routes.shutdown()
                if let sandbox { await sandbox.instance.shutdown() }
                store.close()
                throw (error as? RelayStartupError) ?? RelayStartupError("\(error)")
            }
        }

        // Listeners last: once bound, clients may send.
        var ingressLogger = logger
        ingressLogger[metadataKey: "component"] = "smtp"
        var servers: [SMTPServer] = []
        var addresses: [SocketAddress] = []
        var serverTLS: RelayServerTLS?
        var securityForReload: RelayIngressSecurity?
        do {
            serverTLS = try configuration.server.tls.map { tls throws(RelayStartupError) in try RelayServerTLS(settings: tls) }
            let tlsContext = serverTLS?.context
            let ingressSecurity = RelayIngressSecurity(configuration: configuration)
            securityForReload = ingressSecurity
            for listener in configuration.server.listeners {
                let security: SMTPListener.Security
                switch listener.tls {
                case .none: security = .plaintext
                case .starttls:
                    guard let tlsContext else { throw RelayStartupError("listener \(listener.address): starttls needs server.tls") }
                    security = .startTLS(tlsContext)
                case .implicit:
                    guard let tlsContext else { throw RelayStartupError("listener \(listener.address): implicit TLS needs server.tls") }
                    security = .implicitTLS(tlsContext)
                }
                let ingress = RelayIngress(
                    listener: listener, store: store, security: ingressSecurity, logger: ingressLogger,
                    observer: observer, wakeDelivery: { [delivery] in delivery.wake() })
                let configured = configuration.server.limits
                var limits = SMTPConnectionLimits()
                limits.maxConnections = configured.maxConnections
                limits.maxConnectionsPerAddress = configured.maxConnectionsPerIP
                var timeouts = SMTPServerTimeouts()
                timeouts.greetingDelay = .milliseconds(Int64(configured.greetingDelay * 1000))
                timeouts.idle = .milliseconds(Int64(configured.idleTimeout * 1000))
                timeouts.command = .milliseconds(Int64(configured.commandTimeout * 1000))
                timeouts.data = .milliseconds(Int64(configured.dataTimeout * 1000))
                timeouts.minDataRate = configured.minDataRate
                let server = SMTPServer(
                    listeners: [SMTPListener(host: listener.address.host, port: listener.address.port, security: security)],
                    delegate: ingress, group: group, timeouts: timeouts, limits: limits, logger: ingressLogger)
                do {
                    addresses += try await server.start()
                } catch {
                    throw RelayStartupError("cannot listen on \(listener.address): \(error)")
                }
                servers.append(server)
            }
        } catch {
            for server in servers { await server.shutdown(gracePeriod: .zero) }
            await adminServer?.shutdown()
            await alerts?.shutdown()
            await routes.shutdown()
            if let sandbox { await sandbox.instance.shutdown() }
            store.close()
            throw (error as? RelayStartupError) ?? RelayStartupError("\(error)")
        }

        // Reverse order of shutdown: ingress stops first, the sandbox last.
        var services: [any Service] = []
        if let sandbox { services.append(sandbox.instance) }
        services.append(delivery)
        var traceLogger = logger
        traceLogger[metadataKey: "component"] = "trace"
        services.append(RelayTracePruner(store: store, settings: configuration.trace, logger: traceLogger))
        if let alerts { services.append(alerts) }
        if let adminServer { services.append(adminServer) }
        services += servers.map { SMTPIngressService(server: $0) }
        // Last, so that graceful shutdown ends it first. SIGHUP is trapped from here on.
        let reloader = RelayTLSReloader(serverTLS: serverTLS, logger: ingressLogger)
        let clientReloader = RelayClientReloader(
            running: configuration, path: configurationPath, security: securityForReload, logger: logger)
        if handleSignals {
            services.append(await RelayReloadSignalService {
                reloader.reloadLogging()
                clientReloader.reloadLogging()
            })
        }
        let serviceGroup = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: logger))
        return RelayApplication(
            configuration: configuration, smtpAddresses: addresses, sandbox: sandbox?.instance, store: store,
            delivery: delivery, routes: routes, serviceGroup: serviceGroup, logger: logger, serverTLS: serverTLS,
            metrics: metrics, alerts: alerts, adminAddress: adminAddress,
            ingressSecurity: securityForReload, configurationPath: configurationPath)
    }

    /// Serves until SIGTERM or SIGINT (or `cancel` of the calling task), then shuts down in order.
    public func run() async throws {
        try await serviceGroup.run()
        await routes.shutdown()
        store.close()
        logger.info("m365-relay stopped")
    }

    /// Starts the same orderly shutdown as SIGTERM.
    public func shutdown() async {
        await serviceGroup.triggerGracefulShutdown()
    }

    /// Reads the configuration file again, as SIGHUP does, and applies its
    /// `clients`: new sessions use the new rules (a group of devices moves from
    /// a `sandbox` dry-run route to the tenant with one changed `route:` line).
    /// Other sections need a restart; the result names those that changed.
    /// An invalid file, or a client on a route the running relay does not
    /// have, changes nothing and throws the reason.
    @discardableResult
    public func reloadConfiguration() throws(RelayStartupError) -> RelayClientReloader.Outcome {
        try RelayClientReloader(running: configuration, path: configurationPath, security: ingressSecurity, logger: logger).reload()
    }

    /// Reads `server.tls`'s certificate and key again, as SIGHUP does: new
    /// connections get the new certificate, open sessions keep theirs. On
    /// failure the old certificate stays in use and the error names the file.
    public func reloadTLS() throws(RelayStartupError) {
        try RelayTLSReloader(serverTLS: serverTLS, logger: logger).reload()
    }
}

/// The Microsoft 365 simulator running inside the relay for routes of mode
/// `sandbox`, on a loopback port, with a token only the relay knows.
struct EmbeddedSandbox {
    let instance: M365Sandbox
    let port: Int
    let token: String

    static func start(dataDirectory: String, group: any EventLoopGroup, logger: Logger) async throws -> EmbeddedSandbox {
        var configuration = M365SandboxConfiguration(dataDirectory: (dataDirectory as NSString).appendingPathComponent("sandbox"))
        let token = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 36) }.joined()
        configuration.anyMailboxToken = token
        var sandboxLogger = logger
        sandboxLogger[metadataKey: "component"] = "sandbox"
        let instance = try M365Sandbox(configuration: configuration, smtp: ("127.0.0.1", 0), group: group, logger: sandboxLogger)
        let port = try await instance.start()
        return EmbeddedSandbox(instance: instance, port: port, token: token)
    }
}
