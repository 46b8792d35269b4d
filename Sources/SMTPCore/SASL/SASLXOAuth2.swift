#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The mailbox and OAuth access token carried by an XOAUTH2 response.
public struct SASLXOAuth2Credentials: Hashable, Sendable, CustomStringConvertible {
    public var username: String
    public var accessToken: SASLSecret

    public init(username: String, accessToken: SASLSecret) {
        self.username = username
        self.accessToken = accessToken
    }

    public var description: String {
        "SASLXOAuth2Credentials(username: \(username), accessToken: <redacted>)"
    }
}

/// The error a server reports in an XOAUTH2 `334` challenge, decoded from its base64 JSON.
///
/// The client must answer that challenge with an empty line, after which the
/// server sends the final failure reply (`535`).
public struct SASLXOAuth2ErrorChallenge: Hashable, Sendable, Codable, CustomStringConvertible {
    public var status: String?
    public var schemes: String?
    public var scope: String?

    public init(status: String? = nil, schemes: String? = nil, scope: String? = nil) {
        self.status = status
        self.schemes = schemes
        self.scope = scope
    }

    public var description: String {
        "XOAUTH2 error status=\(status ?? "-") schemes=\(schemes ?? "-") scope=\(scope ?? "-")"
    }
}

/// The XOAUTH2 mechanism used by Microsoft 365 and Google:
/// base64 of `user=<mailbox>\u{1}auth=Bearer <token>\u{1}\u{1}`.
///
/// - SeeAlso: Microsoft, "Authenticate an IMAP, POP or SMTP connection using OAuth";
///   Google, "XOAUTH2 Mechanism"
public enum SASLXOAuth2 {
    public static let mechanism = "XOAUTH2"

    private static let separator: UInt8 = 0x01

    /// The client's initial response, for `AUTH XOAUTH2 <response>`.
    public static func initialResponse(_ credentials: SASLXOAuth2Credentials) throws(SASLError) -> SASLSecret {
        if credentials.username.isEmpty { throw SASLError(.emptyUsername, mechanism: mechanism) }
        if credentials.accessToken.isEmpty { throw SASLError(.emptySecret, mechanism: mechanism) }
        for (name, value) in [("user", credentials.username), ("auth", credentials.accessToken.unredacted)] {
            if value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
                throw SASLError(.forbiddenCharacter, mechanism: mechanism, field: name)
            }
        }
        if credentials.accessToken.unredacted.contains(" ") {
            throw SASLError(.forbiddenCharacter, mechanism: mechanism, field: "auth")
        }
        let message = "user=\(credentials.username)\u{1}auth=Bearer \(credentials.accessToken.unredacted)\u{1}\u{1}"
        return SASLSecret(SASLBase64.encode(message))
    }

    /// Server side: decodes a client response into the mailbox and token.
    ///
    /// Requires exactly one `user=` and one `auth=Bearer <token>` field and the
    /// closing `\u{1}\u{1}`; other `key=value` fields are ignored.
    public static func decode(_ response: some StringProtocol) throws(SASLError) -> SASLXOAuth2Credentials {
        let bytes = try SASLBase64.decode(response, mechanism: mechanism)
        guard bytes.count >= 2, bytes[bytes.count - 1] == separator, bytes[bytes.count - 2] == separator else {
            throw SASLError(.malformedMessage, mechanism: mechanism, field: "terminator")
        }
        let body = bytes.dropLast(2)
        var user: String?
        var auth: String?
        for field in body.split(separator: separator, omittingEmptySubsequences: false) {
            guard let equals = field.firstIndex(of: UInt8(ascii: "=")) else {
                throw SASLError(.malformedMessage, mechanism: mechanism, field: "key=value")
            }
            let key = try SASLBase64.utf8(field[field.startIndex..<equals], mechanism: mechanism, field: "key")
            let value = try SASLBase64.utf8(field[(equals + 1)...], mechanism: mechanism, field: key)
            switch key {
            case "user":
                guard user == nil else { throw SASLError(.malformedMessage, mechanism: mechanism, field: "user") }
                user = value
            case "auth":
                guard auth == nil else { throw SASLError(.malformedMessage, mechanism: mechanism, field: "auth") }
                auth = value
            default:
                continue
            }
        }
        guard let user else { throw SASLError(.malformedMessage, mechanism: mechanism, field: "user") }
        guard let auth else { throw SASLError(.malformedMessage, mechanism: mechanism, field: "auth") }
        guard !user.isEmpty else { throw SASLError(.emptyUsername, mechanism: mechanism) }
        // auth-value = "Bearer" SP token; the scheme name is case-insensitive (RFC 6750 §2.1, RFC 7235 §2.1).
        guard let space = auth.firstIndex(of: " "),
              auth[..<space].lowercased() == "bearer"
        else { throw SASLError(.unsupportedScheme, mechanism: mechanism) }
        let token = auth[auth.index(after: space)...]
        guard !token.isEmpty else { throw SASLError(.emptySecret, mechanism: mechanism) }
        guard !token.contains(" ") else { throw SASLError(.malformedMessage, mechanism: mechanism, field: "auth") }
        return SASLXOAuth2Credentials(username: user, accessToken: SASLSecret(String(token)))
    }

    /// Server side: the base64 JSON sent in a `334` challenge when a token is refused.
    public static func errorChallenge(_ challenge: SASLXOAuth2ErrorChallenge) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = (try? encoder.encode(challenge)) ?? Data("{}".utf8)
        return SASLBase64.encode(Array(json))
    }

    /// Client side: decodes the `334` error challenge; nil when it is not base64 JSON.
    public static func decodeErrorChallenge(_ challenge: some StringProtocol) -> SASLXOAuth2ErrorChallenge? {
        guard let bytes = try? SASLBase64.decode(challenge, mechanism: mechanism), !bytes.isEmpty else { return nil }
        return try? JSONDecoder().decode(SASLXOAuth2ErrorChallenge.self, from: Data(bytes))
    }
}
