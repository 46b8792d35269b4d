/// The LOGIN mechanism: the server asks `Username:` then `Password:`, each
/// answered with one base64 line.
///
/// Never standardised (an expired draft), but what most devices and
/// Microsoft 365 speak. Some clients send the username as an initial
/// response (`AUTH LOGIN <base64 username>`); ``decodeUsername(_:)`` decodes
/// either.
/// - SeeAlso: draft-murchison-sasl-login-00
public enum SASLLogin {
    public static let mechanism = "LOGIN"

    /// The first challenge, base64 of `Username:`.
    public static let usernameChallenge = "VXNlcm5hbWU6"
    /// The second challenge, base64 of `Password:`.
    public static let passwordChallenge = "UGFzc3dvcmQ6"

    /// Same bound as PLAIN's fields; LOGIN itself names none.
    public static let maximumFieldLength = 255

    /// The client's answer to the username challenge.
    public static func usernameResponse(_ username: String) throws(SASLError) -> String {
        if username.isEmpty { throw SASLError(.emptyUsername, mechanism: mechanism) }
        if username.utf8.count > maximumFieldLength { throw SASLError(.fieldTooLong, mechanism: mechanism, field: "username") }
        return SASLBase64.encode(username)
    }

    /// The client's answer to the password challenge.
    public static func passwordResponse(_ password: SASLSecret) throws(SASLError) -> SASLSecret {
        if password.isEmpty { throw SASLError(.emptySecret, mechanism: mechanism) }
        if password.unredacted.utf8.count > maximumFieldLength {
            throw SASLError(.fieldTooLong, mechanism: mechanism, field: "password")
        }
        return SASLSecret(SASLBase64.encode(password.unredacted))
    }

    /// Server side: decodes the username line.
    public static func decodeUsername(_ response: some StringProtocol) throws(SASLError) -> String {
        let username = try decodeField(response, field: "username")
        guard !username.isEmpty else { throw SASLError(.emptyUsername, mechanism: mechanism) }
        return username
    }

    /// Server side: decodes the password line.
    public static func decodePassword(_ response: some StringProtocol) throws(SASLError) -> SASLSecret {
        let password = try decodeField(response, field: "password")
        guard !password.isEmpty else { throw SASLError(.emptySecret, mechanism: mechanism) }
        return SASLSecret(password)
    }

    private static func decodeField(_ response: some StringProtocol, field: String) throws(SASLError) -> String {
        let bytes = try SASLBase64.decode(response, mechanism: mechanism)
        if bytes.count > maximumFieldLength { throw SASLError(.fieldTooLong, mechanism: mechanism, field: field) }
        if bytes.contains(0) { throw SASLError(.forbiddenCharacter, mechanism: mechanism, field: field) }
        return try SASLBase64.utf8(bytes, mechanism: mechanism, field: field)
    }
}
