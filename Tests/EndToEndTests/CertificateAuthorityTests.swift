import Foundation
import M365Sandbox
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore
import Testing
import X509

/// Serves a two-line SMTP greeting over TLS, to prove the handshake and the reply decoder together.
private final class GreetingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        let greeting = context.channel.allocator.buffer(string: "220-localhost sandbox\r\n220 2.0.0 ready over TLS\r\n")
        context.writeAndFlush(Self.wrapOutboundOut(greeting), promise: nil)
        context.fireChannelActive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Hands the first decoded reply (or the first error) to a promise.
private final class FirstReplyHandler: ChannelInboundHandler {
    typealias InboundIn = SMTPReply
    private let promise: EventLoopPromise<SMTPReply>

    init(promise: EventLoopPromise<SMTPReply>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        promise.succeed(Self.unwrapInboundIn(data))
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension GreetingHandler: Sendable {}
@available(*, unavailable)
extension FirstReplyHandler: Sendable {}

/// Starts a TLS server with `server`'s certificate on 127.0.0.1, port 0, connects
/// a client that trusts only `trustedCAPEM` and verifies `hostname` (or the IP
/// address when nil), and returns the greeting the client decoded.
private func greeting(
    server: SandboxServerCertificate, trustedCAPEM: String, hostname: String?
) async throws -> SMTPReply {
    let group = MultiThreadedEventLoopGroup.singleton
    let serverConfiguration = TLSConfiguration.makeServerConfiguration(
        certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(server.certificatePEM.utf8), format: .pem))],
        privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(server.privateKeyPEM.utf8), format: .pem)))
    let serverContext = try NIOSSLContext(configuration: serverConfiguration)

    var clientConfiguration = TLSConfiguration.makeClientConfiguration()
    clientConfiguration.minimumTLSVersion = .tlsv12
    clientConfiguration.certificateVerification = .fullVerification
    clientConfiguration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(trustedCAPEM.utf8)))
    let clientContext = try NIOSSLContext(configuration: clientConfiguration)

    let listener = try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext))
                try channel.pipeline.syncOperations.addHandler(GreetingHandler())
            }
        }
        .bind(host: "127.0.0.1", port: 0)
        .get()
    let port = try #require(listener.localAddress?.port)

    let promise = group.next().makePromise(of: SMTPReply.self)
    do {
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        try NIOSSLClientHandler(context: clientContext, serverHostname: hostname))
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SMTPReplyDecoder()))
                    try channel.pipeline.syncOperations.addHandler(FirstReplyHandler(promise: promise))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        let reply = try await promise.futureResult.get()
        try? await client.close()
        try? await listener.close()
        return reply
    } catch {
        promise.fail(error)
        try? await listener.close()
        throw error
    }
}

@Suite("Sandbox certificate authority")
struct CertificateAuthorityTests {
    private static let expectedGreeting = SMTPReply(220, nil, ["localhost sandbox", "2.0.0 ready over TLS"])

    @Test func handshakeVerifiesLocalhostAgainstTheCA() async throws {
        let authority = try SandboxCertificateAuthority()
        // DNS names only, so that the name "localhost" is what is verified (see wrongHostnameFails).
        let server = try authority.issueServerCertificate(dnsNames: ["localhost"], ipAddresses: [])
        let reply = try await greeting(server: server, trustedCAPEM: authority.certificatePEM, hostname: "localhost")
        #expect(reply == Self.expectedGreeting)
    }

    /// With no hostname NIOSSL verifies the peer's IP address against the IP SANs.
    @Test func handshakeVerifiesTheIPAddress() async throws {
        let authority = try SandboxCertificateAuthority()
        let server = try authority.issueServerCertificate(dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"])
        let reply = try await greeting(server: server, trustedCAPEM: authority.certificatePEM, hostname: nil)
        #expect(reply == Self.expectedGreeting)
    }

    /// NIOSSL accepts a certificate whose IP SAN matches the peer's address even
    /// when a hostname was asked for, so this certificate carries DNS names only.
    @Test func wrongHostnameFails() async throws {
        let authority = try SandboxCertificateAuthority()
        let server = try authority.issueServerCertificate(dnsNames: ["localhost"], ipAddresses: [])
        await #expect(throws: (any Error).self) {
            _ = try await greeting(server: server, trustedCAPEM: authority.certificatePEM, hostname: "smtp.office365.com")
        }
    }

