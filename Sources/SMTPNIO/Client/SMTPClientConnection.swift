import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SMTPCore

/// One client connection to an SMTP server: write commands, await replies,
/// upgrade to TLS. It carries bytes only; `SMTPClientSession` and
/// `SMTPClientTransaction` decide what to send.
///
/// Used by one task at a time (a delivery holds it from the pool), hence
/// `@unchecked Sendable`; the channel state lives on its event loop.
public final class SMTPClientConnection: @unchecked Sendable {
    public struct Timeouts: Sendable {
        public var connect: TimeAmount = .seconds(30)
        /// Per reply; RFC 5321 §4.5.3.2 suggests 5 minutes for most commands.
        public var reply: TimeAmount = .minutes(5)
        /// For the end-of-data reply (§4.5.3.2.6: 10 minutes).
        public var endOfData: TimeAmount = .minutes(10)
        public init() {}
    }

    public let channel: any Channel
    private let replies: NIOLoopBound<SMTPClientReplyHandler>
    public let timeouts: Timeouts
    public private(set) var tlsVersion: String?

    private init(channel: any Channel, replies: SMTPClientReplyHandler, timeouts: Timeouts) {
        self.channel = channel
        self.replies = NIOLoopBound(replies, eventLoop: channel.eventLoop)
        self.timeouts = timeouts
    }

    public static func connect(host: String, port: Int, group: any EventLoopGroup, timeouts: Timeouts = Timeouts()) async throws -> SMTPClientConnection {
        // The handlers go in before the channel is active, so the greeting cannot
        // arrive while nobody listens for it.
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(timeouts.connect)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SMTPReplyDecoder()), name: decoderName)
                    try channel.pipeline.syncOperations.addHandler(SMTPClientReplyHandler())
                }
            }
            .connect(host: host, port: port).get()
        return try await channel.eventLoop.submit {
            let handler = try channel.pipeline.syncOperations.handler(type: SMTPClientReplyHandler.self)
            return SMTPClientConnection(channel: channel, replies: handler, timeouts: timeouts)
        }.get()
    }

    private static let decoderName = "smtp-reply-decoder"

    public var isActive: Bool { channel.isActive }

    /// The next reply; fails when the connection closes or `timeout` passes.
    public func nextReply(timeout: TimeAmount? = nil) async throws -> SMTPReply {
        let replies = self.replies
        let timeout = timeout ?? timeouts.reply
        return try await channel.eventLoop.flatSubmit {
            replies.value.nextReply(timeout: timeout)
        }.get()
    }

    /// Writes and flushes; returns when the bytes reached the socket, so a
    /// large body streams with bounded memory.
    public func write(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes)
    }

    /// Adds TLS under the reply decoder and waits for the handshake.
    /// Replies that arrived after the STARTTLS reply were sent in plaintext:
    /// that is an injection (CVE-2011-0411 family), and the connection is refused.
    public func startTLS(context: NIOSSLContext, serverHostname: String?) async throws {
        let replies = self.replies
        let channel = self.channel
        let handshake = try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            if replies.value.hasBufferedReplies {
                return channel.eventLoop.makeFailedFuture(SMTPClientError(.unexpectedReply, detail: "plaintext sent after the STARTTLS reply"))
            }
            do {
                // A partial reply line buffered in the decoder also came in plaintext:
                // removing the decoder surfaces it as an error; a fresh one reads only TLS.
                let operations = channel.pipeline.syncOperations
                let oldDecoder = try operations.context(name: Self.decoderName)
                let replyHandler = try operations.context(handlerType: SMTPClientReplyHandler.self)
                operations.removeHandler(context: oldDecoder, promise: nil)
                try operations.addHandler(ByteToMessageHandler(SMTPReplyDecoder()), name: Self.decoderName, position: .before(replyHandler.handler))
                if replies.value.hasFailed {
                    return channel.eventLoop.makeFailedFuture(SMTPClientError(.unexpectedReply, detail: "plaintext sent after the STARTTLS reply"))
                }
                // An IP literal cannot go in SNI; without a name NIOSSL checks the
                // certificate's IP addresses against the peer's address instead.
                let name = serverHostname.flatMap { (try? SocketAddress(ipAddress: $0, port: 0)) == nil ? $0 : nil }
                let tls = try NIOSSLClientHandler(context: context, serverHostname: name)
                let promise = channel.eventLoop.makePromise(of: Void.self)
                try channel.pipeline.syncOperations.addHandler(tls, position: .first)
                try channel.pipeline.syncOperations.addHandler(TLSHandshakeWaiter(promise: promise), position: .after(tls))
                return promise.futureResult
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
        try await handshake.get()
        tlsVersion = try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).tlsVersion
        }.get().map(SMTPServerHandler.name(of:))
    }

    public func close() async {
        try? await channel.close()
    }
}

/// Hands decoded replies to whoever waits for them, in order.
final class SMTPClientReplyHandler: ChannelInboundHandler {
    typealias InboundIn = SMTPReply

    private var buffered = CircularBuffer<SMTPReply>()
    private var waiters = CircularBuffer<(promise: EventLoopPromise<SMTPReply>, timeout: Scheduled<Void>?)>()
    private var failure: (any Error)?
    private var context: ChannelHandlerContext?

    var hasBufferedReplies: Bool { !buffered.isEmpty }
    var hasFailed: Bool { failure != nil }

    private var eventLoop: (any EventLoop)?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        eventLoop = context.eventLoop
    }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func nextReply(timeout: TimeAmount) -> EventLoopFuture<SMTPReply> {
        guard let context else { return eventLoop!.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        if let reply = buffered.popFirst() { return context.eventLoop.makeSucceededFuture(reply) }
        if let failure { return context.eventLoop.makeFailedFuture(failure) }
        let promise = context.eventLoop.makePromise(of: SMTPReply.self)
        let channel = context.channel
        let scheduled = context.eventLoop.scheduleTask(in: timeout) {
            promise.fail(SMTPClientError(.unexpectedEvent, detail: "no reply within \(timeout.nanoseconds / 1_000_000_000) s"))
            channel.close(promise: nil)
        }
        waiters.append((promise, scheduled))
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = unwrapInboundIn(data)
        if let waiter = waiters.popFirst() {
            waiter.timeout?.cancel()
            waiter.promise.succeed(reply)
        } else {
            buffered.append(reply)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        failure = failure ?? error
        while let waiter = waiters.popFirst() {
            waiter.timeout?.cancel()
            waiter.promise.fail(error)
        }
    }
}

@available(*, unavailable)
extension SMTPClientReplyHandler: Sendable {}

/// Completes a promise when the TLS handshake is done, fails it on error or close.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private var promise: EventLoopPromise<Void>?

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            promise?.succeed()
            promise = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        promise = nil
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(ChannelError.ioOnClosedChannel)
        promise = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension TLSHandshakeWaiter: Sendable {}
