import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore
import SMTPNIO
import ServiceLifecycle

/// The Microsoft 365 simulator: today the SMTP AUTH submission endpoint,
/// with a TLS certificate from its own CA (`<dataDirectory>/ca.pem`, which a
/// client trusts to verify it) and a store of what it received.
public final class M365Sandbox: Service, Sendable {
    public let configuration: M365SandboxConfiguration
    public let mailStore: M365SandboxMailStore
    /// PEM file of the CA that signed the sandbox's server certificate.
    public let caFile: String
    private let server: SMTPServer
    private let logger: Logger

    /// - Parameter smtp: where the submission endpoint listens; port 0 picks a free port.
    public init(configuration: M365SandboxConfiguration, smtp: (host: String, port: Int), group: any EventLoopGroup, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        mailStore = try M365SandboxMailStore(dataDirectory: configuration.dataDirectory, logger: logger)
        let authority = try Self.loadOrCreateAuthority(in: configuration.dataDirectory)
        caFile = (configuration.dataDirectory as NSString).appendingPathComponent("ca.pem")
        let leaf = try authority.issueServerCertificate(dnsNames: ["localhost", configuration.hostname], ipAddresses: ["127.0.0.1", "::1"])
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(leaf.certificatePEM.utf8), format: .pem))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(leaf.privateKeyPEM.utf8), format: .pem)))
        // Microsoft's endpoints refuse TLS 1.0 and 1.1 (421 4.7.66).
        tls.minimumTLSVersion = .tlsv12
        let context = try NIOSSLContext(configuration: tls)
        let submission = M365SandboxSubmission(configuration: configuration, store: mailStore, logger: logger)
        server = SMTPServer(
            listeners: [SMTPListener(host: smtp.host, port: smtp.port, security: .startTLS(context))],
            delegate: submission, group: group, logger: logger)
    }

    /// Binds the endpoints; returns the SMTP port actually bound.
    @discardableResult
    public func start() async throws -> Int {
        let addresses = try await server.start()
        return addresses.first?.port ?? 0
    }

    public func shutdown() async {
        await server.shutdown(gracePeriod: .seconds(5))
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
