/// The credentials the client authenticates with, and so its SASL mechanism.
///
/// Secrets are ``SASLSecret``s: printing this value shows the mechanism and
/// username only.
public enum SMTPClientAuthentication: Hashable, Sendable, CustomStringConvertible {
    /// `AUTH PLAIN` with an initial response (RFC 4616).
    case plain(username: String, password: SASLSecret)
    /// `AUTH LOGIN`, answering the `Username:` and `Password:` challenges.
    case login(username: String, password: SASLSecret)
    /// `AUTH XOAUTH2` with an OAuth access token (Microsoft 365 app-only SMTP).
    case xoauth2(username: String, accessToken: SASLSecret)

    /// The SASL mechanism name as offered in EHLO.
    public var mechanism: String {
        switch self {
        case .plain: SASLPlain.mechanism
        case .login: SASLLogin.mechanism
        case .xoauth2: SASLXOAuth2.mechanism
        }
    }

    public var username: String {
        switch self {
        case .plain(let username, _), .login(let username, _), .xoauth2(let username, _): username
        }
    }

    public var description: String { "\(mechanism) as \(username)" }
}
