/// A SASL response that could not be decoded or a credential that cannot be encoded.
///
/// The `description` names the mechanism and the problem only: it never
/// contains the response, the username or the secret.
/// - SeeAlso: RFC 4954 §4 (which replies a server sends for each)
public struct SASLError: Error, Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidBase64
            case cancelled
            case malformedMessage
            case invalidUTF8
            case emptyUsername
            case emptySecret
            case fieldTooLong
            case forbiddenCharacter
            case unsupportedScheme
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The response is not valid base64.
        public static let invalidBase64 = Code(.invalidBase64)
        /// The client answered a challenge with `*`.
        public static let cancelled = Code(.cancelled)
        /// The decoded message does not have the mechanism's structure.
        public static let malformedMessage = Code(.malformedMessage)
        /// A field is not valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// The authentication identity (username) is empty.
        public static let emptyUsername = Code(.emptyUsername)
        /// The password or token is empty.
        public static let emptySecret = Code(.emptySecret)
        /// A field is longer than the mechanism allows (255 octets for PLAIN).
        public static let fieldTooLong = Code(.fieldTooLong)
        /// A credential to encode contains a separator of the mechanism (NUL, `\u{1}`) or a line end.
        public static let forbiddenCharacter = Code(.forbiddenCharacter)
        /// XOAUTH2 `auth=` does not use the `Bearer` scheme.
        public static let unsupportedScheme = Code(.unsupportedScheme)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The mechanism name, e.g. `PLAIN`.
    public var mechanism: String
    /// Which part was wrong, e.g. `authcid`. Never the value.
    public var field: String?

    public init(_ code: Code, mechanism: String, field: String? = nil) {
        self.code = code
        self.mechanism = mechanism
        self.field = field
    }

    public var description: String { "SASL \(mechanism): \(code)" }
    public var debugDescription: String {
        if let field { return "SASL \(mechanism): \(code) (\(field))" }
        return description
    }

    /// The reply a server sends for this error; one reply per error code.
    ///
    /// - SeeAlso: RFC 4954 §4 (`501` for a cancelled exchange or an undecodable
    ///   response), §6 (`5.5.2`, `5.7.0`), RFC 3463 (`5.5.4` invalid arguments)
    public var reply: SMTPReply {
        switch code {
        case .cancelled:
            SMTPReply(501, SMTPEnhancedStatus(5, 7, 0), "Authentication cancelled")
        case .invalidBase64:
            SMTPReply(501, SMTPEnhancedStatus(5, 5, 2), "Cannot decode response")
        default:
            SMTPReply(501, SMTPEnhancedStatus(5, 5, 4), "Malformed authentication response")
        }
    }
}
