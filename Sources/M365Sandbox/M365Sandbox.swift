import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore
import SMTPNIO
import ServiceLifecycle

/// Where the sandbox's endpoints listen, once started.
public struct M365SandboxPorts: Sendable, Hashable {
    /// The SMTP AUTH submission endpoint (`smtp.office365.com:587`).
    public var smtp: Int
    /// The tenant MX (connectors and Direct Send), when configured.
    public var connector: Int?
    /// The HTTPS endpoint (token endpoint, Graph, `/sandbox/`), when configured.
    public var http: Int?
}

/// The Microsoft 365 simulator: the SMTP AUTH submission endpoint, the
/// tenant MX (connectors, Direct Send), and one HTTPS listener for the
/// identity platform's token endpoint and Graph, each with a TLS certificate
/// from its own CA (`<dataDirectory>/ca.pem`, which a client trusts to
/// verify it), sharing quotas, issued tokens, injectable faults and a store
/// of what it received. Behaviour: ../shared/M365.md.
public final class M365Sandbox: Service, Sendable {
    public let configuration: M365SandboxConfiguration
    public let mailStore: M365SandboxMailStore
    /// PEM file of the CA that signed the sandbox's server certificate.
    public let caFile: String
    private let tenant: M365SandboxTenant
    private let submission: M365SandboxSMTPListener
    private let connector: M365SandboxSMTPListener?
    private let http: M365SandboxHTTPServer?
    private let bound = NIOLockedValueBox(M365SandboxPorts(smtp: 0))
    private let logger: Logger

    /// - Parameter smtp: where the submission endpoint listens; port 0 picks a free port.
    public convenience init(configuration: M365SandboxConfiguration, smtp: (host: String, port: Int), group: any EventLoopGroup, logger: Logger) throws {
        try self.init(configuration: configuration, smtp: smtp, connector: nil, http: nil, group: group, logger: logger)
    }

