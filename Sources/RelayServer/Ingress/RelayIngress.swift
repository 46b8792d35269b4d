import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RelayCore
import RelayStorage
import SMTPCore
import SMTPNIO

/// Connects the SMTP server to the relay: which client a connection is,
/// what its session allows, and how a message becomes a queued one.
final class RelayIngress: SMTPServerDelegate {
    /// The rules in force, reloadable (see RelayIngressSecurity); read once per use.
    private var configuration: RelayConfiguration { security.configuration }
    private let listener: RelayConfiguration.Listener
    private let store: any RelayQueueStore
    private let logger: Logger
    private let wakeDelivery: @Sendable () -> Void
    private let now: @Sendable () -> Date
    /// State shared by every listener: AUTH failures per address, client rates.
    private let security: RelayIngressSecurity
    /// The live connections of this listener, for AUTH and the session audit line.
    private let connections = NIOLockedValueBox([SMTPConnectionInfo: RelayIngressConnection]())
    /// Metrics and alerts: sessions, AUTH failures, messages queued and refused.
    private let observer: (any RelayEventObserver)?

    init(
        listener: RelayConfiguration.Listener, store: any RelayQueueStore,
        security: RelayIngressSecurity, logger: Logger, now: @escaping @Sendable () -> Date = Date.init,
        observer: (any RelayEventObserver)? = nil, wakeDelivery: @escaping @Sendable () -> Void
    ) {
        self.observer = observer
        self.listener = listener
        self.store = store
        self.security = security
        self.logger = logger
        self.now = now
        self.wakeDelivery = wakeDelivery
        for (username, problem) in security.credentialProblemsToReport() {
            logger.error("A password client cannot log in: its password hash is unusable", metadata: [
                "username": "\(username)", "problem": "\(problem)",
            ])
        }
    }

    static let authenticationRequired = SMTPReply(530, .init(5, 7, 0), "Authentication required")
    /// RFC 4954 §6: 535 5.7.8 for credentials that do not match.
    static let authenticationFailed = SMTPReply(535, .init(5, 7, 8), "Authentication credentials invalid")
    /// RFC 4954 §6: 454 4.7.0 is the temporary AUTH failure; a locked-out
    /// address gets it without its credentials being checked.
    static let lockedOut = SMTPReply(454, .init(4, 7, 0), "Too many authentication failures from your address, try again later")
    static let verifierBusy = SMTPReply(454, .init(4, 7, 0), "Temporary authentication failure, try again later")

