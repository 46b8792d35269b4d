import NIOCore

/// The envelope of a message as the SMTP session collected it.
public struct SMTPSessionEnvelope: Hashable, Sendable {
    public var sender: SMTPReversePath
    public var recipients: [SMTPMailbox]
    public var parameters: SMTPMailParameters
    public var heloName: String
    /// Whether the client greeted with EHLO.
    public var extended: Bool
    public var tls: SMTPTLSInfo?
    public var authenticatedAs: String?
}

/// The negotiated TLS of a session, for the Received header and the trace.
public struct SMTPTLSInfo: Hashable, Sendable {
    public var version: String
    public var cipher: String?
    public init(version: String, cipher: String? = nil) {
        self.version = version
        self.cipher = cipher
    }
}

/// An AUTH exchange the session collected: the mechanism and each base64
/// response of the client, in order. Holds secrets: never log it.
public struct SMTPAuthExchange: Hashable, Sendable, CustomStringConvertible {
    public var mechanism: String
    public var responses: [String]
    public var description: String { "AUTH \(mechanism) (\(responses.count) responses, redacted)" }
}

/// The server side of one SMTP connection, without I/O.
///
/// It owns the framer, so every decision about the byte stream (what is a
/// command, what is content, what arrived too early) is made here; the NIO
/// handler performs the returned actions and reports their results back.
/// - SeeAlso: RFC 5321 §4.1, §4.3.2 (command sequencing)
public struct SMTPServerSession: Sendable {
    public struct Configuration: Sendable {
        public var hostname: String
        public var limits: SMTPServerLimits
        /// STARTTLS is offered (a certificate is configured and the connection is plaintext).
        public var startTLSAvailable = false
        /// The connection began with TLS (RFC 8314 implicit TLS).
        public var implicitTLS: SMTPTLSInfo?
        /// Mechanisms offered once TLS is up, or on plaintext when `allowPlaintextAuth`.
        public var authMechanisms: [String] = []
        public var allowPlaintextAuth = false
        /// MAIL before STARTTLS is refused (`require_tls`).
        public var requireTLS = false
        /// MAIL before AUTH is refused with this reply (Microsoft's submission endpoint behaviour).
        public var requireAuthentication: SMTPReply?
        /// Text after the host name in the greeting.
        public var greetingText = "ESMTP"
        /// A refusal instead of the greeting (e.g. no client rule matched): `554` and nothing but QUIT.
        public var refusal: SMTPReply?
        /// The client's address, shown in the EHLO reply.
        public var clientAddress: String = ""
        /// Decides the envelope sender: nil accepts it, a reply refuses it. Must be pure and quick.
        public var senderCheck: (@Sendable (SMTPReversePath) -> SMTPReply?)?
        /// Decides each recipient: nil accepts it, a reply refuses it. Must be pure and quick.
        public var recipientCheck: (@Sendable (SMTPMailbox) -> SMTPReply?)?

        public init(hostname: String, limits: SMTPServerLimits = SMTPServerLimits()) {
            self.hostname = hostname
            self.limits = limits
        }
    }

    /// What to do after sending replies.
    public enum After: Hashable, Sendable {
        case `continue`
        case close
        /// Install TLS; report `tlsEstablished` when the handshake completes.
        case startTLS
    }

    public enum Action: Hashable, Sendable {
        case reply([SMTPReply], then: After)
        /// Open a message for content; report `messageOpened(succeeded:)`.
        case openMessage(SMTPSessionEnvelope)
        /// Append content to the open message.
        case writeContent(ByteBuffer)
        /// Make the message durable; report `messageCommitted(reply:)`.
        case commitMessage(SMTPSessionEnvelope)
        /// Discard the open message, then send the replies.
        case discardMessage([SMTPReply], then: After)
        /// Check credentials; report `authenticationCompleted(identity:reply:)`.
        case verifyCredentials(SMTPAuthExchange)

