import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SMTPCore
import SMTPNIO

/// The SMTP AUTH client submission endpoint (`smtp.office365.com:587`) as a
/// client sees it: STARTTLS, then AUTH LOGIN / XOAUTH2, `530 5.7.57` without
/// AUTH, the Send As check, three connections per mailbox, the size limit.
final class M365SandboxSubmission: SMTPServerDelegate {
    private let configuration: M365SandboxConfiguration
    private let tenant: M365SandboxTenant
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        /// Connections open now; a credential check that finishes after its
        /// connection closed must not take a slot nobody will give back.
        var open: Set<String> = []
        /// Mailbox authenticated on each connection.
        var identities: [String: String] = [:]
        var connectionsPerMailbox: [String: Int] = [:]
    }

    init(tenant: M365SandboxTenant, logger: Logger) {
        self.configuration = tenant.configuration
        self.tenant = tenant
        self.logger = logger
    }

    private static func key(_ connection: SMTPConnectionInfo) -> String { "\(connection.clientAddress)|\(connection.clientPort)" }

    func sessionConfiguration(for connection: SMTPConnectionInfo) -> SMTPServerSession.Configuration {
        var limits = SMTPServerLimits()
        limits.maxMessageSize = configuration.maxMessageSize
        limits.maxRecipients = configuration.maxRecipients
        var session = SMTPServerSession.Configuration(hostname: configuration.hostname, limits: limits)
        session.greetingText = "Microsoft ESMTP MAIL Service ready"
        session.startTLSAvailable = true
        session.authMechanisms = ["LOGIN", "XOAUTH2"]
        session.requireAuthentication = SMTPReply(530, .init(5, 7, 57), "Client was not authenticated to send anonymous mail during MAIL FROM")
        session.clientAddress = connection.clientAddress
        state.withLockedValue { _ = $0.open.insert(Self.key(connection)) }
        session.senderCheck = { [state, tenant] _ in
            // An injected fault for the authenticated mailbox (MAIL needs AUTH first).
            let mailbox = state.withLockedValue { $0.identities[Self.key(connection)] }
            return tenant.faults.take(endpoint: .smtp, stage: .mail, mailbox: mailbox)?.smtpReply
        }
        let unknown = Set(configuration.unknownRecipients.map { $0.lowercased() })
        if !unknown.isEmpty {
            session.recipientCheck = { recipient in
                guard unknown.contains(recipient.address.lowercased()) else { return nil }
                return SMTPReply(550, .init(5, 1, 10), "RESOLVER.ADR.RecipientNotFound; Recipient \(recipient.address) not found by SMTP address lookup")
            }
        }
        return session
    }

    func verifyCredentials(_ exchange: SMTPAuthExchange, connection: SMTPConnectionInfo) async -> (identity: String?, reply: SMTPReply) {
        let failed = SMTPReply(535, .init(5, 7, 3), "Authentication unsuccessful")
        let mailbox: String
        do {
            switch exchange.mechanism {
            case "XOAUTH2":
                guard let response = exchange.responses.first else { return (nil, failed) }
                let credentials = try SASLXOAuth2.decode(response)
                switch tenant.checkToken(credentials.accessToken.unredacted, mailbox: credentials.username, resource: .outlook) {
                case .valid(_, let expiresAt):
                    if let expiresAt, configuration.minimumTokenLifetime > 0,
                       expiresAt.timeIntervalSinceNow < configuration.minimumTokenLifetime {
                        // High Volume Email refuses a token close to expiry (observed wording).
                        return (nil, SMTPReply(501, .init(5, 5, 127), "Authentication unsuccessful. Token will expire soon, please refresh the token"))
                    }
                case .expired, .wrongAudience, .mailboxNotAllowed, .unknown:
                    return (nil, failed)
                }
                mailbox = credentials.username
            case "LOGIN":
                guard exchange.responses.count == 2 else { return (nil, failed) }
                let username = try SASLLogin.decodeUsername(exchange.responses[0])
                let password = try SASLLogin.decodePassword(exchange.responses[1])
                guard let entry = mailboxEntry(username), let expected = entry.password, expected == password.unredacted else {
                    return (nil, failed)
                }
                mailbox = username
            default:
                return (nil, SMTPReply(504, .init(5, 7, 4), "Unrecognized authentication type"))
            }
        } catch {
            return (nil, failed)
        }
        let admitted = state.withLockedValue { state -> Bool in
            let key = mailbox.lowercased()
            guard state.open.contains(Self.key(connection)) else { return false }
            guard state.connectionsPerMailbox[key, default: 0] < configuration.maxConnectionsPerMailbox else { return false }
            state.connectionsPerMailbox[key, default: 0] += 1
            state.identities[Self.key(connection)] = key
            return true
        }
        guard admitted else {
            tenant.recordThrottleRejection()
            return (nil, SMTPReply(432, .init(4, 3, 2), "Concurrent connections limit exceeded"))
        }
        return (mailbox, SMTPReply(235, .init(2, 7, 0), "Authentication successful"))
    }

    func connectionClosed(_ connection: SMTPConnectionInfo) {
        state.withLockedValue { state in
            state.open.remove(Self.key(connection))
            guard let mailbox = state.identities.removeValue(forKey: Self.key(connection)) else { return }
            state.connectionsPerMailbox[mailbox, default: 1] -= 1
            if state.connectionsPerMailbox[mailbox] == 0 { state.connectionsPerMailbox[mailbox] = nil }
        }
    }

    func openMessage(envelope: SMTPSessionEnvelope, connection: SMTPConnectionInfo) throws -> any SMTPMessageSink {
        let mailbox = envelope.authenticatedAs ?? ""
        let key = M365SandboxConnections.key(connection)
        let context = M365SandboxSinkContext(
            mailbox: mailbox, allowedSenders: configuration.allowedSenders(for: mailbox), via: "smtp", connectorName: nil,
            hostname: configuration.hostname,
            gate: { [tenant, configuration] recipients in
                if let fault = tenant.faults.take(endpoint: .smtp, stage: .data, mailbox: mailbox) {
                    return fault.close ? .closeWithoutReply : .refuse(fault.smtpReply ?? SMTPReply(451, .init(4, 3, 0), "Fault"))
                }
                let outcome = await tenant.submit(mailbox: mailbox, recipients: recipients)
                if case .accepted(let time) = outcome { return .store(acceptedAt: time) }
                return .refuse(M365SandboxTenant.smtpReply(refusing: outcome, limit: configuration.messagesPerMinute)!)
            },
            closeConnection: { [tenant] in await tenant.connections.close(key) })
        return try tenant.store.makeSink(envelope: envelope, connection: connection, context: context)
    }

    private func mailboxEntry(_ address: String) -> M365SandboxConfiguration.Mailbox? {
        configuration.mailbox(address)
    }
}