    func sessionConfiguration(for connection: SMTPConnectionInfo) -> SMTPServerSession.Configuration {
        // One snapshot for the whole session: a reload applies to the next one.
        let configuration = self.configuration
        let limits = configuration.server.limits
        var smtpLimits = SMTPServerLimits()
        smtpLimits.maxMessageSize = limits.maxMessageSize
        smtpLimits.maxRecipients = limits.maxRecipients
        smtpLimits.maxErrors = limits.maxErrors
        smtpLimits.maxJunkCommands = limits.maxJunkCommands
        smtpLimits.maxCommandLineLength = limits.maxCommandLineLength
        smtpLimits.maxTextLineLength = limits.maxLineLength
        var session = SMTPServerSession.Configuration(hostname: configuration.server.hostname, limits: smtpLimits)
        session.greetingText = "ESMTP m365-relay"
        session.clientAddress = connection.clientAddress
        session.startTLSAvailable = listener.tls == .starttls
        session.requireTLS = listener.requireTLS

        let address = RelayIPAddress(parsing: connection.clientAddress)
        let access = address.map { RelayClientAccess(address: $0, listener: listener, clients: configuration.clients) }
        let state = RelayIngressConnection(address: address, addressClient: access?.addressClient, started: now())
        connections.withLockedValue { $0[connection] = state }

        guard let access, access.outcome != .refuse else {
            // No configuration, however incomplete, makes an open relay.
            logger.notice("Connection refused: no client rule matches", metadata: ["client": "\(connection.clientAddress)"])
            state.update { $0.end = "refused: no client rule matches" }
            session.refusal = SMTPReply(554, .init(5, 7, 1), "Access denied: \(connection.clientAddress) is not an allowed client")
            return session
        }
        if access.authPossible {
            session.authMechanisms = ["PLAIN", "LOGIN"]
            session.allowPlaintextAuth = access.plaintextAuth
        }
        if access.outcome == .requireAuthentication {
            session.requireAuthentication = Self.authenticationRequired
        }
        // The checks read the connection's current client: the address client
        // until AUTH succeeds, the password client after.
        let security = self.security
        let observer = self.observer
        session.senderCheck = { sender in
            guard let client = state.client else { return Self.authenticationRequired }
            // A rewriting client's sender is replaced before it is judged (PRODUCT.md, Sender rules).
            guard RelayAddressPattern.matches(client.rewriteSender ?? sender.address, anyOf: client.allowedSenders) else {
                observer?.observe(.messageRefused(client: client.name, reason: "sender-not-allowed"))
                return SMTPReply(550, .init(5, 7, 1), "Sender address not allowed for this client")
            }
            // Counted at MAIL, once the sender is acceptable: a refused sender costs nothing.
            guard security.takeMessage(client: client) else {
                observer?.observe(.messageRefused(client: client.name, reason: "rate-limited"))
                state.update { $0.rateLimited += 1 }
                return SMTPReply(450, .init(4, 7, 1), "Message rate limit exceeded for this client (\(client.rateLimit!)), try again later")
            }
            return nil
        }
        let relayConfiguration = configuration
        session.recipientCheck = { recipient in
            guard let client = state.client else { return Self.authenticationRequired }
            guard RelayAddressPattern.matches(recipient.address, anyOf: relayConfiguration.recipientPatterns(for: client)) else {
                observer?.observe(.messageRefused(client: client.name, reason: "relay-denied"))
                return SMTPReply(550, .init(5, 7, 1), "Recipient not allowed for this client: relaying denied")
            }
            return nil
        }
        return session
    }

    // MARK: AUTH

    func verifyCredentials(_ exchange: SMTPAuthExchange, connection: SMTPConnectionInfo) async -> (identity: String?, reply: SMTPReply) {
        guard let state = connections.withLockedValue({ $0[connection] }), let address = state.address else {
            return (nil, Self.authenticationFailed)
        }
        if let until = security.lockedOutUntil(address) {
            state.update { $0.authFailures += 1 }
            logger.notice("AUTH refused: address locked out", metadata: [
                "client_ip": "\(connection.clientAddress)", "until": "\(until)",
            ])
            return (nil, Self.lockedOut)
        }
        let credentials: (username: String, password: [UInt8])
        do {
            credentials = try Self.decode(exchange)
        } catch {
            return await failed(state: state, address: address, connection: connection, username: nil, reason: "malformed response",
                                reply: SMTPReply(501, .init(5, 5, 2), "Cannot decode the AUTH response"))
        }
        let client = RelayClientAccess.passwordClient(username: credentials.username, address: address, in: configuration.clients)
        let verification = await security.verify(username: client?.username, password: credentials.password)
        // Checks queue one at a time: parallel guesses from one address that
        // complete after its lockout began learn nothing, right or wrong.
        if security.lockedOutUntil(address) != nil {
            state.update { $0.authFailures += 1 }
            return (nil, Self.lockedOut)
        }
        switch verification {
        case .valid:
            guard let client else { break }
            security.recordSuccess(address)
            state.update {
                $0.authenticated = client
                $0.identity = credentials.username
            }
            return (credentials.username, SMTPReply(235, .init(2, 7, 0), "Authentication successful"))
        case .busy:
            return (nil, Self.verifierBusy)
        case .misconfigured(let problem):
            logger.error("Password client cannot log in: its password hash is unusable", metadata: [
                "client": "\(client?.name ?? "?")", "problem": "\(problem)",
            ])
        case .invalid:
            break
        }
        let reason = client == nil ? "unknown username or not allowed from this address" : "wrong password"
        return await failed(state: state, address: address, connection: connection, username: credentials.username, reason: reason,
                            reply: Self.authenticationFailed)
    }