        static func reply(_ reply: SMTPReply, then: After = .continue) -> Action { .reply([reply], then: then) }
    }

    private enum Phase: Hashable, Sendable {
        case start
        /// Waiting out the greeting delay; any input now is refused.
        case greeting(until: NIODeadline)
        case refused
        case command
        case awaitingOpen(data: Bool)
        case data
        case bdatChunk(last: Bool)
        case awaitingCommit
        case authResponse(mechanism: String, responses: [String], expected: Int)
        case awaitingAuth
        case awaitingTLS
        case closed
    }

    private struct Transaction: Hashable, Sendable {
        var sender: SMTPReversePath
        var parameters: SMTPMailParameters
        var recipients: [SMTPMailbox] = []
        var messageOpen = false
        var usingBDAT = false
        var contentSize = 0
        /// Once set, content is dropped and this is the reply at the end of the message.
        var failure: SMTPReply?
    }

    public let configuration: Configuration
    public let timeouts: SMTPServerTimeouts
    private var framer: SMTPFramer
    private var phase = Phase.start
    private var heloName: String?
    private var extended = false
    private var tls: SMTPTLSInfo?
    private var authenticatedAs: String?
    private var transaction: Transaction?
    private var errorCount = 0
    private var junkCount = 0
    private var closeAfterMessage = false

    // Deadlines (see `nextDeadline`).
    /// When input last arrived or the session last stopped waiting on the server.
    private var lastActivity: NIODeadline?
    /// When the command line now partly read began to arrive.
    private var commandStartedAt: NIODeadline?
    /// While a message is being received: the time by which the client must
    /// have sent enough octets to keep up `minDataRate`.
    private var rateDeadline: NIODeadline?

    public init(configuration: Configuration, timeouts: SMTPServerTimeouts = SMTPServerTimeouts()) {
        self.configuration = configuration
        self.timeouts = timeouts
        self.framer = SMTPFramer(limits: configuration.limits)
        self.tls = configuration.implicitTLS
    }

    public var isTLSActive: Bool { tls != nil }
    public var authenticatedIdentity: String? { authenticatedAs }
    /// Idle between commands, with no message in progress: safe to close with `421`.
    public var isIdle: Bool {
        switch phase {
        case .start, .greeting, .refused, .command, .authResponse: transaction?.messageOpen != true
        default: false
        }
    }

    // MARK: Events

    /// The connection is up (for implicit TLS: its handshake is done): the
    /// greeting now, or nil when it waits for `greetingDelay` (`timerFired`).
    public mutating func start(now: NIODeadline) -> Action? {
        guard case .start = phase else { return nil }
        lastActivity = now
        if timeouts.greetingDelay > .zero {
            phase = .greeting(until: now + timeouts.greetingDelay)
            return nil
        }
        return greet()
    }

    /// An implicit TLS connection was accepted; its handshake, before `start`,
    /// is bounded by the command timeout.
    public mutating func connectionOpened(now: NIODeadline) {
        guard case .start = phase else { return }
        lastActivity = now
    }

    /// The handshake of an implicit TLS connection finished (RFC 8314 §3.3): the session starts over TLS.
    public mutating func implicitTLSEstablished(_ info: SMTPTLSInfo, now: NIODeadline) -> Action? {
        guard case .start = phase else { return nil }
        tls = info
        return start(now: now)
    }

    private mutating func greet() -> Action {
        if let refusal = configuration.refusal {
            phase = .refused
            return .reply(refusal)
        }
        phase = .command
        return .reply(SMTPReply(220, nil, "\(configuration.hostname) \(configuration.greetingText)"))
    }

