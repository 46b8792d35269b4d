import NIOCore

/// Sets up a client connection: greeting, EHLO, STARTTLS, EHLO again, AUTH,
/// until the session is ready for ``SMTPClientTransaction``s.
///
/// Events in, actions out: feed every reply to ``replyReceived(_:)``, call
/// ``tlsEstablished()`` once the TLS handshake that ``Action/startTLS``
/// asked for completed, and do what each returned ``Action`` says.
///
/// ```
/// S: 220 greeting            -> EHLO (HELO if EHLO gets 5xx)
/// S: 250 capabilities        -> STARTTLS (policy and offer permitting)
/// S: 220 ready               -> .startTLS ... tlsEstablished() -> EHLO
/// S: 250 capabilities        -> AUTH (if configured)
/// S: 235                     -> .ready(capabilities)
/// ```
///
/// Security rules it enforces:
/// - With ``TLSPolicy-swift.enum/required`` the session fails when STARTTLS is
///   not offered or refused, before any credential or envelope is sent.
/// - Credentials never go over a connection without TLS unless
///   ``Configuration-swift.struct/allowsAuthenticationWithoutTLS`` says so.
/// - Capabilities learnt before TLS are discarded after it (RFC 3207 §4.2).
///
/// One rule is the channel handler's: no byte may follow the `220` to
/// STARTTLS before the handshake. Bytes that did were injected in plaintext
/// (by the server or a man in the middle, the CVE-2011-0411 family) and must
/// not be read as replies after TLS: close the connection. Removing the
/// ``SMTPReplyDecoder``'s handler at that point detects them (its
/// `decodeLast` throws), and a fresh decoder goes above the TLS handler.
/// - SeeAlso: RFC 5321 §3.1, §4.1.1.1, RFC 3207, RFC 4954
public struct SMTPClientSession: Sendable {
    /// Whether and how the connection is protected by TLS.
    public enum TLSPolicy: Hashable, Sendable {
        /// Never STARTTLS, even when offered.
        case none
        /// STARTTLS when offered; go on in plaintext when it is not or it is refused.
        case opportunistic
        /// STARTTLS, or fail. Microsoft 365 submission and connectors need this.
        case required
        /// The connection is already TLS (port 465, RFC 8314): no STARTTLS.
        case implicit
    }

    public struct Configuration: Hashable, Sendable {
        /// The name the client gives in EHLO/HELO: its FQDN or an address literal.
        public var heloName: String
        public var tls: TLSPolicy
        /// Credentials, or nil to send without AUTH (connector, Direct Send).
        public var authentication: SMTPClientAuthentication?
        /// Whether credentials may be sent without TLS. Default false: a
        /// downgraded or misconfigured connection must not leak a password.
        public var allowsAuthenticationWithoutTLS: Bool

        public init(
            heloName: String, tls: TLSPolicy = .required,
            authentication: SMTPClientAuthentication? = nil,
            allowsAuthenticationWithoutTLS: Bool = false
        ) {
            self.heloName = heloName
            self.tls = tls
            self.authentication = authentication
            self.allowsAuthenticationWithoutTLS = allowsAuthenticationWithoutTLS
        }
    }

    public enum Action: Sendable, CustomStringConvertible {
        /// Write these bytes (the encoded `commands`) and flush, then read the next reply.
        case send(commands: [SMTPClientCommand], bytes: ByteBuffer)
        /// Add the TLS client handler now and start the handshake; call
        /// ``SMTPClientSession/tlsEstablished()`` when it completes.
        case startTLS
        /// Setup is done; run transactions with these capabilities.
        case ready(SMTPCapabilities)
        /// Setup failed. If the connection is still in step (the error has a
        /// reply other than `421`), send QUIT; then close.
        case failed(SMTPClientError)

