import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore
import SMTPNIO
import X509

/// The sandbox's open SMTP connections, so that an endpoint can drop one
/// (an injected fault), the MX can see the client's TLS certificate, and
/// shutdown can ask each session to finish.
final class M365SandboxConnections: Sendable {
    private struct Entry: Sendable {
        var channel: any Channel
        /// Read once after TLS: nil = not read yet; `.some(nil)` = none presented.
        var peerCertificate: Certificate??
    }

    private let entries = NIOLockedValueBox([String: Entry]())

    static func key(_ connection: SMTPConnectionInfo) -> String { "\(connection.listener)|\(connection.clientAddress)|\(connection.clientPort)" }

    func opened(_ key: String, channel: any Channel) {
        entries.withLockedValue { $0[key] = Entry(channel: channel) }
        channel.closeFuture.whenComplete { [self] _ in
            _ = entries.withLockedValue { $0.removeValue(forKey: key) }
        }
    }

    var channels: [any Channel] { entries.withLockedValue { $0.values.map(\.channel) } }

    /// The client's certificate, verified during the TLS handshake against the
    /// trusted CAs; nil before TLS or when the client presented none.
    /// Call on the connection's event loop (session checks run there).
    func peerCertificate(_ key: String) -> Certificate? {
        guard let entry = entries.withLockedValue({ $0[key] }) else { return nil }
        if let known = entry.peerCertificate { return known }
        guard entry.channel.eventLoop.inEventLoop,
              let handler = try? entry.channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self) else { return nil }
        let certificate = handler.peerCertificate.flatMap { try? Certificate(derEncoded: $0.toDERBytes()) }
        entries.withLockedValue { $0[key]?.peerCertificate = .some(certificate) }
        return certificate
    }

    /// Closes the connection at once, with no reply.
    func close(_ key: String) async {
        guard let channel = entries.withLockedValue({ $0[key]?.channel }) else { return }
        try? await channel.close()
    }
}

/// One SMTP listener of the sandbox: an `SMTPServerHandler` session per
/// connection, registered in ``M365SandboxConnections``. Shutdown: stop accepting, `421` to idle
/// sessions, messages in flight finish.
final class M365SandboxSMTPListener: Sendable {
    private let host: String
    private let port: Int
    private let tlsContext: NIOSSLContext
    private let delegate: any SMTPServerDelegate
    private let connections: M365SandboxConnections
    private let group: any EventLoopGroup
    private let logger: Logger
    private let serverChannel: NIOLockedValueBox<(any Channel)?> = .init(nil)
    private let listenerConnections = M365SandboxConnections()

    init(host: String, port: Int, tlsContext: NIOSSLContext, delegate: any SMTPServerDelegate,
         connections: M365SandboxConnections, group: any EventLoopGroup, logger: Logger) {
        self.host = host
        self.port = port
        self.tlsContext = tlsContext
        self.delegate = delegate
        self.connections = connections
        self.group = group
        self.logger = logger
    }

    /// Binds; returns the port bound.
    func start() async throws -> Int {
        let listenerName = "\(host):\(port)"
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [delegate, connections, listenerConnections, tlsContext, logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    let (address, port) = Self.describe(channel.remoteAddress)
                    let info = SMTPConnectionInfo(clientAddress: address, clientPort: port, listener: listenerName, implicitTLS: false)
                    connections.opened(M365SandboxConnections.key(info), channel: channel)
                    listenerConnections.opened(M365SandboxConnections.key(info), channel: channel)
                    try channel.pipeline.syncOperations.addHandler(
                        SMTPServerHandler(delegate: delegate, connection: info, tlsContext: tlsContext, logger: logger))
                }
            }
            .bind(host: host, port: port).get()
        serverChannel.withLockedValue { $0 = channel }
        return channel.localAddress?.port ?? port
    }

    /// Stops accepting and asks every session to finish (`421` when idle,
    /// after the message when in DATA); waits at most `gracePeriod`, then closes the rest.
    func shutdown(gracePeriod: Duration) async {
        guard let server = serverChannel.withLockedValue({ $0 }) else { return }
        try? await server.close()
        for channel in listenerConnections.channels {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        let deadline = ContinuousClock.now.advanced(by: gracePeriod)
        while !listenerConnections.channels.isEmpty && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for channel in listenerConnections.channels { try? await channel.close() }
    }

    /// The peer's IP as text; an IPv4-mapped IPv6 address is shown as IPv4.
    static func describe(_ address: SocketAddress?) -> (String, Int) {
        guard let address, let ip = address.ipAddress else { return ("unknown", 0) }
        let port = address.port ?? 0
        if ip.hasPrefix("::ffff:"), ip.dropFirst(7).contains(".") { return (String(ip.dropFirst(7)), port) }
        return (ip, port)
    }
}