    /// Octets arrived from the client (before `consume` sees them).
    ///
    /// During the greeting delay they are refused with `554 5.5.0` and the
    /// connection closes: RFC 5321 §4.3.1 has the client wait for the greeting,
    /// and one that does not is a spam engine or another protocol. Nothing it
    /// sent is read.
    public mutating func received(octets: Int, now: NIODeadline) -> Action? {
        guard octets > 0 else { return nil }
        lastActivity = now
        if case .greeting = phase {
            phase = .closed
            return .reply(.talkedBeforeGreeting, then: .close)
        }
        if let deadline = rateDeadline {
            let limit = now + timeouts.data
            if timeouts.minDataRate > 0 {
                let credit = TimeAmount.nanoseconds(Int64(octets) * 1_000_000_000 / Int64(timeouts.minDataRate))
                rateDeadline = min(deadline + credit, limit)
            } else {
                rateDeadline = limit
            }
        }
        return nil
    }

    /// Consumes input until there is something to do; nil when more input is needed
    /// or the session waits for the result of an earlier action.
    public mutating func consume(_ input: inout ByteBuffer) -> Action? {
        defer { noteProgress(remaining: input.readableBytes) }
        while canRead, let frame = framer.next(&input) {
            switch frame {
            case .line, .badLine: commandStartedAt = nil
            default: break
            }
            if let action = handle(frame, input: &input) { return action }
        }
        return nil
    }

    // MARK: Deadlines

    /// When `timerFired` must next be called; nil while the session waits on
    /// the server (storage, credentials) or is closed.
    public var nextDeadline: NIODeadline? {
        guard let last = lastActivity else { return nil }
        switch phase {
        case .greeting(let until):
            return until
        case .start, .awaitingTLS:
            return last + timeouts.command
        case .command, .refused, .authResponse:
            if let rate = rateDeadline { return rate }  // between BDAT chunks
            var deadline = last + timeouts.idle
            if let started = commandStartedAt { deadline = min(deadline, started + timeouts.command) }
            return deadline
        case .data, .bdatChunk:
            return rateDeadline ?? last + timeouts.data
        case .awaitingOpen, .awaitingCommit, .awaitingAuth, .closed:
            return nil
        }
    }

    /// The timer armed for `nextDeadline` went off. Nil when nothing is due
    /// yet (the deadline moved on since): arm the timer again.
    public mutating func timerFired(now: NIODeadline) -> Action? {
        guard let deadline = nextDeadline, now >= deadline, let last = lastActivity else { return nil }
        switch phase {
        case .greeting:
            return greet()
        case .start, .awaitingTLS:
            // A TLS handshake that did not finish: there is no channel to answer on.
            phase = .closed
            return .reply([], then: .close)
        default:
            break
        }
        let reply: SMTPReply
        if let rate = rateDeadline, deadline == rate, timeouts.minDataRate > 0, now < last + timeouts.data {
            reply = .dataRateTooLow
        } else if let started = commandStartedAt, deadline == started + timeouts.command, now < last + timeouts.idle {
            reply = .commandTimeout
        } else {
            reply = .idleTimeout
        }
        return closeNow(reply)
    }

    /// After input was consumed: starts or stops the command and data-rate clocks.
    private mutating func noteProgress(remaining: Int) {
        switch phase {
        case .command, .refused, .authResponse:
            if remaining > 0 || framer.hasPartialLine {
                if commandStartedAt == nil { commandStartedAt = lastActivity }
            } else {
                commandStartedAt = nil
            }
        default:
            commandStartedAt = nil
        }
        updateRateClock()
    }

    /// The data-rate clock runs from the start of a message's content to its end.
    private mutating func updateRateClock() {
        let receiving: Bool = switch phase {
        case .data, .bdatChunk: true
        default: transaction?.messageOpen == true
        }
        if !receiving {
            rateDeadline = nil
        } else if rateDeadline == nil, let last = lastActivity {
            rateDeadline = last + timeouts.data
        }
    }

    private var canRead: Bool {
        switch phase {
        case .command, .refused, .data, .bdatChunk, .authResponse: true
        case .start, .greeting, .awaitingOpen, .awaitingCommit, .awaitingAuth, .awaitingTLS, .closed: false
        }
    }

