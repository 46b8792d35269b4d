import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import SMTPCore

/// The TLS context a listener gives new connections. Replacing it (a
/// certificate reloaded on SIGHUP) changes what later handshakes present;
/// connections that already have TLS keep theirs.
public final class SMTPServerTLSContext: Sendable {
    private let box: NIOLockedValueBox<NIOSSLContext>

    public init(_ context: NIOSSLContext) {
        box = NIOLockedValueBox(context)
    }

    /// The context for a handshake starting now.
    public var current: NIOSSLContext { box.withLockedValue { $0 } }

    public func replace(with context: NIOSSLContext) {
        box.withLockedValue { $0 = context }
    }
}

/// One listening socket of the SMTP server.
public struct SMTPListener: Sendable {
    public enum Security: Sendable {
        case plaintext
        /// Plaintext with STARTTLS offered (RFC 3207).
        case startTLS(SMTPServerTLSContext)
        /// TLS from the first byte (RFC 8314).
        case implicitTLS(SMTPServerTLSContext)
    }

    public var host: String
    public var port: Int
    public var security: Security

    public init(host: String, port: Int, security: Security) {
        self.host = host
        self.port = port
        self.security = security
    }
}

/// Connection limits enforced before a session starts.
public struct SMTPConnectionLimits: Sendable {
    public var maxConnections = 1000
    public var maxConnectionsPerAddress = 50
    public init() {}
}

/// Accepts SMTP connections on several listeners and runs a session on each.
/// Shutdown follows RFC 5321 manners: stop accepting, `421` to idle sessions,
/// messages in flight finish.
public final class SMTPServer: Sendable {
    private let listeners: [SMTPListener]
    private let delegate: any SMTPServerDelegate
    private let group: any EventLoopGroup
    private let timeouts: SMTPServerHandler.Timeouts
    private let limits: SMTPConnectionLimits
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var channels: [any Channel] = []
        var quiescing: [ServerQuiescingHelper] = []
        var total = 0
        var perAddress: [String: Int] = [:]
    }

    public init(
        listeners: [SMTPListener], delegate: any SMTPServerDelegate, group: any EventLoopGroup,
        timeouts: SMTPServerHandler.Timeouts = .init(), limits: SMTPConnectionLimits = .init(), logger: Logger
    ) {
        self.listeners = listeners
        self.delegate = delegate
        self.group = group
        self.timeouts = timeouts
        self.limits = limits
        self.logger = logger
    }

    /// Binds every listener; returns the bound addresses (useful with port 0).
    @discardableResult
    public func start() async throws -> [SocketAddress] {
        var bound: [SocketAddress] = []
        for listener in listeners {
            let quiesce = ServerQuiescingHelper(group: group)
            let channel = try await makeBootstrap(listener, quiesce: quiesce)
                .bind(host: listener.host, port: listener.port).get()
            state.withLockedValue {
                $0.channels.append(channel)
                $0.quiescing.append(quiesce)
            }
            if let address = channel.localAddress { bound.append(address) }
            logger.info("SMTP listener started", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        }
        return bound
    }

    /// Stops accepting and asks every session to finish; returns when all are
    /// closed or `gracePeriod` has passed (then the rest are closed).
    public func shutdown(gracePeriod: TimeAmount = .seconds(30)) async {
        let helpers = state.withLockedValue { $0.quiescing }
        let loop = group.next()
        await withTaskGroup(of: Void.self) { tasks in
            for helper in helpers {
                let promise = loop.makePromise(of: Void.self)
                helper.initiateShutdown(promise: promise)
                tasks.addTask { try? await promise.futureResult.get() }
            }
            tasks.addTask {
                try? await Task.sleep(for: .nanoseconds(gracePeriod.nanoseconds))
            }
            // Whichever comes first: all closed, or the grace period.
            await tasks.next()
            tasks.cancelAll()
        }
    }

    private func makeBootstrap(_ listener: SMTPListener, quiesce: ServerQuiescingHelper) -> ServerBootstrap {
        let listenerName = "\(listener.host):\(listener.port)"
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.initializeChild(channel, listener: listener, listenerName: listenerName)
                }
            }
    }

    private func initializeChild(_ channel: any Channel, listener: SMTPListener, listenerName: String) throws {
        let (address, port) = Self.describe(channel.remoteAddress)
        let admitted = state.withLockedValue { state -> Bool in
            guard state.total < limits.maxConnections, state.perAddress[address, default: 0] < limits.maxConnectionsPerAddress else { return false }
            state.total += 1
            state.perAddress[address, default: 0] += 1
            return true
        }
        guard admitted else {
            logger.warning("Connection refused: connection limit reached", metadata: ["client": "\(address)"])
            var reply = channel.allocator.buffer(capacity: 64)
            SMTPReply(421, .init(4, 7, 0), "Too many connections, try again later").encode(into: &reply)
            channel.writeAndFlush(reply).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        channel.closeFuture.whenComplete { [state] _ in
            state.withLockedValue { state in
                state.total -= 1
                state.perAddress[address, default: 1] -= 1
                if state.perAddress[address] == 0 { state.perAddress[address] = nil }
            }
        }
        var tlsContext: SMTPServerTLSContext?
        var implicit = false
        switch listener.security {
        case .plaintext: break
        case .startTLS(let context): tlsContext = context
        case .implicitTLS(let context):
            tlsContext = context
            implicit = true
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context.current))
        }
        let info = SMTPConnectionInfo(clientAddress: address, clientPort: port, listener: listenerName, implicitTLS: implicit)
        try channel.pipeline.syncOperations.addHandler(
            SMTPServerHandler(delegate: delegate, connection: info, tlsContext: tlsContext, timeouts: timeouts, logger: logger))
    }

    /// The peer's IP as text; an IPv4-mapped IPv6 address is shown as IPv4.
    static func describe(_ address: SocketAddress?) -> (String, Int) {
        guard let address, let ip = address.ipAddress else { return ("unknown", 0) }
        let port = address.port ?? 0
        if ip.hasPrefix("::ffff:"), ip.dropFirst(7).contains(".") { return (String(ip.dropFirst(7)), port) }
        return (ip, port)
    }
}
