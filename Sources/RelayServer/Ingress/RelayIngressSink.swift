import Foundation
import Logging
import NIOCore
import RelayCore
import RelayStorage
import SMTPCore
import SMTPNIO

/// One message on its way into the queue.
final class RelayIngressSink: SMTPMessageSink, @unchecked Sendable {
    private let writer: any RelayMessageWriter
    private let envelope: RelayEnvelope
    /// The client rule the message came under (sender rewriting, header rules).
    private let client: RelayConfiguration.Client
    private let store: any RelayQueueStore
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let wakeDelivery: @Sendable () -> Void

    init(writer: any RelayMessageWriter, envelope: RelayEnvelope, client: RelayConfiguration.Client, store: any RelayQueueStore, logger: Logger,
         now: @escaping @Sendable () -> Date, wakeDelivery: @escaping @Sendable () -> Void) {
        self.writer = writer
        self.envelope = envelope
        self.client = client
        self.store = store
        self.logger = logger
        self.now = now
        self.wakeDelivery = wakeDelivery
    }

    func write(_ chunk: ByteBuffer) throws { try writer.write(chunk) }

    func abort() { writer.abort() }

    func commit() async -> SMTPReply {
        do {
            let message = try await store.commit(writer, envelope: envelope, now: now())
            logger.info("Message queued", metadata: [
                "queue_id": "\(message.id)", "client": "\(envelope.clientName)", "client_ip": "\(envelope.clientAddress)",
                "from": "\(envelope.sender)", "rcpt_count": "\(envelope.recipients.count)", "size": "\(message.size)",
                "route": "\(envelope.route)", "tls": "\(envelope.tlsVersion ?? "none")",
            ])
            wakeDelivery()
            return SMTPReply(250, .init(2, 0, 0), "Ok: queued as \(message.id)")
        } catch {
            logger.error("Could not queue a message", metadata: ["queue_id": "\(writer.id)", "error": "\(error)"])
            writer.abort()
            return SMTPReply(451, .init(4, 3, 0), "Temporary failure storing the message, try again later")
        }
    }
}