    public mutating func messageOpened(succeeded: Bool) -> Action? {
        guard case .awaitingOpen(let isData) = phase, transaction != nil else { return nil }
        if succeeded {
            transaction!.messageOpen = true
            if isData {
                phase = .data
                framer.setMode(.data)
                updateRateClock()
                return .reply(.startMailInput)
            }
            phase = .bdatChunk(last: pendingBDATLast)
            framer.setMode(.bdat(remaining: pendingBDATSize))
            updateRateClock()
            return nil
        }
        let failure = SMTPReply(451, .init(4, 3, 0), "Temporary failure storing the message, try again later")
        if isData {
            transaction = nil
            phase = .command
            return .reply(failure)
        }
        // The chunk's octets still have to be read; they are dropped.
        transaction!.failure = failure
        phase = .bdatChunk(last: pendingBDATLast)
        framer.setMode(.bdat(remaining: pendingBDATSize))
        updateRateClock()
        return nil
    }

    private var pendingBDATSize = 0
    private var pendingBDATLast = false

    /// Writing content failed (disk full, I/O error): the message will be refused with `451`.
    public mutating func contentWriteFailed() {
        guard var current = transaction, current.failure == nil else { return }
        current.failure = SMTPReply(451, .init(4, 3, 0), "Temporary failure storing the message, try again later")
        transaction = current
    }

    /// The storage answered: `250 ... queued as` or a failure.
    public mutating func messageCommitted(reply: SMTPReply, now: NIODeadline) -> Action? {
        guard case .awaitingCommit = phase else { return nil }
        transaction = nil
        phase = .command
        lastActivity = now
        rateDeadline = nil
        if reply.code / 100 == 2 { junkCount = 0 }
        if closeAfterMessage {
            phase = .closed
            return .reply([reply, .shuttingDown], then: .close)
        }
        return .reply(reply)
    }

    public mutating func authenticationCompleted(identity: String?, reply: SMTPReply, now: NIODeadline) -> Action? {
        guard case .awaitingAuth = phase else { return nil }
        phase = .command
        lastActivity = now
        framer.setMode(.command)
        if let identity {
            authenticatedAs = identity
        } else {
            countError()
            if errorCount >= configuration.limits.maxErrors { return closeForErrors(after: reply) }
        }
        return .reply(reply)
    }

    /// The TLS handshake finished: everything learnt before it is forgotten (RFC 3207 §4.2).
    public mutating func tlsEstablished(_ info: SMTPTLSInfo, now: NIODeadline) {
        guard case .awaitingTLS = phase else { return }
        lastActivity = now
        tls = info
        heloName = nil
        extended = false
        authenticatedAs = nil
        transaction = nil
        phase = .command
        framer.setMode(.command)
    }

    /// The server is stopping: idle sessions get `421` now, a message in flight finishes first.
    public mutating func shutdownRequested() -> Action? {
        switch phase {
        case .command, .refused, .start, .greeting, .authResponse:
            if transaction?.messageOpen == true {
                // Between BDAT chunks: let the client finish the message.
                closeAfterMessage = true
                return nil
            }
            phase = .closed
            return .reply(.shuttingDown, then: .close)
        case .closed:
            return nil
        default:
            closeAfterMessage = true
            return nil
        }
    }

    // MARK: Frames

