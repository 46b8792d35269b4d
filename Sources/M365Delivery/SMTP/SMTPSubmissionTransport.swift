import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayCore
import RelayStorage
import SMTPCore
import SMTPNIO

/// Supplies the credentials a connection authenticates with, per sending
/// mailbox. A static token or password here; the OAuth provider later.
public protocol SMTPCredentialProvider: Sendable {
    func authentication(forMailbox mailbox: String) async throws -> SMTPClientAuthentication?
    /// The server refused `authentication` (`535`): drop it if it can be
    /// renewed, and return whether one more try with new credentials makes sense.
    func credentialsRefused(forMailbox mailbox: String, authentication: SMTPClientAuthentication?) async -> Bool
}

extension SMTPCredentialProvider {
    /// Fixed credentials: trying again with the same ones cannot help.
    public func credentialsRefused(forMailbox mailbox: String, authentication: SMTPClientAuthentication?) async -> Bool { false }
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
        /// Direct Send: the tenant's accepted domains. Recipients in any other
        /// domain fail before a connection is opened (Microsoft would refuse
        /// them, or worse, accept and drop them). Nil: any recipient (SMTP AUTH, connector).
        public var acceptedDomains: [String]?

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
    /// roots plus an optional CA file (a private CA, a TLS-inspecting proxy),
    /// and, for a certificate-based inbound connector, the client certificate
    /// chain and key presented in the handshake (PEM files).
    public static func makeTLSContext(caFile: String?, clientCertificateFile: String? = nil, clientKeyFile: String? = nil) throws -> NIOSSLContext {
        var identity: (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey)?
        if let clientCertificateFile, let clientKeyFile {
            identity = (try NIOSSLCertificate.fromPEMFile(clientCertificateFile), try NIOSSLPrivateKey(file: clientKeyFile, format: .pem))
        }
        return try makeTLSContext(caFile: caFile, clientIdentity: identity)
    }

