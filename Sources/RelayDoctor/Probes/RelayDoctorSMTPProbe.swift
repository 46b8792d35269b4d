import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SMTPCore
import SMTPNIO
import X509

/// Why a probe stopped, at which stage, with the reply when there was one.
struct RelayDoctorProbeError: Error, CustomStringConvertible {
    enum Stage: String {
        case connect, greeting, ehlo, startTLS = "STARTTLS", handshake = "TLS handshake", auth = "AUTH"
        case mail = "MAIL FROM", rcpt = "RCPT TO", http = "HTTP request"
    }

    var stage: Stage
    /// The reply that refused the stage, when the server answered.
    var reply: SMTPReply?
    /// The underlying error's text (NIO, NIOSSL), never a credential.
    var detail: String
    var underlying: (any Error)?

    var description: String {
        if let reply { return "\(stage.rawValue): \(reply)" }
        return "\(stage.rawValue): \(detail)"
    }
}

/// What a TLS handshake showed about the peer.
struct RelayDoctorTLSResult: Sendable {
    /// `TLSv1.2`, `TLSv1.3`; nil when NIOSSL did not say.
    var version: String?
    /// The peer's leaf certificate, when it could be read.
    var certificate: Certificate?
}

/// A short SMTP dialogue for the checks: connect, greeting, EHLO, STARTTLS,
/// one command at a time. Never sends DATA.
final class RelayDoctorSMTPProbe: @unchecked Sendable {
    let connection: SMTPClientConnection
    let host: String
    let heloName: String
    let timeout: TimeAmount
    private(set) var capabilities = SMTPCapabilities()
    /// The TLS handshake failed: the connection is unusable.
    private var broken = false
    /// Time from the connect call to the established TCP connection.
    let connectTime: TimeInterval

    private init(connection: SMTPClientConnection, host: String, heloName: String, timeout: TimeAmount, connectTime: TimeInterval) {
        self.connection = connection
        self.host = host
        self.heloName = heloName
        self.timeout = timeout
        self.connectTime = connectTime
    }

    /// Connects and reads the greeting (it must be `220`).
    static func open(host: String, port: Int, heloName: String, timeout: TimeInterval, group: any EventLoopGroup) async throws(RelayDoctorProbeError) -> RelayDoctorSMTPProbe {
        var timeouts = SMTPClientConnection.Timeouts()
        timeouts.connect = .milliseconds(Int64(timeout * 1000))
        timeouts.reply = .milliseconds(Int64(timeout * 1000))
        let started = ContinuousClock.now
        let connection: SMTPClientConnection
        do {
            connection = try await SMTPClientConnection.connect(host: host, port: port, group: group, timeouts: timeouts)
        } catch {
            throw RelayDoctorProbeError(stage: .connect, detail: RelayDoctorNetwork.describe(error), underlying: error)
        }
        let probe = RelayDoctorSMTPProbe(
            connection: connection, host: host, heloName: heloName, timeout: timeouts.reply, connectTime: (ContinuousClock.now - started).seconds)
        let greeting: SMTPReply
        do {
            greeting = try await connection.nextReply()
        } catch {
            await connection.close()
            throw RelayDoctorProbeError(stage: .greeting, detail: RelayDoctorNetwork.describe(error), underlying: error)
        }
        guard greeting.code == 220 else {
            await connection.close()
            throw RelayDoctorProbeError(stage: .greeting, reply: greeting, detail: "")
        }
        return probe
    }

    /// Sends one command and returns its reply.
    func send(_ command: SMTPClientCommand, stage: RelayDoctorProbeError.Stage) async throws(RelayDoctorProbeError) -> SMTPReply {
        do {
            try await connection.write(try SMTPClientCommand.encode([command]))
            return try await connection.nextReply()
        } catch {
            throw RelayDoctorProbeError(stage: stage, detail: RelayDoctorNetwork.describe(error), underlying: error)
        }
    }

    /// EHLO; the reply must be `250`.
    func ehlo() async throws(RelayDoctorProbeError) {
        let reply = try await send(.ehlo(heloName), stage: .ehlo)
        guard reply.code == 250 else { throw RelayDoctorProbeError(stage: .ehlo, reply: reply, detail: "") }
        capabilities = SMTPCapabilities(ehloReply: reply)
    }

    /// STARTTLS (it must be offered), the handshake, and EHLO again.
    func startTLS(context: NIOSSLContext) async throws(RelayDoctorProbeError) -> RelayDoctorTLSResult {
        guard capabilities.startTLS else {
            throw RelayDoctorProbeError(stage: .startTLS, detail: "STARTTLS is not offered in the EHLO reply")
        }
        let reply = try await send(.startTLS, stage: .startTLS)
        guard reply.code == 220 else { throw RelayDoctorProbeError(stage: .startTLS, reply: reply, detail: "") }
        do {
            try await connection.startTLS(context: context, serverHostname: host)
        } catch {
            // Nothing sensible can be said on a connection whose handshake failed: close it without QUIT.
            broken = true
            throw RelayDoctorProbeError(stage: .handshake, detail: RelayDoctorNetwork.describe(error), underlying: error)
        }
        let result = RelayDoctorTLSResult(version: connection.tlsVersion, certificate: await RelayDoctorNetwork.peerCertificate(of: connection.channel))
        try await ehlo()
        return result
    }

