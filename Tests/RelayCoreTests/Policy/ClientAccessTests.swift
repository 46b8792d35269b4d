import Testing
@testable import RelayCore

@Suite("Client matching: address clients, password clients, where AUTH is offered")
struct ClientAccessTests {
    static let clients: [RelayConfiguration.Client] = [
        .init(name: "scanners", route: "r", networks: [RelayNetwork(parsing: "10.20.0.0/24")!], auth: .none),
        .init(name: "erp", route: "r", networks: [RelayNetwork(parsing: "10.30.0.5/32")!, RelayNetwork(parsing: "127.0.0.2/32")!],
              auth: .password, username: "erp", passwordHash: .file("/x")),
        .init(name: "roaming", route: "r", auth: .password, username: "roaming", passwordHash: .file("/y")),
        .init(name: "local", route: "r", networks: [RelayNetwork(parsing: "127.0.0.1/32")!], auth: .none),
    ]

    static func listener(_ address: String, tls: RelayConfiguration.ListenerTLS, plaintext: Bool = false) -> RelayConfiguration.Listener {
        .init(address: RelayEndpoint(parsing: address)!, tls: tls, allowPlaintextAuth: plaintext)
    }

    @Test(arguments: [
        // peer, listener, TLS, allow_plaintext_auth, address client, password candidates, plaintext AUTH, outcome
        ("10.20.0.7", "0.0.0.0:25", RelayConfiguration.ListenerTLS.starttls, false, "scanners", ["roaming"], false, RelayClientAccess.Outcome.accept),
        ("10.30.0.5", "0.0.0.0:25", .starttls, false, nil, ["erp", "roaming"], false, .requireAuthentication),
        ("192.0.2.9", "0.0.0.0:25", .starttls, false, nil, ["roaming"], false, .requireAuthentication),
        ("192.0.2.9", "0.0.0.0:465", .implicit, false, nil, ["roaming"], false, .requireAuthentication),
        // No TLS and no plaintext AUTH: no password client can log in here, so no client is possible.
        ("192.0.2.9", "0.0.0.0:25", .none, false, nil, ["roaming"], false, .refuse),
        // allow_plaintext_auth is honoured on a loopback listener for a loopback peer only.
        ("192.0.2.9", "0.0.0.0:25", .none, true, nil, ["roaming"], false, .refuse),
        ("127.0.0.3", "0.0.0.0:25", .none, true, nil, ["roaming"], false, .refuse),
        ("127.0.0.3", "127.0.0.1:25", .none, true, nil, ["roaming"], true, .requireAuthentication),
        ("127.0.0.2", "127.0.0.1:25", .none, true, nil, ["erp", "roaming"], true, .requireAuthentication),
        ("127.0.0.1", "127.0.0.1:25", .none, false, "local", ["roaming"], false, .accept),
        ("::1", "[::1]:25", .none, true, nil, ["roaming"], true, .requireAuthentication),
    ] as [(String, String, RelayConfiguration.ListenerTLS, Bool, String?, [String], Bool, RelayClientAccess.Outcome)])
    func access(peer: String, listenerAddress: String, tls: RelayConfiguration.ListenerTLS, plaintext: Bool,
                addressClient: String?, candidates: [String], plaintextAuth: Bool, outcome: RelayClientAccess.Outcome) throws {
        let access = RelayClientAccess(
            address: try #require(RelayIPAddress(parsing: peer)), listener: Self.listener(listenerAddress, tls: tls, plaintext: plaintext),
            clients: Self.clients)
        #expect(access.addressClient?.name == addressClient)
        #expect(access.passwordClients.map(\.name) == candidates)
        #expect(access.plaintextAuth == plaintextAuth)
        #expect(access.outcome == outcome)
    }

    @Test func withoutPasswordClientsAnUnknownAddressIsRefused() throws {
        let access = RelayClientAccess(
            address: try #require(RelayIPAddress(parsing: "192.0.2.9")), listener: Self.listener("0.0.0.0:25", tls: .starttls),
            clients: Self.clients.filter { $0.auth == .none })
        #expect(access.outcome == .refuse)
    }

    @Test(arguments: [
        ("erp", "10.30.0.5", "erp"),
        ("erp", "127.0.0.2", "erp"),
        ("erp", "127.0.0.3", nil),          // outside its networks
        ("roaming", "192.0.2.1", "roaming"), // no networks: anywhere
        ("ERP", "10.30.0.5", nil),          // usernames are exact
        ("scanners", "10.20.0.7", nil),     // an address client has no password
        ("nobody", "10.30.0.5", nil),
    ] as [(String, String, String?)])
    func passwordClientByUsername(username: String, peer: String, expected: String?) throws {
        let client = RelayClientAccess.passwordClient(username: username, address: try #require(RelayIPAddress(parsing: peer)), in: Self.clients)
        #expect(client?.name == expected)
    }
}
