import NIOCore

/// The envelope of one message as the SMTP client sends it.
public struct SMTPClientEnvelope: Hashable, Sendable {
    public var sender: SMTPReversePath
    public var recipients: [SMTPMailbox]
    /// Size of the content in octets, announced as `SIZE=` when the server offers SIZE.
    public var size: Int?
    /// The message needs SMTPUTF8 (UTF-8 headers); also implied by any non-ASCII address.
    public var requiresSMTPUTF8: Bool
    /// The content has 8-bit octets and goes as `BODY=8BITMIME`.
    public var eightBit: Bool

    public init(
        sender: SMTPReversePath, recipients: [SMTPMailbox], size: Int? = nil,
        requiresSMTPUTF8: Bool = false, eightBit: Bool = false
    ) {
        self.sender = sender
        self.recipients = recipients
        self.size = size
        self.requiresSMTPUTF8 = requiresSMTPUTF8
        self.eightBit = eightBit
    }

    /// Whether SMTPUTF8 is needed: asked for, or an address is not ASCII.
    public var needsSMTPUTF8: Bool {
        requiresSMTPUTF8 || (sender.mailbox?.requiresUTF8 ?? false) || recipients.contains(where: \.requiresUTF8)
    }
}

/// What became of one recipient.
public struct SMTPRecipientResult: Hashable, Sendable, CustomStringConvertible {
    public enum Status: Hashable, Sendable {
        /// The server took responsibility for the message (end-of-data `2xx`).
        case delivered(SMTPReply)
        /// Try again later.
        case temporaryFailure(SMTPReply)
        /// Do not try again; a DSN is due.
        case permanentFailure(SMTPReply)

        public var reply: SMTPReply {
            switch self {
            case .delivered(let reply), .temporaryFailure(let reply), .permanentFailure(let reply): reply
            }
        }

        /// The status a `2xx`, `4xx` or `5xx` reply means.
        init(_ reply: SMTPReply) {
            if reply.isPositiveCompletion {
                self = .delivered(reply)
            } else if reply.isTransientFailure {
                self = .temporaryFailure(reply)
            } else {
                self = .permanentFailure(reply)
            }
        }
    }

    public var recipient: SMTPMailbox
    public var status: Status

    public init(recipient: SMTPMailbox, status: Status) {
        self.recipient = recipient
        self.status = status
    }

    public var description: String {
        switch status {
        case .delivered(let reply): "delivered (\(reply.code))"
        case .temporaryFailure(let reply): "temporary failure (\(reply.code))"
        case .permanentFailure(let reply): "permanent failure (\(reply.code))"
        }
    }
}

/// The outcome of one message transaction.
public struct SMTPClientTransactionResult: Hashable, Sendable {
    /// One result per envelope recipient, in envelope order.
    public var recipients: [SMTPRecipientResult]
    /// The end-of-data reply when the body was sent; Microsoft 365 puts its message ids in it.
    public var messageReply: SMTPReply?
    /// False after `421` (the server is closing) or a failed `RSET`: do not start another transaction.
    public var connectionReusable: Bool

    public init(recipients: [SMTPRecipientResult], messageReply: SMTPReply?, connectionReusable: Bool) {
        self.recipients = recipients
        self.messageReply = messageReply
        self.connectionReusable = connectionReusable
    }

    public var delivered: [SMTPMailbox] {
        recipients.compactMap { if case .delivered = $0.status { $0.recipient } else { nil } }
    }
}

/// Decides how one message is sent on a ready session: which commands, when
/// the body goes, and what each reply means for each recipient.
///
/// Run it like this: call ``start()``, then pass every reply to
/// ``replyReceived(_:)`` in order and do what the returned ``Action`` says.
///
/// - With PIPELINING, `MAIL`, every `RCPT` and `DATA` go in one write; DATA is
///   last in the group (RFC 2920 §3.1). Without it, one command per reply.
/// - The body goes only when at least one recipient was accepted and DATA got
///   `354`. If no recipient was accepted, `RSET` ends the transaction; if a
///   pipelined DATA got `354` anyway, a lone `.` ends the empty message, as
///   RFC 2920 §3.1 asks.
/// - A refused `MAIL` gives every recipient that reply. A refused `RCPT` gives
///   that recipient its reply. The end-of-data reply (or a refused `DATA`)
///   decides for every accepted recipient.
/// - `421` at any point means the server is closing (RFC 5321 §3.8): the
///   transaction ends at once, every unresolved recipient fails temporarily
///   with that reply, and the connection is not reusable.
/// - Before anything is sent, a message the server said it cannot take fails
///   with a locally made reply: over its SIZE limit (`552 5.3.4`, RFC 1870 §6),
///   needing SMTPUTF8 it does not offer (`553 5.6.7`, RFC 6531 §3.4), or 8-bit
///   content without 8BITMIME (`554 5.6.3`, RFC 6152 §3).
///
/// An address that cannot be encoded (control characters, possible only for
/// a mailbox built without parsing) fails the whole message before anything
/// is sent (`553 5.1.7` sender, `553 5.1.3` recipient).
///
/// On ``Action/protocolError(_:)``, close the connection: nothing was
/// delivered unless an end-of-data `2xx` came, so every recipient is retried.
public struct SMTPClientTransaction: Sendable {
    public enum Action: Sendable, CustomStringConvertible {
        /// Write these bytes (the encoded `commands`) and flush.
        case send(commands: [SMTPClientCommand], bytes: ByteBuffer)
        /// Write the content through an ``SMTPDotStuffer`` (chunks, then `finish`) and flush;
        /// then pass the end-of-data reply to ``SMTPClientTransaction/replyReceived(_:)``.
        case sendBody
        /// More replies of the pipelined group are due; read the next one.
        case wait
        /// The transaction is over.
        case finished(SMTPClientTransactionResult)
        /// The server broke the protocol; close the connection.
        case protocolError(SMTPClientError)