    @Test func missingIPAddressFails() async throws {
        let authority = try SandboxCertificateAuthority()
        let server = try authority.issueServerCertificate(dnsNames: ["localhost"], ipAddresses: [])
        await #expect(throws: (any Error).self) {
            _ = try await greeting(server: server, trustedCAPEM: authority.certificatePEM, hostname: nil)
        }
    }

    @Test func anotherCAIsNotTrusted() async throws {
        let authority = try SandboxCertificateAuthority()
        let stranger = try SandboxCertificateAuthority(commonName: "someone else")
        let server = try stranger.issueServerCertificate(dnsNames: ["localhost"])
        await #expect(throws: (any Error).self) {
            _ = try await greeting(server: server, trustedCAPEM: authority.certificatePEM, hostname: "localhost")
        }
    }

    @Test func expiredCertificateFails() async throws {
        let authority = try SandboxCertificateAuthority()
        let server = try authority.issueServerCertificate(
            dnsNames: ["localhost"], validity: 3600, now: Date().addingTimeInterval(-3 * 86_400))
        await #expect(throws: (any Error).self) {
            _ = try await greeting(server: server, trustedCAPEM: authority.certificatePEM, hostname: "localhost")
        }
    }

    @Test func reloadedCAIssuesCertificatesItsOldPEMVerifies() async throws {
        let original = try SandboxCertificateAuthority()
        let reloaded = try SandboxCertificateAuthority(
            certificatePEM: original.certificatePEM, privateKeyPEM: original.privateKeyPEM)
        let server = try reloaded.issueServerCertificate()
        let reply = try await greeting(server: server, trustedCAPEM: original.certificatePEM, hostname: "localhost")
        #expect(reply == Self.expectedGreeting)

        let other = try SandboxCertificateAuthority()
        #expect(throws: (any Error).self) {
            _ = try SandboxCertificateAuthority(certificatePEM: original.certificatePEM, privateKeyPEM: other.privateKeyPEM)
        }
    }

    @Test func extensionsAndValidity() throws {
        let now = Date()
        let authority = try SandboxCertificateAuthority(now: now)
        let server = try authority.issueServerCertificate(
            dnsNames: ["localhost", "smtp.sandbox.test"], ipAddresses: ["127.0.0.1", "::1"], validity: 86_400, now: now)

        let ca = authority.certificate
        #expect(try ca.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(try ca.extensions.keyUsage?.keyCertSign == true)
        #expect(ca.issuer == ca.subject)

        let leaf = server.certificate
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(try leaf.extensions.keyUsage?.digitalSignature == true)
        #expect(try leaf.extensions.keyUsage?.keyCertSign == false)
        #expect(try leaf.extensions.extendedKeyUsage?.contains(.serverAuth) == true)
        let names = try #require(try leaf.extensions.subjectAlternativeNames)
        #expect(names.contains(.dnsName("localhost")))
        #expect(names.contains(.dnsName("smtp.sandbox.test")))
        #expect(names.filter { if case .ipAddress = $0 { true } else { false } }.count == 2)
        let subjectKeyID = try #require(try ca.extensions.subjectKeyIdentifier)
        #expect(try leaf.extensions.authorityKeyIdentifier?.keyIdentifier == subjectKeyID.keyIdentifier)
        #expect(try leaf.extensions.subjectKeyIdentifier != nil)
        #expect(leaf.issuer == ca.subject)

        #expect(abs(leaf.notValidBefore.timeIntervalSince(now) + 3600) < 2)
        #expect(abs(leaf.notValidAfter.timeIntervalSince(now) - 86_400) < 2)
        #expect(abs(ca.notValidAfter.timeIntervalSince(now) - 825 * 86_400) < 2)

        #expect(server.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        #expect(!"\(server)".contains("PRIVATE KEY"))
        #expect(throws: (any Error).self) { _ = try authority.issueServerCertificate(ipAddresses: ["not-an-ip"]) }
    }

    @Test func writesKeysWithMode0600() throws {
        let authority = try SandboxCertificateAuthority()
        let server = try authority.issueServerCertificate()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sandbox-ca-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let files = try server.write(to: directory)
        let caFiles = try authority.write(to: directory)
        func mode(_ path: String) throws -> Int {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
        }
        #expect(try mode(files.privateKey) == 0o600)
        #expect(try mode(caFiles.privateKey) == 0o600)
        #expect(try mode(files.certificate) == 0o644)
        #expect(try String(contentsOfFile: files.privateKey, encoding: .utf8) == server.privateKeyPEM)
        #expect(try String(contentsOfFile: files.caCertificate, encoding: .utf8) == authority.certificatePEM)

        // Writing again over a file with wider permissions narrows them.
        try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: files.privateKey)
        try server.write(to: directory)
        #expect(try mode(files.privateKey) == 0o600)

        // The written files load into NIOSSL.
        _ = try NIOSSLPrivateKey(file: files.privateKey, format: .pem)
        _ = try NIOSSLCertificate.fromPEMFile(files.certificate)
    }
}
