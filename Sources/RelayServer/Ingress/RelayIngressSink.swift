import Foundation
import Logging
import NIOCore
import RelayCore
import RelayStorage
import SMTPCore
import SMTPNIO

/// One message on its way into the queue.
///
/// Thin on purpose: ``RelayMessageRepairStream`` decides (sender rules,
/// repairs, refusals); the sink writes what it returns and logs the outcome.
/// The `Received:` field the ingress wrote first stays first.
final class RelayIngressSink: SMTPMessageSink, @unchecked Sendable {
    // @unchecked: the handler calls write/abort/commit one at a time, never concurrently.
    private let writer: any RelayMessageWriter
    private let envelope: RelayEnvelope
    /// The client rule the message came under (sender rewriting, header rules).
    private let client: RelayConfiguration.Client
    private let store: any RelayQueueStore
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let wakeDelivery: @Sendable () -> Void
    private var repair: RelayMessageRepairStream
    private let observer: (any RelayEventObserver)?

    /// - Parameter hostname: the relay's name, for a `Message-ID` it has to make up
    ///   (`server.hostname`); without it, the host's own name.
    init(writer: any RelayMessageWriter, envelope: RelayEnvelope, client: RelayConfiguration.Client, store: any RelayQueueStore, logger: Logger,
         now: @escaping @Sendable () -> Date, wakeDelivery: @escaping @Sendable () -> Void, hostname: String? = nil,
         limits: RelayMessageRepair.Limits = .init(), observer: (any RelayEventObserver)? = nil) {
        self.observer = observer
        self.writer = writer
        self.envelope = envelope
        self.client = client
        self.store = store
        self.logger = logger
        self.now = now
        self.wakeDelivery = wakeDelivery
        let context = RelayMessageRepair.Context(
            rules: RelaySenderRules(client: client), envelopeSender: envelope.sender, queueID: writer.id.rawValue,
            hostname: hostname ?? Self.hostName, date: now())
        repair = RelayMessageRepairStream(context: context, limits: limits)
    }

    /// `server.hostname` is not handed to the sink yet; the machine's name is the usual default for it.
    private static let hostName: String = {
        let name = ProcessInfo.processInfo.hostName
        let plain = !name.isEmpty && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == ".") }
        return plain ? name : "localhost"
    }()

    func write(_ chunk: ByteBuffer) throws {
        // After a refusal the rest is dropped; the reply waits for the end of the data.
        guard repair.refusal == nil else { return }
        guard let output = chunk.withUnsafeReadableBytes({ repair.consumeInPlace($0) }) else {
            // Most of a large body: the chunk goes out as it came, uncopied.
            return try writer.write(chunk)
        }
        if !output.isEmpty { try writer.write(ByteBuffer(bytes: output)) }
    }

    func abort() { writer.abort() }

    func commit() async -> SMTPReply {
        var queued = envelope
        switch repair.finish() {
        case .failure(let refusal):
            writer.abort()
            audit(envelope: queued, decision: .refused, reason: refusal.reason, reply: refusal.reply)
            observer?.observe(.messageRefused(client: envelope.clientName, reason: refusal.reason))
            return refusal.reply
        case .success(let rest):
            do {
                if !rest.isEmpty { try writer.write(ByteBuffer(bytes: rest)) }
            } catch {
                return failed(error, envelope: queued)
            }
        }
        if let sender = repair.header?.envelopeSender { queued.sender = sender }
        // For the trace: what the message is called, and what policy changed on the way in.
        queued.messageID = repair.header?.messageID
        if queued.sender != envelope.sender { queued.originalSender = envelope.sender }
        if !repair.applied.isEmpty { queued.policyNotes = repair.applied.map(\.description) }
        do {
            let message = try await store.commit(writer, envelope: queued, now: now())
            let reply = SMTPReply(250, .init(2, 0, 0), "Ok: queued as \(message.id)")
            audit(envelope: queued, size: message.size, decision: .queued, reply: reply)
            observer?.observe(.messageReceived(client: queued.clientName, route: queued.route, size: message.size))
            wakeDelivery()
            return reply
        } catch {
            return failed(error, envelope: queued)
        }
    }

    private func failed(_ error: any Error, envelope: RelayEnvelope) -> SMTPReply {
        logger.error("Could not queue a message", metadata: ["queue_id": "\(writer.id)", "error": "\(error)"])
        writer.abort()
        let reply = SMTPReply(451, .init(4, 3, 0), "Temporary failure storing the message, try again later")
        audit(envelope: envelope, decision: .deferred, reason: "storage-error", reply: reply)
        return reply
    }

    /// The one audit line of this message.
    private func audit(envelope queued: RelayEnvelope, size: Int? = nil, decision: RelayMessageAudit.Decision, reason: String? = nil, reply: SMTPReply) {
        let audit = RelayMessageAudit(
            queueID: writer.id.rawValue, envelope: queued, originalSender: queued.sender == envelope.sender ? nil : envelope.sender,
            size: size, messageID: repair.header?.messageID, decision: decision, reason: reason, replyCode: reply.code,
            repairs: repair.applied)
        var metadata: Logger.Metadata = [:]
        for (key, value) in audit.fields { metadata[key] = "\(value)" }
        switch decision {
        case .queued: logger.info("Message queued", metadata: metadata)
        case .refused: logger.notice("Message refused", metadata: metadata)
        case .deferred: logger.warning("Message not queued", metadata: metadata)
        }
    }
}
