import Logging
import NIOCore
import NIOExtras
import NIOSSL
import NIOTLS
import SMTPCore

/// Runs one connection's `SMTPServerSession`: feeds it bytes, performs its
/// actions, reports their results. It decides nothing itself.
public final class SMTPServerHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public struct Timeouts: Sendable {
        /// Waiting for a command (RFC 5321 §4.5.3.2.7 suggests 5 minutes).
        public var command: TimeAmount = .minutes(5)
        /// Waiting for the next block of message content (§4.5.3.2.5: 3 minutes; we allow the longer of the two).
        public var data: TimeAmount = .minutes(5)
        public init() {}
    }

    private let delegate: any SMTPServerDelegate
    private let connection: SMTPConnectionInfo
    private let tlsContext: NIOSSLContext?
    private let timeouts: Timeouts
    private var logger: Logger

    private var session: SMTPServerSession
    private var input = ByteBuffer()
    private var output = ByteBuffer()
    private var sink: (any SMTPMessageSink)?
    /// An action's result is pending (storage, credentials, TLS): input waits.
    private var waiting = false
    private var closing = false
    /// Waiting for the client's TLS handshake: unlike storage, the client can stall this.
    private var awaitingHandshake = false
    private var heldRead = false
    private var timer: Scheduled<Void>?

    /// Input buffered while waiting beyond which the socket is not read.
    private static let inputHighWater = 256 * 1024

    public init(
        delegate: any SMTPServerDelegate, connection: SMTPConnectionInfo, tlsContext: NIOSSLContext?,
        timeouts: Timeouts = Timeouts(), logger: Logger
    ) {
        self.delegate = delegate
        self.connection = connection
        self.tlsContext = tlsContext
        self.timeouts = timeouts
        self.logger = logger
        self.logger[metadataKey: "client"] = "\(connection.clientAddress)"
        self.session = SMTPServerSession(configuration: delegate.sessionConfiguration(for: connection))
    }

    public func channelActive(context: ChannelHandlerContext) {
        if !connection.implicitTLS {
            perform(session.start(), context: context)
            flushReplies(context: context)
        }
        armTimer(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        discardMessage()
        delegate.connectionClosed(connection)
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !closing else { return }
        input.writeBuffer(&bytes)
        processInput(context: context)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        flushReplies(context: context)
        armTimer(context: context)
        context.fireChannelReadComplete()
    }

    public func read(context: ChannelHandlerContext) {
        // Backpressure: while an action is pending, do not read more than a bounded amount.
        if waiting && input.readableBytes >= Self.inputHighWater {
            heldRead = true
            return
        }
        context.read()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            let info = negotiatedTLS(context: context)
            logger.debug("TLS established", metadata: ["tls": "\(info.version)"])
            if connection.implicitTLS && !session.isTLSActive {
                session = SMTPServerSession(configuration: {
                    var configuration = session.configuration
                    configuration.implicitTLS = info
                    return configuration
                }())
                perform(session.start(), context: context)
            } else {
                session.tlsEstablished(info)
                waiting = false
                awaitingHandshake = false
            }
            processInput(context: context)
            flushReplies(context: context)
            return
        }
        if event is ChannelShouldQuiesceEvent {
            if let action = session.shutdownRequested() {
                perform(action, context: context)
                flushReplies(context: context)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("Connection error", metadata: ["error": "\(error)"])
        discardMessage()
        context.close(promise: nil)
    }

    // MARK: Running actions

    private func processInput(context: ChannelHandlerContext) {
        while !waiting && !closing, let action = session.consume(&input) {
            perform(action, context: context)
        }
        if input.readableBytes == 0 {
            input.clear()
        } else if input.readerIndex > 64 * 1024 {
            input.discardReadBytes()
        }
        if !waiting && heldRead {
            heldRead = false
            context.read()
        }
    }

    private func perform(_ action: SMTPServerSession.Action, context: ChannelHandlerContext) {
        switch action {
        case .reply(let replies, let after):
            send(replies, then: after, context: context)

        case .openMessage(let envelope):
            let opened: Bool
            do {
                sink = try delegate.openMessage(envelope: envelope, connection: connection)
                opened = true
            } catch {
                logger.error("Could not open a message for storage", metadata: ["error": "\(error)"])
                opened = false
            }
            if let next = session.messageOpened(succeeded: opened) { perform(next, context: context) }

        case .writeContent(let chunk):
            do {
                try sink?.write(chunk)
            } catch {
                logger.error("Could not write message content", metadata: ["error": "\(error)"])
                session.contentWriteFailed()
                discardMessage()
            }

        case .commitMessage:
            guard let sink else {
                if let next = session.messageCommitted(reply: SMTPReply(451, .init(4, 3, 0), "Temporary failure storing the message, try again later")) {
                    perform(next, context: context)
                }
                return
            }
            self.sink = nil
            waiting = true
            flushReplies(context: context)
            let promise = context.eventLoop.makePromise(of: SMTPReply.self)
            promise.completeWithTask { await sink.commit() }
            promise.futureResult.assumeIsolated().whenSuccess { reply in
                self.waiting = false
                if let next = self.session.messageCommitted(reply: reply) { self.perform(next, context: context) }
                self.processInput(context: context)
                self.flushReplies(context: context)
            }

        case .discardMessage(let replies, let after):
            discardMessage()
            send(replies, then: after, context: context)

        case .verifyCredentials(let exchange):
            waiting = true
            flushReplies(context: context)
            let delegate = self.delegate
            let connection = self.connection
            let promise = context.eventLoop.makePromise(of: AuthResult.self)
            promise.completeWithTask {
                let (identity, reply) = await delegate.verifyCredentials(exchange, connection: connection)
                return AuthResult(identity: identity, reply: reply)
            }
            promise.futureResult.assumeIsolated().whenSuccess { result in
                self.waiting = false
                if let identity = result.identity {
                    self.logger.info("Authenticated", metadata: ["identity": "\(identity)"])
                } else {
                    self.logger.notice("Authentication failed")
                }
                if let next = self.session.authenticationCompleted(identity: result.identity, reply: result.reply) {
                    self.perform(next, context: context)
                }
                self.processInput(context: context)
                self.flushReplies(context: context)
            }
        }
    }

    private struct AuthResult: Sendable {
        var identity: String?
        var reply: SMTPReply
    }

    private func send(_ replies: [SMTPReply], then after: SMTPServerSession.After, context: ChannelHandlerContext) {
        for reply in replies { reply.encode(into: &output) }
        switch after {
        case .continue:
            break
        case .close:
            closing = true
            flushReplies(context: context)
            timer?.cancel()
            context.close(promise: nil)
        case .startTLS:
            flushReplies(context: context)
            guard let tlsContext else {
                closing = true
                context.close(promise: nil)
                return
            }
            waiting = true
            awaitingHandshake = true
            // Whatever plaintext was buffered has been dropped by the session;
            // from here every byte goes through TLS first.
            input.clear()
            let handler = NIOSSLServerHandler(context: tlsContext)
            do {
                try context.pipeline.syncOperations.addHandler(handler, position: .first)
            } catch {
                closing = true
                context.close(promise: nil)
            }
        }
    }

    private func flushReplies(context: ChannelHandlerContext) {
        guard output.readableBytes > 0 else { return }
        let bytes = output
        output = context.channel.allocator.buffer(capacity: 512)
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    private func discardMessage() {
        sink?.abort()
        sink = nil
    }

    private func armTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        guard !closing else { return }
        let timeout = session.isIdle ? timeouts.command : timeouts.data
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            // Waiting on our own storage or credential check is not the client's fault.
            guard !self.closing, !self.waiting || self.awaitingHandshake else { return }
            self.logger.notice("Session timed out")
            self.perform(self.session.timedOut(), context: context)
            self.flushReplies(context: context)
        }
    }

    private func negotiatedTLS(context: ChannelHandlerContext) -> SMTPTLSInfo {
        let version = (try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).tlsVersion).flatMap { $0 }
        return SMTPTLSInfo(version: version.map(Self.name(of:)) ?? "TLS")
    }

    public static func name(of version: TLSVersion) -> String {
        switch version {
        case .tlsv1: "TLSv1"
        case .tlsv11: "TLSv1.1"
        case .tlsv12: "TLSv1.2"
        case .tlsv13: "TLSv1.3"
        }
    }
}

@available(*, unavailable)
extension SMTPServerHandler: Sendable {}
