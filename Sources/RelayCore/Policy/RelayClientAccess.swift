/// What a connection from one address to one listener may do, before any
/// command: which client it is by address, which password clients it could
/// still authenticate as, and whether AUTH is offered in plaintext.
///
/// - An `auth: none` client matches by source address (the first in file
///   order whose networks contain it); the connection is that client.
/// - An `auth: password` client is a candidate when it has no networks or
///   one contains the address; it matches later, by AUTH username.
/// - AUTH is offered under TLS; in plaintext only when the listener sets
///   `allow_plaintext_auth` *and* listens on a loopback address *and* the
///   peer is loopback, so that a password never crosses a network in clear.
/// - With no client possible (no address match, and no password client that
///   could authenticate here): refuse at connect with `554 5.7.1`.
/// - SeeAlso: PRODUCT.md, Client matching; RFC 4954 §4 (AUTH needs a protected channel)
public struct RelayClientAccess: Sendable, Hashable {
    public enum Outcome: Sendable, Hashable {
        /// `554 5.7.1` instead of the greeting.
        case refuse
        /// The greeting; MAIL needs AUTH first (`530 5.7.0`).
        case requireAuthentication
        /// The greeting; the connection is ``addressClient`` until it authenticates.
        case accept
    }

    /// The `auth: none` client the address belongs to.
    public var addressClient: RelayConfiguration.Client?
    /// Password clients allowed to authenticate from this address.
    public var passwordClients: [RelayConfiguration.Client]
    /// AUTH is offered before TLS.
    public var plaintextAuth: Bool
    /// AUTH can be offered at all on this listener (TLS or plaintext).
    public var authPossible: Bool

    public init(address: RelayIPAddress, listener: RelayConfiguration.Listener, clients: [RelayConfiguration.Client]) {
        addressClient = matchClient(address: address, in: clients)
        passwordClients = clients.filter { $0.auth == .password && Self.allows($0, address) }
        let listenerLoopback = RelayIPAddress(parsing: listener.address.host)?.isLoopback == true
            || listener.address.host.lowercased() == "localhost"
        plaintextAuth = listener.allowPlaintextAuth && listenerLoopback && address.isLoopback
        authPossible = !passwordClients.isEmpty && (listener.tls != .none || plaintextAuth)
    }

    public var outcome: Outcome {
        if addressClient != nil { return .accept }
        return authPossible ? .requireAuthentication : .refuse
    }

    /// The password client whose username is `username`, if it may log in from `address`.
    /// Usernames compare exactly: validation keeps them unique as written.
    public static func passwordClient(
        username: String, address: RelayIPAddress, in clients: [RelayConfiguration.Client]
    ) -> RelayConfiguration.Client? {
        clients.first { $0.auth == .password && $0.username == username && allows($0, address) }
    }

    static func allows(_ client: RelayConfiguration.Client, _ address: RelayIPAddress) -> Bool {
        client.networks.isEmpty || client.networks.contains { $0.contains(address) }
    }
}