        /// Never shows the bytes: they can hold credentials.
        public var description: String {
            switch self {
            case .send(let commands, let bytes):
                "send(\(commands.map(\.description).joined(separator: ", ")); \(bytes.readableBytes) bytes)"
            case .startTLS: "startTLS"
            case .ready(let capabilities): "ready(\(capabilities))"
            case .failed(let error): "failed(\(error))"
            }
        }
    }

    private enum AuthenticationStep: Hashable, Sendable {
        /// PLAIN or XOAUTH2: the initial response went with AUTH.
        case sentInitialResponse
        /// LOGIN: how many `334` challenges were answered.
        case login(answered: Int)
        /// XOAUTH2: the server sent an error challenge, answered with an empty line.
        case xoauth2Challenged(SASLXOAuth2ErrorChallenge?)
    }

    private enum State: Hashable, Sendable {
        case awaitingGreeting
        case awaitingEHLO
        case awaitingHELO
        case awaitingSTARTTLS
        case awaitingHandshake
        case authenticating(AuthenticationStep)
        case ready
        case failed
    }

    public let configuration: Configuration
    private var state: State = .awaitingGreeting
    /// Whether the connection is protected by TLS (implicit, or after STARTTLS).
    public private(set) var isSecure: Bool
    /// The capabilities of the latest EHLO (after TLS, the post-TLS ones).
    public private(set) var capabilities: SMTPCapabilities?

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.isSecure = configuration.tls == .implicit
    }

    public var isReady: Bool { state == .ready }

    /// Feed every reply in order, the greeting first.
    public mutating func replyReceived(_ reply: SMTPReply) -> Action {
        switch state {
        case .awaitingGreeting:
            guard reply.code == 220 else { return fail(.greetingRejected, reply) }
            return sendEHLO()

        case .awaitingEHLO:
            if reply.isPositiveCompletion {
                capabilities = SMTPCapabilities(ehloReply: reply)
                return afterGreetingExchange()
            }
            // RFC 5321 §3.2: a server that does not know EHLO answers 5xx; fall back to HELO.
            if reply.isPermanentFailure {
                state = .awaitingHELO
                return send([.helo(configuration.heloName)])
            }
            return fail(.ehloRejected, reply)

        case .awaitingHELO:
            guard reply.isPositiveCompletion else { return fail(.heloRejected, reply) }
            capabilities = SMTPCapabilities()
            return afterGreetingExchange()

        case .awaitingSTARTTLS:
            if reply.code == 220 {
                state = .awaitingHandshake
                return .startTLS
            }
            guard configuration.tls == .opportunistic, !reply.isIntermediate, reply.code != 421 else {
                return fail(.startTLSRejected, reply)
            }
            return authenticate()

        case .awaitingHandshake:
            return fail(.unexpectedReply, reply, detail: "reply while waiting for the TLS handshake")

        case .authenticating(let step):
            return authenticationReply(reply, step: step)

        case .ready, .failed:
            return fail(.unexpectedReply, reply, detail: "no reply was due")
        }
    }

    /// The TLS handshake that ``Action/startTLS`` asked for completed.
    public mutating func tlsEstablished() -> Action {
        guard state == .awaitingHandshake else {
            return fail(.unexpectedEvent, nil, detail: "TLS established without STARTTLS")
        }
        isSecure = true
        // RFC 3207 §4.2: forget everything learnt in plaintext and ask again.
        capabilities = nil
        return sendEHLO()
    }

    // MARK: - Steps

    private mutating func sendEHLO() -> Action {
        state = .awaitingEHLO
        return send([.ehlo(configuration.heloName)])
    }

    private mutating func afterGreetingExchange() -> Action {
        let offered = capabilities?.startTLS ?? false
        if !isSecure {
            switch configuration.tls {
            case .required:
                guard offered else { return fail(.startTLSNotOffered, nil) }
                state = .awaitingSTARTTLS
                return send([.startTLS])
            case .opportunistic where offered:
                state = .awaitingSTARTTLS
                return send([.startTLS])
            case .opportunistic, .none, .implicit:
                break
            }
        }
        return authenticate()
    }

    private mutating func authenticate() -> Action {
        guard let authentication = configuration.authentication else {
            state = .ready
            return .ready(capabilities ?? SMTPCapabilities())
        }
        guard isSecure || configuration.allowsAuthenticationWithoutTLS else {
            return fail(.authenticationRequiresTLS, nil)
        }
        let capabilities = capabilities ?? SMTPCapabilities()
        guard capabilities.supportsAuthentication(authentication.mechanism) else {
            let offered = capabilities.authenticationMechanisms.joined(separator: " ")
            return fail(
                .authenticationMechanismNotOffered, nil,
                detail: "wanted \(authentication.mechanism), offered [\(offered)]")
        }
        do throws(SASLError) {
            switch authentication {
            case .plain(let username, let password):
                let response = try SASLPlain.initialResponse(
                    SASLPlainCredentials(username: username, password: password))
                state = .authenticating(.sentInitialResponse)
                return send([.auth(mechanism: SASLPlain.mechanism, initialResponse: response)])
            case .login:
                state = .authenticating(.login(answered: 0))
                return send([.auth(mechanism: SASLLogin.mechanism)])
            case .xoauth2(let username, let token):
                let response = try SASLXOAuth2.initialResponse(
                    SASLXOAuth2Credentials(username: username, accessToken: token))
                state = .authenticating(.sentInitialResponse)
                return send([.auth(mechanism: SASLXOAuth2.mechanism, initialResponse: response)])
            }
        } catch {
            return fail(.invalidCredentials, nil, detail: error.debugDescription)
        }
    }

    private mutating func authenticationReply(_ reply: SMTPReply, step: AuthenticationStep) -> Action {
        if reply.isPositiveCompletion {
            state = .ready
            return .ready(capabilities ?? SMTPCapabilities())
        }
        if reply.isTransientFailure || reply.isPermanentFailure {
            var detail: String?
            if case .xoauth2Challenged(let challenge?) = step { detail = challenge.description }
            return fail(.authenticationFailed, reply, detail: detail)
        }
        guard reply.code == 334, let authentication = configuration.authentication else {
            return fail(.unexpectedReply, reply, detail: "to AUTH")
        }
        switch (authentication, step) {
        case (.login(let username, _), .login(answered: 0)):
            do throws(SASLError) {
                let response = try SASLLogin.usernameResponse(username)
                state = .authenticating(.login(answered: 1))
                return send([.authResponse(SASLSecret(response))])
            } catch {
                return fail(.invalidCredentials, nil, detail: error.debugDescription)
            }
        case (.login(_, let password), .login(answered: 1)):
            do throws(SASLError) {
                let response = try SASLLogin.passwordResponse(password)
                state = .authenticating(.login(answered: 2))
                return send([.authResponse(response)])
            } catch {
                return fail(.invalidCredentials, nil, detail: error.debugDescription)
            }
        case (.xoauth2, .sentInitialResponse):
            // The token was refused; the challenge is base64 JSON. Answer with an
            // empty line to receive the final 535 (Google and Microsoft document this).
            let challenge = SASLXOAuth2.decodeErrorChallenge(reply.lines.first ?? "")
            state = .authenticating(.xoauth2Challenged(challenge))
            return send([.authResponse(SASLSecret(""))])
        default:
            return fail(.unexpectedReply, reply, detail: "334 not expected at this step of \(authentication.mechanism)")
        }
    }

    // MARK: - Helpers

    private mutating func send(_ commands: [SMTPClientCommand]) -> Action {
        do {
            return .send(commands: commands, bytes: try SMTPClientCommand.encode(commands))
        } catch {
            state = .failed
            return .failed(error)
        }
    }

    private mutating func fail(_ code: SMTPClientError.Code, _ reply: SMTPReply?, detail: String? = nil) -> Action {
        state = .failed
        return .failed(SMTPClientError(code, reply: reply, detail: detail))
    }
}