    /// As ``makeTLSContext(caFile:clientCertificateFile:clientKeyFile:)``, with the
    /// client certificate chain and key as PEM text.
    public static func makeTLSContext(caFile: String?, clientCertificatePEM: String, clientKeyPEM: SASLSecret) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(clientCertificatePEM.utf8))
        let key = try NIOSSLPrivateKey(bytes: Array(clientKeyPEM.unredacted.utf8), format: .pem)
        return try makeTLSContext(caFile: caFile, clientIdentity: (chain, key))
    }

    private static func makeTLSContext(caFile: String?, clientIdentity: (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey)?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let caFile {
            configuration.additionalTrustRoots = [.file(caFile)]
        }
        if let clientIdentity {
            configuration.certificateChain = clientIdentity.chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(clientIdentity.key)
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// The tenant MX host Microsoft derives from a domain: `contoso.com` ->
    /// `contoso-com.mail.protection.outlook.com` (dots become hyphens, hyphens stay).
    ///
    /// Domains added since 2024 may use `*.mx.microsoft` instead: the admin
    /// center (Settings > Domains) has the authoritative value.
    /// - SeeAlso: M365.md, Three ways in
    public static func tenantMXHost(forDomain domain: String) -> String {
        var name = domain.lowercased()
        while name.hasSuffix(".") { name.removeLast() }
        return name.replacingOccurrences(of: ".", with: "-") + ".mail.protection.outlook.com"
    }

    /// Splits recipients into those Direct Send can reach (an accepted domain)
    /// and the others, each with the reason it is refused.
    public static func directSendRefusals(_ recipients: [String], acceptedDomains: [String]) -> (accepted: [String], refused: [(address: String, reason: String)]) {
        let domains = Set(acceptedDomains.map { $0.lowercased() })
        var accepted: [String] = []
        var refused: [(String, String)] = []
        let reason = "550 5.7.64 Direct Send delivers only to the tenant's accepted domains (\(acceptedDomains.joined(separator: ", "))); use a connector or SMTP AUTH route for external recipients"
        for address in recipients {
            let domain = address.split(separator: "@").last.map { $0.lowercased() } ?? ""
            if address.contains("@"), domains.contains(domain) {
                accepted.append(address)
            } else {
                refused.append((address, reason))
            }
        }
        return (accepted, refused)
    }

    /// Microsoft's ids in an end-of-data `250`: `<message-id> [Hostname=...]`
    /// from `2.0.0 OK <...> [Hostname=...]`, else the reply text.
    public static func upstreamID(fromEndOfData reply: SMTPReply) -> String? {
        guard reply.isPositiveCompletion else { return nil }
        let text = reply.text.trimmingCharacters(in: .whitespaces)
        if let start = text.firstIndex(of: "<") { return String(text[start...]) }
        for prefix in ["OK ", "Queued mail for delivery ", "Ok "] where text.hasPrefix(prefix) {
            let rest = text.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces)
            return rest.isEmpty ? nil : rest
        }
        return text.isEmpty ? nil : text
    }

    public func deliver(_ message: RelayQueuedMessage, recipients: [String], content: any RelayContentReader) async -> RelayTransportOutcome {
        let identity = settings.mailbox ?? (message.envelope.sender.isEmpty ? settings.bounceMailbox ?? "" : message.envelope.sender)
        let sendingMailbox = identity.isEmpty ? nil : identity
        var mailboxes: [SMTPMailbox] = []
        var outcome: [RelayTransportOutcome.Recipient] = []
        var candidates = recipients
        if let acceptedDomains = settings.acceptedDomains {
            // Decided before any connection: nothing is sent for an external recipient.
            let split = Self.directSendRefusals(recipients, acceptedDomains: acceptedDomains)
            candidates = split.accepted
            outcome += split.refused.map { .init(address: $0.address, status: .permanentFailure, reply: $0.reason) }
        }
        for address in candidates {
            if let mailbox = try? SMTPMailbox(parsing: address) {
                mailboxes.append(mailbox)
            } else {
                outcome.append(.init(address: address, status: .permanentFailure, reply: "553 5.1.3 Invalid recipient address"))
            }
        }
        if mailboxes.isEmpty {
            return RelayTransportOutcome(recipients: outcome, summary: outcome.first?.reply ?? "no recipients", sendingMailbox: sendingMailbox, submitted: false)
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

        func failed(_ reason: String, reply: M365Reply?, submitted: Bool = false, refreshed: Bool) -> RelayTransportOutcome {
            RelayTransportOutcome(recipients: outcome, summary: reason, reply: reply, sendingMailbox: sendingMailbox, submitted: submitted, credentialsRefreshed: refreshed)
                .adding(mailboxes, .temporaryFailure, reason)
        }

        // A pooled connection may have been closed by the server meanwhile:
        // one more try on a fresh one, as long as nothing was answered yet.
        // A refused token: one more try on a fresh connection with a new token.
        var retriedStale = false
        var refreshed = false
        while true {
            let lease: Idle
            do {
                lease = try await acquire(identity: identity, fresh: retriedStale)
            } catch let error as AuthenticationRefused {
                if !refreshed, await credentials.credentialsRefused(forMailbox: identity, authentication: error.authentication) {
                    logger.notice("Authentication refused; retrying once with new credentials", metadata: ["reply": "\(error.reply.code)"])
                    refreshed = true
                    continue
                }
                return failed(error.reply.description, reply: .smtp(error.reply), refreshed: refreshed)
            } catch {
                let (reason, reply) = describeFailure(error)
                return failed(reason, reply: reply, refreshed: refreshed)
            }
            var progress = TransactionProgress()
            do {
                let result = try await runTransaction(envelope, on: lease, content: content, progress: &progress)
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
                // The reply that ended the attempt: end of data, else a refused MAIL, else a refused RCPT.
                let decisive = result.messageReply
                    ?? progress.mailReply.flatMap { $0.isPositiveCompletion ? nil : $0 }
                    ?? result.recipients.first(where: { !$0.status.reply.isPositiveCompletion })?.status.reply
                let summary = result.messageReply?.description ?? decisive?.description ?? result.recipients.first?.status.reply.description ?? "no recipients"
                return RelayTransportOutcome(
                    recipients: outcome, summary: summary, reply: decisive.map(M365Reply.smtp), sendingMailbox: sendingMailbox,
                    submitted: progress.mailReply?.isPositiveCompletion ?? false,
                    upstreamID: result.messageReply.flatMap(Self.upstreamID(fromEndOfData:)), credentialsRefreshed: refreshed)
            } catch let error as StaleConnection where !retriedStale {
                logger.debug("Pooled connection was closed; reconnecting", metadata: ["error": "\(error.underlying)"])
                await lease.connection.close()
                retriedStale = true
                continue
            } catch {
                await lease.connection.close()
                let underlying = (error as? StaleConnection)?.underlying ?? error
                let (reason, reply) = describeFailure(underlying)
                // Past MAIL FROM the message may have reached Microsoft (a reset after the final dot).
                return failed(reason, reply: reply, submitted: progress.mailReply?.isPositiveCompletion ?? false, refreshed: refreshed)
            }
        }
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

    /// AUTH was refused; carries what was tried so that the provider can drop it.
    private struct AuthenticationRefused: Error {
        var reply: SMTPReply
        var authentication: SMTPClientAuthentication?
    }

    /// What one transaction got to, for the outcome even when it fails midway.
    private struct TransactionProgress {
        /// The reply to MAIL FROM, once read.
        var mailReply: SMTPReply?
    }

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
        let since = now()
        idle.withLockedValue { $0[identity, default: []].append(Idle(connection: connection, capabilities: capabilities, since: since)) }
        // An idle connection goes when its lifetime ends, not at the mailbox's next
        // burst: a new connection opened while the old one is still closing would
        // exceed Microsoft's count of three per mailbox (432 4.3.2).
        connection.channel.eventLoop.scheduleTask(in: .milliseconds(Int64(settings.idleLifetime * 1000))) { [weak self] in
            self?.retire(connection, since: since, identity: identity)
        }
    }

    /// Quits an idle connection that nobody took during its lifetime.
    private func retire(_ connection: SMTPClientConnection, since: Date, identity: String) {
        let removed = idle.withLockedValue { state -> Bool in
            guard var list = state[identity],
                  let index = list.firstIndex(where: { $0.connection === connection && $0.since == since }) else { return false }
            list.remove(at: index)
            state[identity] = list.isEmpty ? nil : list
            return true
        }
        guard removed else { return }
        connection.channel.writeAndFlush(ByteBuffer(string: "QUIT\r\n")).whenComplete { _ in
            connection.channel.close(promise: nil)
        }
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
                    if error.code == .authenticationFailed, let reply = error.reply,
                       reply.code == 535 || reply.enhanced == SMTPEnhancedStatus(5, 5, 127) {
                        throw AuthenticationRefused(reply: reply, authentication: authentication)
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

    private func runTransaction(
        _ envelope: SMTPClientEnvelope, on lease: Idle, content: any RelayContentReader, progress: inout TransactionProgress
    ) async throws -> SMTPClientTransactionResult {
        let connection = lease.connection
        var transaction = SMTPClientTransaction(capabilities: lease.capabilities, envelope: envelope)
        var action = transaction.start()
        var answered = false
        // Replies come in command order, so the first after a write that starts with MAIL answers MAIL.
        var awaitingMailReply = false
        func received(_ reply: SMTPReply) {
            if awaitingMailReply {
                progress.mailReply = reply
                awaitingMailReply = false
            }
        }
        while true {
            switch action {
            case .send(let commands, let bytes):
                if case .mail? = commands.first { awaitingMailReply = true }
                do {
                    try await connection.write(bytes)
                    let reply = try await connection.nextReply()
                    answered = true
                    received(reply)
                    action = transaction.replyReceived(reply)
                } catch where !answered {
                    throw StaleConnection(underlying: error)
                }
            case .wait:
                let reply = try await connection.nextReply()
                received(reply)
                action = transaction.replyReceived(reply)
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

    /// The reason for the trace, and what Microsoft answered (or how the connection failed).
    private func describeFailure(_ error: any Error) -> (String, M365Reply?) {
        if let error = error as? M365TokenError {
            return (error.description, .tokenRefused(error.failure))
        }
        if let error = error as? SMTPClientError, let reply = error.reply {
            return (reply.description, .smtp(reply))
        }
        let failure = M365ConnectionFailure(classifying: error)
        let reason: String
        if let error = error as? SMTPClientError {
            reason = error.description
        } else if let error = error as? NIOSSLError {
            reason = "TLS error: \(error)"
        } else if let error = error as? NIOConnectionError {
            // NIO's description lists every address tried with its internals; one line says it.
            let cause = error.connectionErrors.first.map { attempt in
                (attempt.error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(attempt.error)"
            } ?? "the name did not resolve"
            reason = "cannot connect to \(settings.host):\(settings.port): \(cause)"
        } else {
            reason = "\(error)"
        }
        return (failure.map { "\(reason) (\($0.rawValue))" } ?? reason, failure.map(M365Reply.connectionFailed))
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