    /// Counts the failure towards a lockout and waits its delay before the reply.
    private func failed(
        state: RelayIngressConnection, address: RelayIPAddress, connection: SMTPConnectionInfo, username: String?, reason: String,
        reply: SMTPReply
    ) async -> (identity: String?, reply: SMTPReply) {
        let failure = security.recordFailure(address)
        state.update { $0.authFailures += 1 }
        var metadata: Logger.Metadata = [
            "client_ip": "\(connection.clientAddress)", "reason": "\(reason)", "failures": "\(failure.failures)",
        ]
        if let username { metadata["username"] = "\(RelayLogText.escape(username))" }
        observer?.observe(.authFailed(clientAddress: connection.clientAddress, username: username))
        if let until = failure.lockedUntil {
            metadata["locked_until"] = "\(Date(timeIntervalSinceReferenceDate: until))"
            observer?.observe(.clientLockedOut(clientAddress: connection.clientAddress, until: Date(timeIntervalSinceReferenceDate: until)))
            logger.warning("AUTH failed; address locked out", metadata: metadata)
        } else {
            logger.notice("AUTH failed", metadata: metadata)
        }
        // Suspends this task only; the connection waits for the reply, nothing else does.
        try? await Task.sleep(for: .milliseconds(Int(failure.delay * 1000)))
        return (nil, reply)
    }

    struct MalformedAuth: Error {}

    /// The username and password of a PLAIN or LOGIN exchange. PLAIN with an
    /// authorization identity other than the username is refused: a client
    /// acts as itself only.
    static func decode(_ exchange: SMTPAuthExchange) throws -> (username: String, password: [UInt8]) {
        switch exchange.mechanism {
        case "PLAIN":
            guard exchange.responses.count == 1 else { throw MalformedAuth() }
            let credentials = try SASLPlain.decode(exchange.responses[0])
            guard credentials.authorizationIdentity.isEmpty || credentials.authorizationIdentity == credentials.username else {
                throw MalformedAuth()
            }
            return (credentials.username, Array(credentials.password.unredacted.utf8))
        case "LOGIN":
            guard exchange.responses.count == 2 else { throw MalformedAuth() }
            let username = try SASLLogin.decodeUsername(exchange.responses[0])
            let password = try SASLLogin.decodePassword(exchange.responses[1])
            return (username, Array(password.unredacted.utf8))
        default:
            throw MalformedAuth()
        }
    }

    // MARK: Messages

    func openMessage(envelope: SMTPSessionEnvelope, connection: SMTPConnectionInfo) throws -> any SMTPMessageSink {
        let configuration = self.configuration
        guard let state = connections.withLockedValue({ $0[connection] }), let address = state.address else {
            throw RelayStorageError(.io, "no client")
        }
        // The session's own record of AUTH decides, not ours: after STARTTLS
        // the session forgets an earlier AUTH (RFC 3207 §4.2).
        let client: RelayConfiguration.Client?
        if let identity = envelope.authenticatedAs {
            client = RelayClientAccess.passwordClient(username: identity, address: address, in: configuration.clients)
        } else {
            client = state.addressClient
        }
        guard let client,
              RelayAddressPattern.matches(client.rewriteSender ?? envelope.sender.address, anyOf: client.allowedSenders),
              envelope.recipients.allSatisfy({ RelayAddressPattern.matches($0.address, anyOf: configuration.recipientPatterns(for: client)) })
        else {
            throw RelayStorageError(.io, "the envelope was checked against another client rule")
        }
        state.update {
            $0.heloName = envelope.heloName
            if let tls = envelope.tls { $0.tls = tls }
        }
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
        let sink = RelayIngressSink(
            writer: writer, envelope: relayEnvelope, client: client, store: store, logger: logger, now: now, wakeDelivery: wakeDelivery,
            hostname: configuration.server.hostname, observer: observer)
        return RelayIngressCountingSink(sink, connection: state)
    }