    /// - Parameters:
    ///   - smtp: where the submission endpoint listens; port 0 picks a free port.
    ///   - connector: where the tenant MX listens, if at all.
    ///   - http: where the HTTPS endpoint (token endpoint, Graph) listens, if at all.
    public init(
        configuration: M365SandboxConfiguration, smtp: (host: String, port: Int), connector: (host: String, port: Int)?,
        http: (host: String, port: Int)?, group: any EventLoopGroup, logger: Logger
    ) throws {
        self.configuration = configuration
        self.logger = logger
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        mailStore = try M365SandboxMailStore(dataDirectory: configuration.dataDirectory, logger: logger)
        let authority = try Self.loadOrCreateAuthority(in: configuration.dataDirectory)
        caFile = (configuration.dataDirectory as NSString).appendingPathComponent("ca.pem")
        let leaf = try authority.issueServerCertificate(dnsNames: ["localhost", configuration.hostname], ipAddresses: ["127.0.0.1", "::1"])
        let certificateChain = [NIOSSLCertificateSource.certificate(try NIOSSLCertificate(bytes: Array(leaf.certificatePEM.utf8), format: .pem))]
        let privateKey = NIOSSLPrivateKeySource.privateKey(try NIOSSLPrivateKey(bytes: Array(leaf.privateKeyPEM.utf8), format: .pem))
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: certificateChain, privateKey: privateKey)
        // Microsoft's endpoints refuse TLS 1.0 and 1.1 (421 4.7.66).
        tls.minimumTLSVersion = .tlsv12
        tenant = try M365SandboxTenant(configuration: configuration, store: mailStore, logger: logger)
        submission = M365SandboxSMTPListener(
            host: smtp.host, port: smtp.port, tlsContext: try NIOSSLContext(configuration: tls),
            delegate: M365SandboxSubmission(tenant: tenant, logger: logger), connections: tenant.connections, group: group, logger: logger)
        if let connector {
            // The MX asks for a client certificate (certificate-based connectors) but does not require one.
            var mx = tls
            mx.certificateVerification = .optionalVerification
            var roots = [try NIOSSLCertificate(bytes: Array(authority.certificatePEM.utf8), format: .pem)]
            for file in configuration.trustedClientCAFiles {
                roots += try NIOSSLCertificate.fromPEMFile(file)
            }
            mx.trustRoots = .certificates(roots)
            self.connector = M365SandboxSMTPListener(
                host: connector.host, port: connector.port, tlsContext: try NIOSSLContext(configuration: mx),
                delegate: try M365SandboxConnectorEndpoint(tenant: tenant), connections: tenant.connections, group: group, logger: logger)
        } else {
            self.connector = nil
        }
        if let http {
            var https = tls
            // Graph and login.microsoftonline.com speak HTTP/1.1 to this client.
            https.applicationProtocols = ["http/1.1"]
            self.http = try M365SandboxHTTPServer(host: http.host, port: http.port, tls: https, tenant: tenant, group: group, logger: logger)
        } else {
            self.http = nil
        }
    }

    /// Binds the endpoints; returns the SMTP port actually bound.
    @discardableResult
    public func start() async throws -> Int {
        var ports = M365SandboxPorts(smtp: try await submission.start())
        if let connector { ports.connector = try await connector.start() }
        if let http { ports.http = try await http.start() }
        bound.withLockedValue { $0 = ports }
        logger.info("Microsoft 365 sandbox started", metadata: [
            "smtp": "\(ports.smtp)", "connector": "\(ports.connector.map(String.init) ?? "-")", "http": "\(ports.http.map(String.init) ?? "-")",
        ])
        return ports.smtp
    }

    /// The ports bound by ``start()``.
    public var ports: M365SandboxPorts { bound.withLockedValue { $0 } }

    /// `https://127.0.0.1:PORT`: the token endpoint is `<base>/<tenant>/oauth2/v2.0/token`,
    /// Graph is `<base>/v1.0/...`. Nil without an HTTPS endpoint.
    public var httpBaseURL: String? { http.flatMap { $0.baseURL } }

    /// The token endpoint for the configured tenant, e.g. `https://127.0.0.1:PORT/sandbox.onmicrosoft.com/oauth2/v2.0/token`.
    public var tokenEndpointURL: String? { httpBaseURL.map { "\($0)/\(configuration.tenantID)/oauth2/v2.0/token" } }

    /// Counters for tests and benchmarks.
    public var stats: M365SandboxStats { tenant.stats }

    /// Arms a fault now.
    public func inject(_ fault: M365SandboxFault) throws {
        if let problem = fault.validationProblem { throw SandboxCertificateError("fault: \(problem)") }
        tenant.faults.inject(fault)
    }

    /// Disarms every fault.
    public func clearFaults() {
        tenant.faults.clear()
    }

    public func shutdown() async {
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.submission.shutdown(gracePeriod: .seconds(5)) }
            if let connector { tasks.addTask { await connector.shutdown(gracePeriod: .seconds(5)) } }
            if let http { tasks.addTask { await http.shutdown() } }
        }
    }

    /// Runs until graceful shutdown (after `start()`).
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    private static func loadOrCreateAuthority(in directory: String) throws -> SandboxCertificateAuthority {
        let certificatePath = (directory as NSString).appendingPathComponent("ca.pem")
        let keyPath = (directory as NSString).appendingPathComponent("ca.key")
        if let certificate = try? String(contentsOfFile: certificatePath, encoding: .utf8),
           let key = try? String(contentsOfFile: keyPath, encoding: .utf8),
           let authority = try? SandboxCertificateAuthority(certificatePEM: certificate, privateKeyPEM: key),
           authority.certificate.notValidAfter > Date().addingTimeInterval(86_400) {
            return authority
        }
        let authority = try SandboxCertificateAuthority()
        _ = try authority.write(to: directory)
        return authority
    }
}