    private mutating func handle(_ frame: SMTPFrame, input: inout ByteBuffer) -> Action? {
        switch frame {
        case .line(let line):
            if case .authResponse = phase { return authResponse(line) }
            return command(line, input: &input)
        case .badLine(let problem):
            if case .authResponse = phase {
                phase = .command
                framer.setMode(.command)
            }
            let reply: SMTPReply = switch problem {
            case .tooLong: .lineTooLong
            case .bareLineFeed, .bareCarriageReturn: SMTPReply(500, .init(5, 5, 2), "Bare LF or CR is not allowed; lines end with CRLF")
            case .nul: SMTPReply(500, .init(5, 5, 2), "NUL characters are not allowed")
            }
            return errorReply(reply)
        case .content(let chunk):
            guard transaction != nil else { return nil }
            transaction!.contentSize += chunk.readableBytes
            if transaction!.failure == nil, transaction!.contentSize > configuration.limits.maxMessageSize {
                transaction!.failure = SMTPReply(552, .init(5, 3, 4), "Message size exceeds fixed maximum message size")
            }
            return transaction!.failure == nil ? .writeContent(chunk) : nil
        case .dataEnd(let violations):
            return endOfMessage(violations: violations)
        case .chunkEnd:
            guard case .bdatChunk(let last) = phase else { return nil }
            if last {
                return endOfMessage(violations: framer.finishBDATMessage())
            }
            phase = .command
            guard let transaction else {
                // BDAT without a transaction: its octets were read and dropped.
                return errorReply(.badSequence)
            }
            if let failure = transaction.failure { return .reply(failure) }
            return .reply(SMTPReply(250, .init(2, 0, 0), "\(pendingBDATSize) octets received"))
        }
    }

    private mutating func endOfMessage(violations: SMTPContentViolations) -> Action {
        phase = .command
        guard var transaction else { return errorReply(.badSequence) }
        let after: After = closeAfterMessage ? .close : .continue
        var replies: [SMTPReply] = []
        if let failure = transaction.failure {
            replies.append(failure)
        } else if violations.contains(.bareLineFeed) || violations.contains(.bareCarriageReturn) {
            replies.append(SMTPReply(550, .init(5, 6, 11), "Message refused: bare LF or CR in content; lines must end with CRLF"))
        } else if violations.contains(.nul) {
            replies.append(SMTPReply(554, .init(5, 6, 0), "Message refused: NUL characters in content"))
        } else if violations.contains(.lineTooLong) {
            replies.append(SMTPReply(554, .init(5, 6, 0), "Message refused: a line is longer than \(configuration.limits.maxTextLineLength) octets"))
        } else {
            phase = .awaitingCommit
            transaction.messageOpen = false
            self.transaction = transaction
            return .commitMessage(envelope(transaction))
        }
        self.transaction = nil
        if closeAfterMessage {
            phase = .closed
            replies.append(.shuttingDown)
        }
        return transaction.messageOpen ? .discardMessage(replies, then: after) : .reply(replies, then: after)
    }

    private func envelope(_ transaction: Transaction) -> SMTPSessionEnvelope {
        SMTPSessionEnvelope(
            sender: transaction.sender, recipients: transaction.recipients, parameters: transaction.parameters,
            heloName: heloName ?? "", extended: extended, tls: tls, authenticatedAs: authenticatedAs)
    }

    // MARK: Commands

    private var authOffered: Bool {
        !configuration.authMechanisms.isEmpty && (tls != nil || configuration.allowPlaintextAuth)
    }