    // MARK: Audit

    /// One line per session: who, how protected, what it did, how it ended.
    /// Client-supplied text is escaped; AUTH payloads never reach the state.
    func connectionClosed(_ connection: SMTPConnectionInfo) {
        guard let state = connections.withLockedValue({ $0.removeValue(forKey: connection) }) else { return }
        let facts = state.facts
        let client = facts.authenticated ?? facts.addressClient
        var metadata: Logger.Metadata = [
            "client": "\(client?.name ?? "-")",
            "client_ip": "\(connection.clientAddress)",
            "listener": "\(connection.listener)",
            "tls": "\(facts.tls?.version ?? (connection.implicitTLS ? "implicit" : "none"))",
            "messages_accepted": "\(facts.messagesAccepted)",
            "auth_failures": "\(facts.authFailures)",
            "end": "\(facts.end ?? "closed")",
            "duration_ms": "\(Int(now().timeIntervalSince(facts.started) * 1000))",
        ]
        if let cipher = facts.tls?.cipher { metadata["tls_cipher"] = "\(cipher)" }
        if let identity = facts.identity { metadata["auth_identity"] = "\(RelayLogText.escape(identity))" }
        if let helo = facts.heloName { metadata["helo"] = "\(RelayLogText.escape(helo))" }
        if facts.messagesRefused > 0 { metadata["messages_refused"] = "\(facts.messagesRefused)" }
        if facts.rateLimited > 0 { metadata["rate_limited"] = "\(facts.rateLimited)" }
        logger.info("Session ended", metadata: metadata)
        // At the end, since STARTTLS comes after the start: the protocol the session used.
        observer?.observe(.sessionEnded(client: client?.name ?? "-", tlsVersion: facts.tls?.version))
    }
}

/// What the relay knows about one live connection. Shared between the
/// event loop (checks at MAIL and RCPT) and AUTH tasks, hence the lock.
final class RelayIngressConnection: Sendable {
    struct Facts: Sendable {
        var addressClient: RelayConfiguration.Client?
        var authenticated: RelayConfiguration.Client?
        var identity: String?
        var heloName: String?
        var tls: SMTPTLSInfo?
        var messagesAccepted = 0
        var messagesRefused = 0
        var authFailures = 0
        var rateLimited = 0
        var end: String?
        var started: Date
    }

    let address: RelayIPAddress?
    let addressClient: RelayConfiguration.Client?
    private let box: NIOLockedValueBox<Facts>

    init(address: RelayIPAddress?, addressClient: RelayConfiguration.Client?, started: Date) {
        self.address = address
        self.addressClient = addressClient
        box = NIOLockedValueBox(Facts(addressClient: addressClient, started: started))
    }

    /// The rule the session runs under now: the password client once AUTH succeeded.
    var client: RelayConfiguration.Client? { box.withLockedValue { $0.authenticated ?? $0.addressClient } }
    var facts: Facts { box.withLockedValue { $0 } }
    func update(_ body: (inout Facts) -> Void) { box.withLockedValue { body(&$0) } }
}

/// Counts what the store accepted, for the session's audit line.
final class RelayIngressCountingSink: SMTPMessageSink {
    private let sink: any SMTPMessageSink
    private let connection: RelayIngressConnection

    init(_ sink: any SMTPMessageSink, connection: RelayIngressConnection) {
        self.sink = sink
        self.connection = connection
    }

    func write(_ chunk: ByteBuffer) throws { try sink.write(chunk) }
    func abort() { sink.abort() }

    func commit() async -> SMTPReply {
        let reply = await sink.commit()
        connection.update { facts in
            if reply.code / 100 == 2 { facts.messagesAccepted += 1 } else { facts.messagesRefused += 1 }
        }
        return reply
    }
}
