/// Why the client side of an SMTP conversation could not go on.
///
/// Framing errors (``Code-swift.struct/lineTooLong``, ``Code-swift.struct/malformedReply``...)
/// and ``Code-swift.struct/unexpectedReply`` are connection-scoped: the peer
/// cannot be trusted to be in step any more, so close the connection. Session
/// errors that carry a ``reply`` (greeting, EHLO, STARTTLS, AUTH refused) say
/// what the server answered: classify that reply to decide between retrying
/// and pausing the route.
///
/// The `description` holds the code and the reply's numeric codes only, never
/// reply text (it can name mailboxes) nor credentials; `debugDescription`
/// adds the reply text and detail.
public struct SMTPClientError: Error, Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case lineTooLong
            case malformedReply
            case bareLineFeed
            case inconsistentReplyCode
            case tooManyReplyLines
            case truncatedReply
            case invalidArgument
            case unexpectedReply
            case unexpectedEvent
            case greetingRejected
            case ehloRejected
            case heloRejected
            case startTLSNotOffered
            case startTLSRejected
            case authenticationRequiresTLS
            case authenticationMechanismNotOffered
            case invalidCredentials
            case authenticationFailed
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        // Reply framing (connection-scoped).
        /// A reply line is longer than ``SMTPReplyDecoder/Configuration-swift.struct/maximumLineLength``.
        public static let lineTooLong = Code(.lineTooLong)
        /// A reply line does not start with a valid three-digit code and separator, or holds control characters.
        public static let malformedReply = Code(.malformedReply)
        /// A reply line ends in a bare LF while the decoder is configured to refuse them.
        public static let bareLineFeed = Code(.bareLineFeed)
        /// The lines of one multi-line reply carry different codes.
        public static let inconsistentReplyCode = Code(.inconsistentReplyCode)
        /// A multi-line reply has more lines than ``SMTPReplyDecoder/Configuration-swift.struct/maximumLineCount``.
        public static let tooManyReplyLines = Code(.tooManyReplyLines)
        /// The connection closed in the middle of a reply, or the decoder was
        /// removed with bytes it had not turned into replies.
        public static let truncatedReply = Code(.truncatedReply)

        // Commands.
        /// A command argument contains CR, LF or another character that could end or split the command line.
        public static let invalidArgument = Code(.invalidArgument)

        // Sequencing (connection-scoped).
        /// A reply arrived that this point of the conversation does not allow (e.g. `250` to `DATA`).
        public static let unexpectedReply = Code(.unexpectedReply)
        /// An event (such as `tlsEstablished()`) arrived when it could not happen.
        public static let unexpectedEvent = Code(.unexpectedEvent)

        // Session setup.
        /// The greeting was not `220` (typically `554` or `421`).
        public static let greetingRejected = Code(.greetingRejected)
        /// EHLO was refused with a reply that does not invite a HELO fallback (4xx).
        public static let ehloRejected = Code(.ehloRejected)
        /// HELO, the fallback after a `5xx` EHLO, was refused.
        public static let heloRejected = Code(.heloRejected)
        /// TLS is required but the server does not offer STARTTLS.
        public static let startTLSNotOffered = Code(.startTLSNotOffered)
        /// TLS is required and the server refused STARTTLS.
        public static let startTLSRejected = Code(.startTLSRejected)
        /// Credentials would go over a connection without TLS.
        public static let authenticationRequiresTLS = Code(.authenticationRequiresTLS)
        /// The server does not offer the configured SASL mechanism.
        public static let authenticationMechanismNotOffered = Code(.authenticationMechanismNotOffered)
        /// The configured credentials cannot be encoded (empty, or holding a separator character).
        public static let invalidCredentials = Code(.invalidCredentials)
        /// The server refused the credentials; see ``SMTPClientError/reply``.
        public static let authenticationFailed = Code(.authenticationFailed)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The server reply behind the error, when there is one.
    public var reply: SMTPReply?
    /// Detail for debugging; may hold server text, never credentials.
    public var detail: String?

    public init(_ code: Code, reply: SMTPReply? = nil, detail: String? = nil) {
        self.code = code
        self.reply = reply
        self.detail = detail
    }

    public var description: String {
        guard let reply else { return "SMTP client error: \(code)" }
        if let enhanced = reply.enhanced { return "SMTP client error: \(code) (\(reply.code) \(enhanced))" }
        return "SMTP client error: \(code) (\(reply.code))"
    }

    public var debugDescription: String {
        var text = "SMTP client error: \(code)"
        if let reply { text += ", reply: \(reply)" }
        if let detail { text += ", \(detail)" }
        return text
    }
}