        public var description: String {
            switch self {
            case .send(let commands, _): "send(\(commands.map(\.description).joined(separator: ", ")))"
            case .sendBody: "sendBody"
            case .wait: "wait"
            case .finished(let result): "finished(\(result.recipients.map(\.description).joined(separator: ", ")))"
            case .protocolError(let error): "protocolError(\(error))"
            }
        }
    }

    private enum Expected: Hashable, Sendable {
        case mail, rcpt, data, endOfData, emptyDataEnd, reset
    }

    public let capabilities: SMTPCapabilities
    public let envelope: SMTPClientEnvelope

    private var started = false
    private var isFinished = false
    private var expected: [Expected] = []
    private var mailReply: SMTPReply?
    private var rcptReplies: [SMTPReply] = []
    private var dataReply: SMTPReply?
    /// The reply that decides for every accepted recipient: end of data, or a refused DATA.
    private var acceptedOutcome: SMTPReply?
    private var messageReply: SMTPReply?

    public init(capabilities: SMTPCapabilities, envelope: SMTPClientEnvelope) {
        self.capabilities = capabilities
        self.envelope = envelope
    }

    /// The mail parameters this server gets for this envelope.
    public var mailParameters: SMTPMailParameters {
        var parameters = SMTPMailParameters()
        parameters.size = capabilities.size ? envelope.size : nil
        parameters.body8Bit = envelope.eightBit && capabilities.eightBitMIME
        parameters.smtpUTF8 = envelope.needsSMTPUTF8 && capabilities.smtpUTF8
        return parameters
    }

    /// The first action: the commands to send, or a result when the message cannot be offered at all.
    public mutating func start() -> Action {
        guard !started else { return protocolError(SMTPClientError(.unexpectedEvent, detail: "start() called twice")) }
        started = true
        if envelope.recipients.isEmpty {
            return finish(connectionReusable: true)
        }
        if let refusal = localRefusal() {
            mailReply = refusal
            return finish(connectionReusable: true)
        }
        // Encode every envelope command now, so that an address that cannot go on
        // the wire fails the message before anything is sent, not mid-transaction.
        let mail = SMTPClientCommand.mail(from: envelope.sender, parameters: mailParameters)
        do {
            _ = try SMTPClientCommand.encode([mail])
        } catch {
            mailReply = SMTPReply(553, SMTPEnhancedStatus(5, 1, 7), "Sender address cannot be transmitted")
            return finish(connectionReusable: true)
        }
        do {
            _ = try SMTPClientCommand.encode(envelope.recipients.map { .rcpt(to: $0) })
        } catch {
            mailReply = SMTPReply(553, SMTPEnhancedStatus(5, 1, 3), "Recipient address cannot be transmitted")
            return finish(connectionReusable: true)
        }
        var commands: [SMTPClientCommand] = [mail]
        expected = [.mail]
        if capabilities.pipelining {
            commands += envelope.recipients.map { .rcpt(to: $0) }
            commands.append(.data)
            expected += Array(repeating: .rcpt, count: envelope.recipients.count) + [.data]
        }
        return send(commands)
    }

