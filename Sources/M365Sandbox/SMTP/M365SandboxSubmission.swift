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
    private let store: M365SandboxMailStore
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

    init(configuration: M365SandboxConfiguration, store: M365SandboxMailStore, logger: Logger) {
        self.configuration = configuration
        self.store = store
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
                guard tokenIsValid(credentials.accessToken.unredacted, for: credentials.username) else { return (nil, failed) }
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
        let allowed = Set(([mailbox] + (mailboxEntry(mailbox)?.sendAs ?? [])).map { $0.lowercased() })
        return try store.makeSink(envelope: envelope, connection: connection, mailbox: mailbox, allowedSenders: allowed, hostname: configuration.hostname)
    }

    private func mailboxEntry(_ address: String) -> M365SandboxConfiguration.Mailbox? {
        configuration.mailboxes.first { $0.address.lowercased() == address.lowercased() }
    }

    private func tokenIsValid(_ token: String, for mailbox: String) -> Bool {
        if let any = configuration.anyMailboxToken, token == any { return true }
        return mailboxEntry(mailbox)?.tokens.contains(token) == true
    }
}
