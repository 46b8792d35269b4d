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

    /// The session's deadlines; the session decides them, the handler keeps one timer armed.
    public typealias Timeouts = SMTPServerTimeouts

    private let delegate: any SMTPServerDelegate
    private let connection: SMTPConnectionInfo
    /// Read when the client asks for STARTTLS, so a reloaded certificate is used from then on.
    private let tlsContext: SMTPServerTLSContext?
    private var logger: Logger

    private var session: SMTPServerSession
    private var input = ByteBuffer()
    private var output = ByteBuffer()
    private var sink: (any SMTPMessageSink)?
    /// An action's result is pending (storage, credentials, TLS): input waits.
    private var waiting = false
    private var closing = false
    private var heldRead = false
    private var timer: Scheduled<Void>?
    /// When the armed timer goes off; a later deadline leaves it armed (it re-arms when it fires).
    private var timerDeadline: NIODeadline?

    /// Input buffered while waiting beyond which the socket is not read.
    private static let inputHighWater = 256 * 1024

    public convenience init(
        delegate: any SMTPServerDelegate, connection: SMTPConnectionInfo, tlsContext: NIOSSLContext?,
        timeouts: Timeouts = Timeouts(), logger: Logger
    ) {
        self.init(delegate: delegate, connection: connection, tlsContext: tlsContext.map(SMTPServerTLSContext.init),
                  timeouts: timeouts, logger: logger)
    }

    public init(
        delegate: any SMTPServerDelegate, connection: SMTPConnectionInfo, tlsContext: SMTPServerTLSContext?,
        timeouts: Timeouts = Timeouts(), logger: Logger
    ) {
        self.delegate = delegate
        self.connection = connection
        self.tlsContext = tlsContext
        self.logger = logger
        self.logger[metadataKey: "client"] = "\(connection.clientAddress)"
        self.session = SMTPServerSession(configuration: delegate.sessionConfiguration(for: connection), timeouts: timeouts)
    }

    public func channelActive(context: ChannelHandlerContext) {
        if connection.implicitTLS {
            session.connectionOpened(now: .now())
        } else if let action = session.start(now: .now()) {
            perform(action, context: context)
            flushReplies(context: context)
        }
        armTimer(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        discardMessage()
        delegate.connectionClosed(connection)
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !closing else { return }
        if let action = session.received(octets: bytes.readableBytes, now: .now()) {
            // Refused before reading (a client talking before the greeting): the bytes are never looked at.
            logger.notice("Connection refused: the client sent before the greeting")
            input.clear()
            perform(action, context: context)
            flushReplies(context: context)
            return
        }
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
                if let action = session.implicitTLSEstablished(info, now: .now()) { perform(action, context: context) }
            } else {
                session.tlsEstablished(info, now: .now())
                waiting = false
            }
            processInput(context: context)
            flushReplies(context: context)
            armTimer(context: context)
            return
        }
        if event is ChannelShouldQuiesceEvent {
            if let action = session.shutdownRequested() {
                perform(action, context: context)
                flushReplies(context: context)
            }
            armTimer(context: context)
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
                if let next = session.messageCommitted(reply: SMTPReply(451, .init(4, 3, 0), "Temporary failure storing the message, try again later"), now: .now()) {
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
                if let next = self.session.messageCommitted(reply: reply, now: .now()) { self.perform(next, context: context) }
                self.processInput(context: context)
                self.flushReplies(context: context)
                self.armTimer(context: context)
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
                if let next = self.session.authenticationCompleted(identity: result.identity, reply: result.reply, now: .now()) {
                    self.perform(next, context: context)
                }
                self.processInput(context: context)
                self.flushReplies(context: context)
                self.armTimer(context: context)
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
            input.clear()
            flushReplies(context: context)
            cancelTimer()
            context.close(promise: nil)
        case .startTLS:
            flushReplies(context: context)
            guard let tlsContext = tlsContext?.current else {
                closing = true
                context.close(promise: nil)
                return
            }
            waiting = true
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

    /// Keeps one timer armed for the session's next deadline. A deadline that
    /// only moved later (the data rate credits every read) leaves the timer as
    /// it is: when it fires early the session says so and it is armed again.
    private func armTimer(context: ChannelHandlerContext) {
        guard !closing, let deadline = session.nextDeadline else {
            cancelTimer()
            return
        }
        if let armed = timerDeadline, armed <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timer = nil
            self.timerDeadline = nil
            guard !self.closing else { return }
            if let action = self.session.timerFired(now: .now()) {
                if case .reply(let replies, .close) = action {
                    self.logger.notice("Session closed: deadline passed", metadata: ["reply": "\(replies.first.map { "\($0)" } ?? "none")"])
                } else if case .discardMessage(let replies, .close) = action {
                    self.logger.notice("Session closed: deadline passed, message discarded", metadata: ["reply": "\(replies.first.map { "\($0)" } ?? "none")"])
                }
                self.perform(action, context: context)
                self.flushReplies(context: context)
            }
            self.armTimer(context: context)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
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
