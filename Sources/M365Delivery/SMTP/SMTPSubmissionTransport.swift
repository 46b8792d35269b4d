import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import RelayCore
import RelayStorage
import SMTPCore
import SMTPNIO

/// Supplies the credentials a connection authenticates with, per sending
/// mailbox. A static token or password here; the OAuth provider later.
public protocol SMTPCredentialProvider: Sendable {
    func authentication(forMailbox mailbox: String) async throws -> SMTPClientAuthentication?
}

/// A token or password read once from configuration.
public struct StaticCredentialProvider: SMTPCredentialProvider {
    public enum Kind: Sendable {
        case none
        case xoauth2(token: SASLSecret)
        case login(username: String, password: SASLSecret)
        case plain(username: String, password: SASLSecret)
    }

    public var kind: Kind
    public init(_ kind: Kind) { self.kind = kind }

    public func authentication(forMailbox mailbox: String) async throws -> SMTPClientAuthentication? {
        switch kind {
        case .none: nil
        case .xoauth2(let token): .xoauth2(username: mailbox, accessToken: token)
        case .login(let username, let password): .login(username: username, password: password)
        case .plain(let username, let password): .plain(username: username, password: password)
        }
    }
}

/// Delivers over SMTP: STARTTLS with verification, AUTH, PIPELINING, and
/// connections reused across messages of the same sending identity.
public final class SMTPSubmissionTransport: RelayTransport {
    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        /// Name checked against the server's certificate (defaults to `host`).
        public var serverHostname: String?
        public var tls: SMTPClientSession.TLSPolicy
        public var tlsContext: NIOSSLContext?
        public var heloName: String
        /// The mailbox every message authenticates as; nil: the envelope sender.
        public var mailbox: String?
        /// The mailbox that sends messages with the null sender (delivery status notifications).
        public var bounceMailbox: String?
        /// How long an idle connection is kept for reuse.
        public var idleLifetime: TimeInterval = 20
        public var timeouts = SMTPClientConnection.Timeouts()