    /// QUIT, without waiting long for the answer, and close.
    func quit() async {
        if connection.isActive && !broken {
            _ = try? await connection.write(try SMTPClientCommand.encode([.quit]))
            _ = try? await connection.nextReply(timeout: .seconds(2))
        }
        await connection.close()
    }
}

/// Plain TCP and TLS handshakes for HTTPS endpoints, and the helpers both probes share.
enum RelayDoctorNetwork {
    /// A client context for probing: the system roots plus `caFile`; TLS 1.0 is
    /// allowed so that an old endpoint shows its version instead of a bare failure.
    static func probeContext(caFile: String?, verify: Bool, clientCertificatePEM: String? = nil, clientKeyPEM: String? = nil) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv1
        configuration.certificateVerification = verify ? .fullVerification : .none
        if let caFile { configuration.additionalTrustRoots = [.file(caFile)] }
        if let clientCertificatePEM, let clientKeyPEM {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(clientCertificatePEM.utf8)).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(clientKeyPEM.utf8), format: .pem))
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// A TCP connection, and how long it took.
    static func connect(host: String, port: Int, timeout: TimeInterval, group: any EventLoopGroup) async throws(RelayDoctorProbeError) -> (any Channel, TimeInterval) {
        let started = ContinuousClock.now
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(.milliseconds(Int64(timeout * 1000)))
                .connect(host: host, port: port).get()
            return (channel, (ContinuousClock.now - started).seconds)
        } catch {
            throw RelayDoctorProbeError(stage: .connect, detail: describe(error), underlying: error)
        }
    }

    /// TLS from the first byte on `channel` (HTTPS), waiting for the handshake.
    static func handshake(channel: any Channel, context: NIOSSLContext, host: String, timeout: TimeInterval) async throws(RelayDoctorProbeError) -> RelayDoctorTLSResult {
        do {
            let done = try await channel.eventLoop.submit { () -> EventLoopFuture<Void> in
                // An IP literal cannot go in SNI; NIOSSL then checks the certificate's IP addresses.
                let name = (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
                let tls = try NIOSSLClientHandler(context: context, serverHostname: name)
                let promise = channel.eventLoop.makePromise(of: Void.self)
                try channel.pipeline.syncOperations.addHandler(tls)
                try channel.pipeline.syncOperations.addHandler(RelayDoctorHandshakeWaiter(promise: promise))
                let limit = TimeAmount.milliseconds(Int64(timeout * 1000))
                let timer = channel.eventLoop.scheduleTask(in: limit) {
                    promise.fail(ChannelError.connectTimeout(limit))
                    channel.close(promise: nil)
                }
                promise.futureResult.whenComplete { _ in timer.cancel() }
                return promise.futureResult
            }.get()
            try await done.get()
        } catch {
            throw RelayDoctorProbeError(stage: .handshake, detail: describe(error), underlying: error)
        }
        let version = try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).tlsVersion
        }.get().map(SMTPServerHandler.name(of:))
        return RelayDoctorTLSResult(version: version, certificate: await peerCertificate(of: channel))
    }

    /// The leaf certificate the peer presented, once the handshake is done.
    static func peerCertificate(of channel: any Channel) async -> Certificate? {
        let der = try? await channel.eventLoop.submit { () -> [UInt8]? in
            try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate?.toDERBytes()
        }.get()
        guard let der else { return nil }
        return try? Certificate(derEncoded: der)
    }

    /// One line for a network error: what happened, without NIO's type names where a plain word says it.
    static func describe(_ error: any Error) -> String {
        if let error = error as? RelayDoctorProbeError { return error.description }
        if let error = error as? NIOConnectionError {
            if error.connectionErrors.isEmpty, error.dnsAError != nil || error.dnsAAAAError != nil {
                return "the name does not resolve"
            }
            if let first = error.connectionErrors.first { return describe(first.error) }
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ETIMEDOUT: return "timed out"
            case EHOSTUNREACH, ENETUNREACH: return "no route to the host"
            default: return "\(error)"
            }
        }
        if let error = error as? ChannelError {
            switch error {
            case .connectTimeout(let amount): return "timed out after \(amount.nanoseconds / 1_000_000_000) s"
            case .ioOnClosedChannel, .alreadyClosed, .eof: return "the server closed the connection"
            default: return "\(error)"
            }
        }
        if let error = error as? NIOSSLError { return "TLS: \(error)" }
        if let error = error as? NIOSSLExtraError { return "TLS: \(error)" }
        if let error = error as? SMTPClientError { return error.detail ?? "\(error)" }
        return "\(error)"
    }

    /// Whether a handshake failed because the certificate did not verify (rather than TLS itself).
    static func isCertificateFailure(_ error: RelayDoctorProbeError) -> Bool {
        let text = "\(error.underlying.map { "\($0)" } ?? "") \(error.detail)"
        if let extra = error.underlying as? NIOSSLExtraError, extra == .failedToValidateHostname { return true }
        return text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed")
    }
}

/// Completes a promise when the TLS handshake is done; fails it on error or close.
final class RelayDoctorHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private var promise: EventLoopPromise<Void>?

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            promise?.succeed()
            promise = nil
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        promise = nil
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(ChannelError.ioOnClosedChannel)
        promise = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension RelayDoctorHandshakeWaiter: Sendable {}

extension Duration {
    /// Seconds as a `TimeInterval`, for rows that print how long a step took.
    var seconds: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