    private mutating func command(_ line: ByteBuffer, input: inout ByteBuffer) -> Action? {
        if Self.isHTTPRequestLine(line) {
            // A browser or proxy made to talk to us (cross-protocol attack): whatever
            // follows is not SMTP and nothing of it may run as a command.
            input.moveReaderIndex(forwardBy: input.readableBytes)
            return closeNow(.httpRequest)
        }
        let command: SMTPCommand
        do {
            command = try SMTPCommand.parse(line)
        } catch {
            if phase == .refused { return refusedCommand(nil) }
            return errorReply(error.reply)
        }
        if phase == .refused { return refusedCommand(command) }

        switch command {
        case .ehlo(let name), .helo(let name):
            heloName = name
            if case .ehlo = command { extended = true } else { extended = false }
            let discard = transaction?.messageOpen == true
            transaction = nil
            let reply = extended ? ehloReply(name) : SMTPReply(250, nil, "\(configuration.hostname) Hello \(name)")
            return discard ? .discardMessage([reply], then: .continue) : .reply(reply)

        case .mail(let sender, let parameters):
            guard heloName != nil else { return errorReply(SMTPReply(503, .init(5, 5, 1), "Send HELO or EHLO first")) }
            guard transaction == nil else { return errorReply(SMTPReply(503, .init(5, 5, 1), "Nested MAIL command")) }
            if configuration.requireTLS && tls == nil {
                return errorReply(SMTPReply(530, .init(5, 7, 0), "Must issue a STARTTLS command first"))
            }
            if let required = configuration.requireAuthentication, authenticatedAs == nil {
                return errorReply(required)
            }
            if let size = parameters.size, size > configuration.limits.maxMessageSize {
                return .reply(SMTPReply(552, .init(5, 3, 4), "Message size exceeds fixed maximum message size"))
            }
            if (parameters.smtpUTF8 || parameters.body8Bit) && !extended {
                return errorReply(SMTPReply(555, .init(5, 5, 4), "Parameters require EHLO"))
            }
            if sender.mailbox?.requiresUTF8 == true && !parameters.smtpUTF8 {
                return errorReply(SMTPReply(553, .init(5, 6, 7), "Non-ASCII address requires SMTPUTF8"))
            }
            if let refusal = configuration.senderCheck?(sender) {
                return .reply(refusal)
            }
            transaction = Transaction(sender: sender, parameters: parameters)
            return .reply(SMTPReply(250, .init(2, 1, 0), "Sender ok"))

        case .rcpt(let recipient):
            guard transaction != nil, !transaction!.messageOpen else {
                return errorReply(SMTPReply(503, .init(5, 5, 1), "Need MAIL command first"))
            }
            if recipient.requiresUTF8 && !transaction!.parameters.smtpUTF8 {
                return errorReply(SMTPReply(553, .init(5, 6, 7), "Non-ASCII address requires SMTPUTF8"))
            }
            if transaction!.recipients.contains(recipient) {
                return .reply(SMTPReply(250, .init(2, 1, 5), "Recipient ok"))
            }
            if let refusal = configuration.recipientCheck?(recipient) {
                return .reply(refusal)
            }
            guard transaction!.recipients.count < configuration.limits.maxRecipients else {
                // RFC 5321 §4.5.3.1.10: 452 for too many recipients, so the client sends the rest later.
                return .reply(SMTPReply(452, .init(4, 5, 3), "Too many recipients"))
            }
            transaction!.recipients.append(recipient)
            return .reply(SMTPReply(250, .init(2, 1, 5), "Recipient ok"))

        case .data:
            guard let transaction, !transaction.usingBDAT else {
                return errorReply(SMTPReply(503, .init(5, 5, 1), "Need MAIL command first"))
            }
            guard !transaction.recipients.isEmpty else {
                return errorReply(SMTPReply(554, .init(5, 5, 1), "No valid recipients"))
            }
            if input.readableBytes > 0 {
                // RFC 2920 §3.1: DATA ends a pipelined group; octets before the 354 are not content.
                input.moveReaderIndex(forwardBy: input.readableBytes)
                self.transaction = nil
                phase = .closed
                return .reply(SMTPReply(554, .init(5, 5, 0), "Improper pipelining: message data sent before the 354 reply"), then: .close)
            }
            phase = .awaitingOpen(data: true)
            return .openMessage(envelope(transaction))

        case .bdat(let size, let last):
            pendingBDATSize = size
            pendingBDATLast = last
            guard var transaction, !transaction.recipients.isEmpty else {
                // The octets follow the command whatever the reply: read and drop them.
                framer.setMode(.bdat(remaining: size))
                phase = .bdatChunk(last: false)
                self.transaction = nil
                return nil
            }
            transaction.usingBDAT = true
            if transaction.contentSize + size > configuration.limits.maxMessageSize, transaction.failure == nil {
                transaction.failure = SMTPReply(552, .init(5, 3, 4), "Message size exceeds fixed maximum message size")
            }
            self.transaction = transaction
            if !transaction.messageOpen && transaction.failure == nil {
                phase = .awaitingOpen(data: false)
                return .openMessage(envelope(transaction))
            }
            framer.setMode(.bdat(remaining: size))
            phase = .bdatChunk(last: last)
            return nil

        case .rset:
            let wasOpen = transaction?.messageOpen == true
            transaction = nil
            framer.finishBDATMessage()
            let reply = SMTPReply.ok()
            return wasOpen ? .discardMessage([reply], then: .continue) : junk(reply)

        case .noop:
            return junk(.ok())
        case .quit:
            let wasOpen = transaction?.messageOpen == true
            transaction = nil
            phase = .closed
            return wasOpen ? .discardMessage([.closing], then: .close) : .reply(.closing, then: .close)
        case .vrfy:
            return junk(SMTPReply(252, .init(2, 5, 0), "Cannot VRFY user, but will accept message and attempt delivery"))
        case .expn:
            return errorReply(SMTPReply(502, .init(5, 5, 1), "EXPN is not supported"))
        case .help:
            return junk(SMTPReply(214, .init(2, 0, 0), "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH"))

        case .startTLS:
            guard configuration.startTLSAvailable, tls == nil else {
                if tls != nil { return errorReply(SMTPReply(503, .init(5, 5, 1), "TLS already active")) }
                return errorReply(SMTPReply(502, .init(5, 5, 1), "STARTTLS is not available"))
            }
            guard transaction == nil else { return errorReply(SMTPReply(503, .init(5, 5, 1), "STARTTLS is not allowed during a mail transaction")) }
            // RFC 3207 §4.2 and CVE-2011-0411: anything pipelined behind STARTTLS was
            // sent in plaintext and must not be read as if it came over TLS.
            input.moveReaderIndex(forwardBy: input.readableBytes)
            phase = .awaitingTLS
            return .reply(SMTPReply(220, .init(2, 0, 0), "Ready to start TLS"), then: .startTLS)

        case .auth(let mechanism, let initialResponse):
            guard authOffered, configuration.authMechanisms.contains(mechanism) else {
                return errorReply(SMTPReply(504, .init(5, 7, 4), "Unrecognized authentication type"))
            }
            guard authenticatedAs == nil else { return errorReply(SMTPReply(503, .init(5, 5, 1), "Already authenticated")) }
            guard transaction == nil else { return errorReply(SMTPReply(503, .init(5, 5, 1), "AUTH is not allowed during a mail transaction")) }
            let expected = mechanism == "LOGIN" ? 2 : 1
            var responses: [String] = []
            if let initialResponse {
                // RFC 4954 §4: "=" stands for an empty initial response.
                responses.append(initialResponse == "=" ? "" : initialResponse)
            }
            if responses.count >= expected {
                phase = .awaitingAuth
                return .verifyCredentials(SMTPAuthExchange(mechanism: mechanism, responses: responses))
            }
            phase = .authResponse(mechanism: mechanism, responses: responses, expected: expected)
            framer.setMode(.authResponse)
            return .reply(SMTPReply(334, nil, Self.authPrompt(mechanism: mechanism, step: responses.count)))
        }
    }

