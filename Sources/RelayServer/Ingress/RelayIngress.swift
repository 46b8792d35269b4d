import Foundation
import Logging
import NIOCore
import RelayCore
import RelayStorage
import SMTPCore
import SMTPNIO

/// Connects the SMTP server to the relay: which client a connection is,
/// what its session allows, and how a message becomes a queued one.
final class RelayIngress: SMTPServerDelegate {
    private let configuration: RelayConfiguration
    private let listener: RelayConfiguration.Listener
    private let store: any RelayQueueStore
    private let logger: Logger
    private let wakeDelivery: @Sendable () -> Void
    private let now: @Sendable () -> Date
    /// State shared by every listener: AUTH failures per address, client rates.
    private let security: RelayIngressSecurity

    init(
        configuration: RelayConfiguration, listener: RelayConfiguration.Listener, store: any RelayQueueStore,
        security: RelayIngressSecurity, logger: Logger, now: @escaping @Sendable () -> Date = Date.init,
        wakeDelivery: @escaping @Sendable () -> Void
    ) {
        self.configuration = configuration
        self.listener = listener
        self.store = store
        self.security = security
        self.logger = logger
        self.now = now
        self.wakeDelivery = wakeDelivery
    }

    func sessionConfiguration(for connection: SMTPConnectionInfo) -> SMTPServerSession.Configuration {
        let limits = configuration.server.limits
        var smtpLimits = SMTPServerLimits()
        smtpLimits.maxMessageSize = limits.maxMessageSize
        smtpLimits.maxRecipients = limits.maxRecipients
        smtpLimits.maxErrors = limits.maxErrors
        smtpLimits.maxCommandLineLength = limits.maxCommandLineLength
        smtpLimits.maxTextLineLength = limits.maxLineLength
        var session = SMTPServerSession.Configuration(hostname: configuration.server.hostname, limits: smtpLimits)
        session.greetingText = "ESMTP m365-relay"
        session.clientAddress = connection.clientAddress
        session.startTLSAvailable = listener.tls == .starttls
        session.requireTLS = listener.requireTLS
        guard let client = client(for: connection) else {
            // No configuration, however incomplete, makes an open relay.
            logger.notice("Connection refused: no client rule matches", metadata: ["client": "\(connection.clientAddress)"])
            session.refusal = SMTPReply(554, .init(5, 7, 1), "Access denied: \(connection.clientAddress) is not an allowed client")
            return session
        }
        let senders = client.allowedSenders
        session.senderCheck = { sender in
            RelayAddressPattern.matches(sender.address, anyOf: senders)
                ? nil : SMTPReply(550, .init(5, 7, 1), "Sender address not allowed for this client")
        }
        let recipients = client.allowedRecipients
        session.recipientCheck = { recipient in
            RelayAddressPattern.matches(recipient.address, anyOf: recipients)
                ? nil : SMTPReply(550, .init(5, 7, 1), "Recipient not allowed for this client: relaying denied")
        }
        return session
    }

    private func client(for connection: SMTPConnectionInfo) -> RelayConfiguration.Client? {
        guard let address = RelayIPAddress(parsing: connection.clientAddress) else { return nil }
        return matchClient(address: address, in: configuration.clients)
    }

    func openMessage(envelope: SMTPSessionEnvelope, connection: SMTPConnectionInfo) throws -> any SMTPMessageSink {
        guard let client = client(for: connection) else { throw RelayStorageError(.io, "no client") }
        let arrival = now()
        let id = RelayQueueID.make(millisecondsSinceEpoch: UInt64(arrival.timeIntervalSince1970 * 1000))
        let writer = try store.makeWriter(id: id)
        let received = RelayReceivedHeader.render(
            heloName: envelope.heloName, clientAddress: connection.clientAddress, hostname: configuration.server.hostname,
            extended: envelope.extended, tlsVersion: envelope.tls?.version, authenticated: envelope.authenticatedAs != nil,
            queueID: id, recipient: envelope.recipients.count == 1 ? envelope.recipients[0].address : nil, date: arrival)
        do {
            try writer.write(ByteBuffer(string: received))
        } catch {
            writer.abort()
            throw error
        }
        let relayEnvelope = RelayEnvelope(
            sender: envelope.sender.address, recipients: envelope.recipients.map(\.address), clientName: client.name,
            clientAddress: connection.clientAddress, heloName: envelope.heloName, tlsVersion: envelope.tls?.version,
            authenticatedAs: envelope.authenticatedAs, route: client.route, smtpUTF8: envelope.parameters.smtpUTF8,
            body8Bit: envelope.parameters.body8Bit)
        return RelayIngressSink(
            writer: writer, envelope: relayEnvelope, client: client, store: store, logger: logger, now: now, wakeDelivery: wakeDelivery)
    }
}