        public init(host: String, port: Int, serverHostname: String? = nil, tls: SMTPClientSession.TLSPolicy, tlsContext: NIOSSLContext?, heloName: String, mailbox: String?) {
            self.host = host
            self.port = port
            self.serverHostname = serverHostname
            self.tls = tls
            self.tlsContext = tlsContext
            self.heloName = heloName
            self.mailbox = mailbox
        }
    }

    private struct Idle {
        var connection: SMTPClientConnection
        var capabilities: SMTPCapabilities
        var since: Date
    }

    private let settings: Settings
    private let credentials: any SMTPCredentialProvider
    private let group: any EventLoopGroup
    private let logger: Logger
    private let idle = NIOLockedValueBox([String: [Idle]]())
    private let now: @Sendable () -> Date

    public init(
        settings: Settings, credentials: any SMTPCredentialProvider, group: any EventLoopGroup, logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.now = now
        self.settings = settings
        self.credentials = credentials
        self.group = group
        self.logger = logger
    }

    /// Builds the TLS client context: full verification against the system
    /// roots plus an optional CA file (a private CA, a TLS-inspecting proxy).
    public static func makeTLSContext(caFile: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let caFile {
            configuration.additionalTrustRoots = [.file(caFile)]
        }
        return try NIOSSLContext(configuration: configuration)
    }

    public func deliver(_ message: RelayQueuedMessage, recipients: [String], content: any RelayContentReader) async -> RelayTransportOutcome {
        let identity = settings.mailbox ?? (message.envelope.sender.isEmpty ? settings.bounceMailbox ?? "" : message.envelope.sender)
        var mailboxes: [SMTPMailbox] = []
        var outcome: [RelayTransportOutcome.Recipient] = []
        for address in recipients {
            if let mailbox = try? SMTPMailbox(parsing: address) {
                mailboxes.append(mailbox)
            } else {
                outcome.append(.init(address: address, status: .permanentFailure, reply: "553 5.1.3 Invalid recipient address"))
            }
        }
        let sender: SMTPReversePath
        if message.envelope.sender.isEmpty {
            sender = .null
        } else if let mailbox = try? SMTPMailbox(parsing: message.envelope.sender) {
            sender = .mailbox(mailbox)
        } else {
            return .all(recipients, .permanentFailure, "553 5.1.7 Invalid sender address")
        }
        let envelope = SMTPClientEnvelope(
            sender: sender, recipients: mailboxes, size: message.size,
            requiresSMTPUTF8: message.envelope.smtpUTF8, eightBit: message.envelope.body8Bit)

        // A pooled connection may have been closed by the server meanwhile:
        // one more try on a fresh one, as long as nothing was answered yet.
        for attempt in 0..<2 {
            let lease: Idle
            do {
                lease = try await acquire(identity: identity, fresh: attempt > 0)
            } catch {
                return RelayTransportOutcome(recipients: outcome, summary: "\(error)").adding(mailboxes, .temporaryFailure, describe(error))
            }
            do {
                let result = try await runTransaction(envelope, on: lease, content: content)
                if result.connectionReusable {
                    release(lease.connection, capabilities: lease.capabilities, identity: identity)
                } else {
                    await lease.connection.close()
                }
                for item in result.recipients {
                    let status: RelayTransportOutcome.Status
                    switch item.status {
                    case .delivered: status = .delivered
                    case .temporaryFailure: status = .temporaryFailure
                    case .permanentFailure: status = .permanentFailure
                    }
                    outcome.append(.init(address: item.recipient.address, status: status, reply: item.status.reply.description))
                }
                let summary = result.messageReply?.description ?? result.recipients.first?.status.reply.description ?? "no recipients"
                return RelayTransportOutcome(recipients: outcome, summary: summary)
            } catch let error as StaleConnection where attempt == 0 {
                logger.debug("Pooled connection was closed; reconnecting", metadata: ["error": "\(error.underlying)"])
                await lease.connection.close()
                continue
            } catch {
                await lease.connection.close()
                let reason = describe((error as? StaleConnection)?.underlying ?? error)
                return RelayTransportOutcome(recipients: outcome, summary: reason).adding(mailboxes, .temporaryFailure, reason)
            }
        }
        return RelayTransportOutcome(recipients: outcome, summary: "unreachable").adding(mailboxes, .temporaryFailure, "connection failed")
    }

    public func shutdown() async {
        let all = idle.withLockedValue { state -> [Idle] in
            defer { state = [:] }
            return state.values.flatMap { $0 }
        }
        for entry in all {
            try? await entry.connection.write(ByteBuffer(string: "QUIT\r\n"))
            await entry.connection.close()
        }
    }

    // MARK: Connections

    private struct StaleConnection: Error { var underlying: any Error }

    private func acquire(identity: String, fresh: Bool) async throws -> Idle {
        let current = now()
        let (reusable, expired) = idle.withLockedValue { state -> (Idle?, [Idle]) in
            // Every identity's stale connections go, not only this one's: a relay
            // sending as many mailboxes must not keep a socket open for each.
            var expired: [Idle] = []
            for (key, list) in state {
                let (keep, drop) = list.partitioned { current.timeIntervalSince($0.since) < settings.idleLifetime && $0.connection.isActive }
                expired += drop
                state[key] = keep.isEmpty ? nil : keep
            }
            guard !fresh, var list = state[identity], let last = list.popLast() else { return (nil, expired) }
            state[identity] = list.isEmpty ? nil : list
            return (last, expired)
        }
        for entry in expired { await entry.connection.close() }
        if let reusable { return reusable }
        return try await connect(identity: identity)
    }

    private func release(_ connection: SMTPClientConnection, capabilities: SMTPCapabilities, identity: String) {
        idle.withLockedValue { $0[identity, default: []].append(Idle(connection: connection, capabilities: capabilities, since: now())) }
    }

    private func connect(identity: String) async throws -> Idle {
        let connection = try await SMTPClientConnection.connect(host: settings.host, port: settings.port, group: group, timeouts: settings.timeouts)
        do {
            let authentication = try await credentials.authentication(forMailbox: identity)
            var session = SMTPClientSession(configuration: .init(heloName: settings.heloName, tls: settings.tls, authentication: authentication))
            var action = session.replyReceived(try await connection.nextReply())
            while true {
                switch action {
                case .send(_, let bytes):
                    try await connection.write(bytes)
                    action = session.replyReceived(try await connection.nextReply())
                case .startTLS:
                    guard let context = settings.tlsContext else { throw SMTPClientError(.startTLSNotOffered, detail: "no TLS configuration for this route") }
                    try await connection.startTLS(context: context, serverHostname: settings.serverHostname ?? settings.host)
                    action = session.tlsEstablished()
                case .ready(let capabilities):
                    return Idle(connection: connection, capabilities: capabilities, since: now())
                case .failed(let error):
                    if let reply = error.reply, reply.code != 421 {
                        try? await connection.write(ByteBuffer(string: "QUIT\r\n"))
                    }
                    throw error
                }
            }
        } catch {
            await connection.close()
            throw error
        }
    }

    // MARK: One transaction

    private func runTransaction(_ envelope: SMTPClientEnvelope, on lease: Idle, content: any RelayContentReader) async throws -> SMTPClientTransactionResult {
        let connection = lease.connection
        var transaction = SMTPClientTransaction(capabilities: lease.capabilities, envelope: envelope)
        var action = transaction.start()
        var answered = false
        while true {
            switch action {
            case .send(_, let bytes):
                do {
                    try await connection.write(bytes)
                    let reply = try await connection.nextReply()
                    answered = true
                    action = transaction.replyReceived(reply)
                } catch where !answered {
                    throw StaleConnection(underlying: error)
                }
            case .wait:
                action = transaction.replyReceived(try await connection.nextReply())
            case .sendBody:
                var stuffer = SMTPDotStuffer()
                while let chunk = try content.read(maxLength: 64 * 1024) {
                    var output = connection.channel.allocator.buffer(capacity: chunk.readableBytes + 128)
                    stuffer.stuff(chunk, into: &output)
                    try await connection.write(output)
                }
                var end = connection.channel.allocator.buffer(capacity: 8)
                stuffer.finish(into: &end)
                try await connection.write(end)
                action = transaction.replyReceived(try await connection.nextReply(timeout: connection.timeouts.endOfData))
            case .finished(let result):
                return result
            case .protocolError(let error):
                throw error
            }
        }
    }

    private func describe(_ error: any Error) -> String {
        if let error = error as? SMTPClientError { return error.reply?.description ?? error.description }
        if let error = error as? NIOSSLError { return "TLS error: \(error)" }
        return "\(error)"
    }
}

extension Array {
    /// The elements that satisfy `belongs`, and the rest, each in order.
    fileprivate func partitioned(_ belongs: (Element) -> Bool) -> ([Element], [Element]) {
        var kept: [Element] = [], dropped: [Element] = []
        for element in self {
            if belongs(element) { kept.append(element) } else { dropped.append(element) }
        }
        return (kept, dropped)
    }
}

extension RelayTransportOutcome {
    func adding(_ mailboxes: [SMTPMailbox], _ status: Status, _ reason: String) -> RelayTransportOutcome {
        var copy = self
        copy.recipients += mailboxes.map { Recipient(address: $0.address, status: status, reply: reason) }
        return copy
    }
}
