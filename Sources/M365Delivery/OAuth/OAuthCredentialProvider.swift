import SMTPCore

/// SMTP AUTH XOAUTH2 with app-only tokens: the mailbox as user, the token of
/// the route's scope as bearer.
///
/// After `535 5.7.3` the transport calls ``credentialsRefused(forMailbox:authentication:)``:
/// the refused token is dropped, and one more connection with a new token is tried.
/// - SeeAlso: M365.md, OAuth (XOAUTH2 SASL, scopes)
public struct OAuthCredentialProvider: SMTPCredentialProvider {
    /// SMTP AUTH and High Volume Email.
    public static let outlookScope = "https://outlook.office365.com/.default"

    public let tokens: M365TokenProvider
    public let scope: String

    public init(tokens: M365TokenProvider, scope: String = OAuthCredentialProvider.outlookScope) {
        self.tokens = tokens
        self.scope = scope
    }

    public func authentication(forMailbox mailbox: String) async throws -> SMTPClientAuthentication? {
        let token = try await tokens.token(scope: scope)
        return .xoauth2(username: mailbox, accessToken: token.value)
    }

    public func credentialsRefused(forMailbox mailbox: String, authentication: SMTPClientAuthentication?) async -> Bool {
        guard case .xoauth2(_, let token)? = authentication else { return false }
        await tokens.invalidate(scope: scope, token: token)
        return true
    }
}