    /// Feed each reply in the order it arrives.
    public mutating func replyReceived(_ reply: SMTPReply) -> Action {
        guard started, !isFinished, !expected.isEmpty else {
            return protocolError(SMTPClientError(.unexpectedReply, reply: reply, detail: "no reply was due"))
        }
        let what = expected.removeFirst()

        // RFC 5321 §3.8: 421 may answer any command; the server is closing.
        if reply.code == 421 {
            if what == .endOfData { messageReply = reply }
            return finish(connectionReusable: false, unresolved: reply)
        }

        switch what {
        case .mail:
            guard reply.isPositiveCompletion || reply.isTransientFailure || reply.isPermanentFailure else {
                return unexpected(reply, "to MAIL")
            }
            mailReply = reply
        case .rcpt:
            guard reply.isPositiveCompletion || reply.isTransientFailure || reply.isPermanentFailure else {
                return unexpected(reply, "to RCPT")
            }
            rcptReplies.append(reply)
        case .data:
            guard reply.code == 354 || reply.isTransientFailure || reply.isPermanentFailure else {
                return unexpected(reply, "to DATA")
            }
            dataReply = reply
        case .endOfData:
            guard reply.isPositiveCompletion || reply.isTransientFailure || reply.isPermanentFailure else {
                return unexpected(reply, "to the end of data")
            }
            messageReply = reply
            acceptedOutcome = reply
            return finish(connectionReusable: true)
        case .emptyDataEnd:
            // The end of an empty message no recipient gets; only the connection state matters.
            return finish(connectionReusable: reply.isPositiveCompletion || reply.isTransientFailure || reply.isPermanentFailure)
        case .reset:
            return finish(connectionReusable: reply.isPositiveCompletion)
        }

        if !expected.isEmpty { return .wait }
        return advance()
    }

    /// Decides the next step once every reply of the last write is in.
    private mutating func advance() -> Action {
        guard let mailReply else { return protocolError(SMTPClientError(.unexpectedEvent, detail: "no MAIL reply")) }
        if !mailReply.isPositiveCompletion {
            if dataReply?.code == 354 { return sendEmptyDataEnd() }
            return finish(connectionReusable: true)
        }
        if rcptReplies.count < envelope.recipients.count {
            expected = [.rcpt]
            return send([.rcpt(to: envelope.recipients[rcptReplies.count])])
        }
        let anyAccepted = rcptReplies.contains(where: \.isPositiveCompletion)
        guard let dataReply else {
            if anyAccepted {
                expected = [.data]
                return send([.data])
            }
            return reset()
        }
        if dataReply.code == 354 {
            guard anyAccepted else { return sendEmptyDataEnd() }
            expected = [.endOfData]
            return .sendBody
        }
        acceptedOutcome = dataReply
        return reset()
    }

    private func localRefusal() -> SMTPReply? {
        if let size = envelope.size, let limit = capabilities.sizeLimit, size > limit {
            return SMTPReply(552, SMTPEnhancedStatus(5, 3, 4), "Message size exceeds the server's limit of \(limit) octets")
        }
        if envelope.needsSMTPUTF8 && !capabilities.smtpUTF8 {
            return SMTPReply(553, SMTPEnhancedStatus(5, 6, 7), "Server does not support SMTPUTF8")
        }
        if envelope.eightBit && !capabilities.eightBitMIME {
            return SMTPReply(554, SMTPEnhancedStatus(5, 6, 3), "Server does not support 8BITMIME")
        }
        return nil
    }

    private mutating func send(_ commands: [SMTPClientCommand]) -> Action {
        do {
            return .send(commands: commands, bytes: try SMTPClientCommand.encode(commands))
        } catch {
            // Unreachable: start() encoded every envelope command already.
            return protocolError(error)
        }
    }

    private mutating func sendEmptyDataEnd() -> Action {
        expected = [.emptyDataEnd]
        var bytes = ByteBuffer()
        bytes.writeString(".\r\n")
        return .send(commands: [], bytes: bytes)
    }

    private mutating func reset() -> Action {
        expected = [.reset]
        return send([.rset])
    }

    private mutating func unexpected(_ reply: SMTPReply, _ context: String) -> Action {
        protocolError(SMTPClientError(.unexpectedReply, reply: reply, detail: "\(reply.code) \(context)"))
    }

    private mutating func protocolError(_ error: SMTPClientError) -> Action {
        isFinished = true
        expected = []
        return .protocolError(error)
    }

    private mutating func finish(connectionReusable: Bool, unresolved: SMTPReply? = nil) -> Action {
        isFinished = true
        expected = []
        return .finished(result(connectionReusable: connectionReusable, unresolved: unresolved))
    }

    /// Every recipient's status from the replies so far; `unresolved` decides for those without one.
    private func result(connectionReusable: Bool, unresolved: SMTPReply?) -> SMTPClientTransactionResult {
        let recipients = envelope.recipients.enumerated().map { index, recipient -> SMTPRecipientResult in
            let decisive: SMTPReply?
            if let mailReply, !mailReply.isPositiveCompletion {
                decisive = mailReply
            } else if index < rcptReplies.count, !rcptReplies[index].isPositiveCompletion {
                decisive = rcptReplies[index]
            } else {
                decisive = acceptedOutcome ?? unresolved
            }
            let reply = decisive ?? SMTPReply(451, SMTPEnhancedStatus(4, 4, 0), "Transaction ended without a reply")
            return SMTPRecipientResult(recipient: recipient, status: SMTPRecipientResult.Status(reply))
        }
        return SMTPClientTransactionResult(
            recipients: recipients, messageReply: messageReply, connectionReusable: connectionReusable)
    }
}
