import Testing
@testable import RelayCore

@Suite("IP addresses and networks")
struct NetworkTests {
    @Test(arguments: [
        // text, family, canonical form
        ("192.0.2.1", RelayIPAddress.Family.v4, "192.0.2.1"),
        ("0.0.0.0", .v4, "0.0.0.0"),
        ("255.255.255.255", .v4, "255.255.255.255"),
        ("::", .v6, "::"),
        ("::1", .v6, "::1"),
        ("2001:db8::1", .v6, "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", .v6, "2001:db8::1"),
        ("fd00:20::", .v6, "fd00:20::"),
        ("1:0:0:2:0:0:0:3", .v6, "1:0:0:2::3"),
        ("1:0:0:2:0:0:3:4", .v6, "1::2:0:0:3:4"),
        ("1:2:3:4:5:6:7:8", .v6, "1:2:3:4:5:6:7:8"),
        ("fe80::1%eth0", .v6, "fe80::1"),
        ("::ffff:192.0.2.1", .v4, "192.0.2.1"),
        ("::FFFF:c000:0201", .v4, "192.0.2.1"),
        ("64:ff9b::192.0.2.1", .v6, "64:ff9b::c000:201"),
    ])
    func parsesAddresses(text: String, family: RelayIPAddress.Family, canonical: String) throws {
        let address = try #require(RelayIPAddress(parsing: text))
        #expect(address.family == family)
        #expect(address.description == canonical)
        #expect(RelayIPAddress(parsing: canonical) == address)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", "1.2.3.4 ", " 1.2.3.4", "a.b.c.d",
        ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::", "::g", "1:2:3:4:5:6:7::8:9",
        "::1.2.3", "1.2.3.4::", "fe80::1%", "[::1]", "localhost",
    ])
    func refusesMalformedAddresses(text: String) {
        #expect(RelayIPAddress(parsing: text) == nil)
    }

    @Test func mappedAddressEqualsIPv4() {
        #expect(RelayIPAddress(parsing: "::ffff:10.0.0.1") == RelayIPAddress(parsing: "10.0.0.1"))
        #expect(RelayIPAddress(bytes: [10, 0, 0, 1]) == RelayIPAddress(parsing: "10.0.0.1"))
        #expect(RelayIPAddress(bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 0, 0, 1]) == RelayIPAddress(parsing: "10.0.0.1"))
        #expect(RelayIPAddress(bytes: [1, 2, 3]) == nil)
    }

    @Test(arguments: [
        ("127.0.0.1", true), ("127.255.0.9", true), ("::1", true), ("::ffff:127.0.0.1", true),
        ("128.0.0.1", false), ("::2", false), ("::", false), ("10.0.0.1", false),
    ])
    func loopback(text: String, expected: Bool) throws {
        #expect(try #require(RelayIPAddress(parsing: text)).isLoopback == expected)
    }

    @Test(arguments: [
        // network, address, contained
        ("10.20.0.0/24", "10.20.0.1", true),
        ("10.20.0.0/24", "10.20.0.255", true),
        ("10.20.0.0/24", "10.20.1.0", false),
        ("10.20.0.0/24", "::ffff:10.20.0.7", true),       // mapped form of a member
        ("10.20.0.0/24", "::a14:7", false),               // IPv4-compatible is not mapped
        ("10.30.0.5/32", "10.30.0.5", true),
        ("10.30.0.5/32", "10.30.0.6", false),
        ("10.30.0.5", "10.30.0.5", true),                 // bare address: one host
        ("10.0.0.5/8", "10.99.1.1", true),                // host bits masked
        ("0.0.0.0/0", "203.0.113.9", true),
        ("0.0.0.0/0", "2001:db8::1", false),              // IPv4 networks hold IPv4 only
        ("fd00:20::/64", "fd00:20::1", true),
        ("fd00:20::/64", "fd00:20:0:0:ffff::1", true),
        ("fd00:20::/64", "fd00:21::1", false),
        ("fd00:20::/64", "10.0.0.1", false),
        ("::1/128", "::1", true),
        ("::1", "::2", false),
        ("::/0", "2001:db8::1", true),
        ("::/0", "192.0.2.1", true),                      // covers the mapped range
        ("::ffff:0:0/96", "192.0.2.1", true),
        ("::ffff:0:0/96", "2001:db8::1", false),
        ("::ffff:10.0.0.0/104", "10.1.2.3", true),        // a mapped network is the IPv4 network
        ("::ffff:10.0.0.0/104", "11.1.2.3", false),
        ("2001:db8::/33", "2001:db8:7fff::1", true),
        ("2001:db8::/33", "2001:db8:8000::1", false),
        ("2001:db8::/65", "2001:db8::7fff:0:0:1", true),
        ("2001:db8::/65", "2001:db8::8000:0:0:1", false),
    ])
    func networkContains(network: String, address: String, contained: Bool) throws {
        let net = try #require(RelayNetwork(parsing: network))
        let addr = try #require(RelayIPAddress(parsing: address))
        #expect(net.contains(addr) == contained)
    }

    @Test(arguments: [
        ("10.0.0.5/24", "10.0.0.0/24"),
        ("10.0.0.5", "10.0.0.5/32"),
        ("fd00::1/64", "fd00::/64"),
        ("::1", "::1/128"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("::ffff:0:0/80", "::/80"),
    ])
    func networkCanonicalForm(text: String, canonical: String) throws {
        #expect(try #require(RelayNetwork(parsing: text)).description == canonical)
    }

    @Test(arguments: ["10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8", "/8", "10.0.0.0/08x", "host/8"])
    func refusesMalformedNetworks(text: String) {
        #expect(RelayNetwork(parsing: text) == nil)
    }

    @Test func matchClientTakesFirstAuthNoneClientInFileOrder() throws {
        let clients = [
            RelayConfiguration.Client(name: "erp", route: "r", networks: [try #require(RelayNetwork(parsing: "10.0.0.0/8"))], auth: .password),
            RelayConfiguration.Client(name: "printers", route: "r", networks: [try #require(RelayNetwork(parsing: "10.1.0.0/16"))]),
            RelayConfiguration.Client(name: "everyone", route: "r", networks: [
                try #require(RelayNetwork(parsing: "10.0.0.0/8")), try #require(RelayNetwork(parsing: "fd00::/8")),
            ]),
        ]
        func match(_ text: String) throws -> String? {
            matchClient(address: try #require(RelayIPAddress(parsing: text)), in: clients)?.name
        }
        #expect(try match("10.1.2.3") == "printers")
        #expect(try match("::ffff:10.1.2.3") == "printers")
        #expect(try match("10.2.0.1") == "everyone", "the password client is skipped")
        #expect(try match("fd12::1") == "everyone")
        #expect(try match("192.0.2.1") == nil)
    }

    @Test(arguments: [
        ("0.0.0.0:25", "0.0.0.0", 25),
        ("[::1]:25", "::1", 25),
        ("[::]:2525", "::", 2525),
        ("smtp.office365.com:587", "smtp.office365.com", 587),
        ("localhost:0", "localhost", 0),
    ])
    func endpointsParse(text: String, host: String, port: Int) throws {
        let endpoint = try #require(RelayEndpoint(parsing: text))
        #expect(endpoint.host == host)
        #expect(endpoint.port == port)
        #expect(endpoint.description == text)
    }

    @Test(arguments: ["::1:25", "host", "host:", ":25", "host:65536", "host:-1", "[::1]25", "[nothost]:25", "bad host:25", "[::1]:", "h:2x"])
    func endpointsRefused(text: String) {
        #expect(RelayEndpoint(parsing: text) == nil)
    }
}
