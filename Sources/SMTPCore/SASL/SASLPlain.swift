/// The identities and password carried by a PLAIN response.
public struct SASLPlainCredentials: Hashable, Sendable, CustomStringConvertible {
    /// The identity to act as; empty when the client did not ask for one (the usual case).
    public var authorizationIdentity: String
    /// The identity whose password this is: the username.
    public var username: String
    public var password: SASLSecret

    public init(authorizationIdentity: String = "", username: String, password: SASLSecret) {
        self.authorizationIdentity = authorizationIdentity
        self.username = username
        self.password = password
    }

    public var description: String {
        "SASLPlainCredentials(username: \(username), password: <redacted>)"
    }
}

/// The PLAIN mechanism: `[authzid] NUL authcid NUL passwd`, base64, in one message.
///
/// - SeeAlso: RFC 4616 §2
public enum SASLPlain {
    public static let mechanism = "PLAIN"

    /// RFC 4616 §2: each of authzid, authcid and passwd is at most 255 octets.
    public static let maximumFieldLength = 255

    /// The client's initial response (base64), for `AUTH PLAIN <response>`.
    public static func initialResponse(_ credentials: SASLPlainCredentials) throws(SASLError) -> SASLSecret {
        let fields = [
            ("authzid", credentials.authorizationIdentity),
            ("authcid", credentials.username),
            ("passwd", credentials.password.unredacted),
        ]
        for (name, value) in fields {
            if value.utf8.contains(0) { throw SASLError(.forbiddenCharacter, mechanism: mechanism, field: name) }
            if value.utf8.count > maximumFieldLength { throw SASLError(.fieldTooLong, mechanism: mechanism, field: name) }
        }
        if credentials.username.isEmpty { throw SASLError(.emptyUsername, mechanism: mechanism) }
        if credentials.password.isEmpty { throw SASLError(.emptySecret, mechanism: mechanism) }
        var bytes: [UInt8] = []
        bytes += credentials.authorizationIdentity.utf8
        bytes.append(0)
        bytes += credentials.username.utf8
        bytes.append(0)
        bytes += credentials.password.unredacted.utf8
        return SASLSecret(SASLBase64.encode(bytes))
    }

    /// Server side: decodes a client response (initial or after an empty `334`).
    ///
    /// Refuses anything but exactly three fields, an empty username or password,
    /// fields over 255 octets and invalid UTF-8, each with its own code.
    public static func decode(_ response: some StringProtocol) throws(SASLError) -> SASLPlainCredentials {
        let bytes = try SASLBase64.decode(response, mechanism: mechanism)
        let fields = bytes.split(separator: 0, omittingEmptySubsequences: false)
        guard fields.count == 3 else { throw SASLError(.malformedMessage, mechanism: mechanism) }
        let names = ["authzid", "authcid", "passwd"]
        for (field, name) in zip(fields, names) where field.count > maximumFieldLength {
            throw SASLError(.fieldTooLong, mechanism: mechanism, field: name)
        }
        let authzid = try SASLBase64.utf8(fields[0], mechanism: mechanism, field: "authzid")
        let authcid = try SASLBase64.utf8(fields[1], mechanism: mechanism, field: "authcid")
        let password = try SASLBase64.utf8(fields[2], mechanism: mechanism, field: "passwd")
        guard !authcid.isEmpty else { throw SASLError(.emptyUsername, mechanism: mechanism) }
        guard !password.isEmpty else { throw SASLError(.emptySecret, mechanism: mechanism) }
        return SASLPlainCredentials(authorizationIdentity: authzid, username: authcid, password: SASLSecret(password))
    }
}