    private static func authPrompt(mechanism: String, step: Int) -> String {
        guard mechanism == "LOGIN" else { return "" }
        return step == 0 ? "VXNlcm5hbWU6" : "UGFzc3dvcmQ6"  // "Username:", "Password:"
    }

    private mutating func authResponse(_ line: ByteBuffer) -> Action? {
        guard case .authResponse(let mechanism, var responses, let expected) = phase else { return nil }
        let text = String(buffer: line)
        if text == "*" {
            phase = .command
            framer.setMode(.command)
            return errorReply(SMTPReply(501, .init(5, 7, 0), "Authentication cancelled"))
        }
        responses.append(text)
        if responses.count < expected {
            phase = .authResponse(mechanism: mechanism, responses: responses, expected: expected)
            return .reply(SMTPReply(334, nil, Self.authPrompt(mechanism: mechanism, step: responses.count)))
        }
        phase = .awaitingAuth
        return .verifyCredentials(SMTPAuthExchange(mechanism: mechanism, responses: responses))
    }

    private func ehloReply(_ name: String) -> SMTPReply {
        let greeting = configuration.clientAddress.isEmpty
            ? "\(configuration.hostname) Hello \(name)"
            : "\(configuration.hostname) Hello \(name) [\(configuration.clientAddress)]"
        var lines = [greeting, "SIZE \(configuration.limits.maxMessageSize)", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"]
        if configuration.startTLSAvailable && tls == nil { lines.append("STARTTLS") }
        if authOffered { lines.append("AUTH " + configuration.authMechanisms.joined(separator: " ")) }
        return SMTPReply(250, nil, lines)
    }

    private mutating func refusedCommand(_ command: SMTPCommand?) -> Action {
        // RFC 5321 §3.1: after a 554 greeting, answer 503 to everything but QUIT.
        if command == .quit {
            phase = .closed
            return .reply(.closing, then: .close)
        }
        return errorReply(SMTPReply(503, .init(5, 7, 1), "Access denied; only QUIT is accepted"))
    }

    private mutating func countError() { errorCount += 1 }

    /// A command that moves nothing forward: free up to `maxJunkCommands`, then each one counts as an error.
    private mutating func junk(_ reply: SMTPReply) -> Action {
        junkCount += 1
        guard junkCount > configuration.limits.maxJunkCommands else { return .reply(reply) }
        return errorReply(reply)
    }

    /// Ends the session now with `reply` (connection-scoped), dropping any message in progress.
    private mutating func closeNow(_ reply: SMTPReply) -> Action {
        let wasOpen = transaction?.messageOpen == true
        transaction = nil
        phase = .closed
        rateDeadline = nil
        commandStartedAt = nil
        return wasOpen ? .discardMessage([reply], then: .close) : .reply(reply, then: .close)
    }

    /// Request methods of HTTP/1 (RFC 9110 §9, RFC 5789) and the HTTP/2
    /// preface (RFC 9113 §3.4). None is an SMTP verb.
    private static let httpMethods: [[UInt8]] = [
        "GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "CONNECT ", "OPTIONS ", "TRACE ", "PATCH ", "PRI ",
    ].map { Array($0.utf8) }

    /// Whether `line` starts like an HTTP request line (methods compared without case).
    static func isHTTPRequestLine(_ line: ByteBuffer) -> Bool {
        line.withUnsafeReadableBytes { bytes in
            httpMethods.contains { method in
                guard bytes.count >= method.count else { return false }
                for (index, expected) in method.enumerated() {
                    var byte = bytes[index]
                    if byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") { byte -= 32 }
                    if byte != expected { return false }
                }
                return true
            }
        }
    }

    private mutating func errorReply(_ reply: SMTPReply) -> Action {
        countError()
        if errorCount >= configuration.limits.maxErrors { return closeForErrors(after: reply) }
        return .reply(reply)
    }

    private mutating func closeForErrors(after reply: SMTPReply) -> Action {
        let wasOpen = transaction?.messageOpen == true
        transaction = nil
        phase = .closed
        return wasOpen ? .discardMessage([reply, .tooManyErrors], then: .close) : .reply([reply, .tooManyErrors], then: .close)
    }
}

extension SMTPReply {
    /// RFC 5321 §4.3.1: the client sent before the greeting.
    static let talkedBeforeGreeting = SMTPReply(554, .init(5, 5, 0), "Protocol error: client sent before the greeting")
    static let httpRequest = SMTPReply(554, .init(5, 5, 0), "HTTP is not accepted here, closing connection")
    static let commandTimeout = SMTPReply(421, .init(4, 4, 2), "Command timeout, closing connection")
    static let dataRateTooLow = SMTPReply(421, .init(4, 4, 2), "Data rate too low, closing connection")
}
