import Foundation
import NIOCore
@testable import RelayDNS
import RelayTestSupport
import Testing

/// The zone every test here asks: the records doctor looks for at a Microsoft 365 customer.
let contosoZone = """
$ORIGIN contoso.com.
$TTL 300
@                   IN MX    0 contoso-com.mail.protection.outlook.com.
@                   IN MX    10 Backup.Contoso.com.
@                   IN TXT   "v=spf1 include:spf.protection.outlook.com" " -all"
@                   IN TXT   "MS=ms12345678"
@                   IN A     192.0.2.10
@                   IN AAAA  2001:db8:0:0:1:0:0:1
mail                IN A     192.0.2.25
mail                IN A     192.0.2.26
v6                  IN AAAA  2001:0db8:0000:0000:0000:0000:0000:0001
v6                  IN AAAA  ::ffff:c000:201
v6                  IN AAAA  ::
autodiscover        IN CNAME autodiscover.outlook.com.
www                 IN CNAME Contoso.com.
selector1._domainkey IN TXT  "v=DKIM1; k=rsa; p=\(String(repeating: "A", count: 392))"
empty               IN TXT   ""
"""

/// A running test server for the zone (stop it when done), and a client pointed at it.
func startContoso(
    servfail: [String] = [], truncatedOverUDP: [String] = [], timeout: TimeAmount = .seconds(10)
) async throws -> (RelayDNSClient, TestDNSServer) {
    let server = try await TestDNSServer.start(zone: contosoZone, servfail: servfail, truncatedOverUDP: truncatedOverUDP)
    return (RelayDNSClient(server: (server.host, server.port), timeout: timeout), server)
}

@Suite("RelayDNSClient against a dnslib server")
struct RelayDNSClientTests {
    @Test("A records, in answer order")
    func aRecords() async throws {
        let (client, server) = try await startContoso()
        defer { server.stop() }
            #expect(try await client.lookup("mail.contoso.com", .a) == RelayDNSAnswer(status: .ok, records: [.a("192.0.2.25"), .a("192.0.2.26")]))
            // Names are case-insensitive; a trailing dot is tolerated.
            #expect(try await client.lookup("MAIL.Contoso.COM.", .a).records == [.a("192.0.2.25"), .a("192.0.2.26")])
    }

    @Test("AAAA records as RFC 5952 text")
    func aaaaRecords() async throws {
        let (client, server) = try await startContoso()
        defer { server.stop() }
            #expect(try await client.lookup("v6.contoso.com", .aaaa).records == [.aaaa("2001:db8::1"), .aaaa("::ffff:192.0.2.1"), .aaaa("::")])
            // The first of two equal zero runs is the one shortened (RFC 5952 §4.2.3).
            #expect(try await client.lookup("contoso.com", .aaaa).records == [.aaaa("2001:db8::1:0:0:1")])
    }

    @Test("MX records: preference and lower-cased exchange without the trailing dot")
    func mxRecords() async throws {
        let (client, server) = try await startContoso()
        defer { server.stop() }
            let answer = try await client.lookup("contoso.com", .mx)
            #expect(answer.status == .ok)
            #expect(answer.records == [
                .mx(preference: 0, exchange: "contoso-com.mail.protection.outlook.com"), .mx(preference: 10, exchange: "backup.contoso.com"),
            ])
    }

    @Test("TXT: several character-strings are joined; a record over 255 octets arrives whole")
    func txtRecords() async throws {
        let (client, server) = try await startContoso()
        defer { server.stop() }
            #expect(try await client.lookup("contoso.com", .txt).records == [.txt("v=spf1 include:spf.protection.outlook.com -all"), .txt("MS=ms12345678")])
            let dkim = try await client.lookup("selector1._domainkey.contoso.com", .txt).records
            #expect(dkim == [.txt("v=DKIM1; k=rsa; p=\(String(repeating: "A", count: 392))")])
            #expect(try await client.lookup("empty.contoso.com", .txt).records == [.txt("")])
    }

    @Test("CNAME: asked for, it is returned; asked for another type, the chain is left out")
    func cnameRecords() async throws {
        let (client, server) = try await startContoso()
        defer { server.stop() }
            #expect(try await client.lookup("autodiscover.contoso.com", .cname).records == [.cname("autodiscover.outlook.com")])
            #expect(try await client.lookup("www.contoso.com", .cname).records == [.cname("contoso.com")])
            // The server answers CNAME + A; only the A is the answer to an A question.
            #expect(try await client.lookup("www.contoso.com", .a).records == [.a("192.0.2.10")])
            #expect(try await client.lookup("www.contoso.com", .mx).records.count == 2)
            #expect(server.queries().contains { $0 == ("udp", "www.contoso.com", "A") })
    }

    @Test("NODATA (the name exists, not the type) is not NXDOMAIN")
    func nodataAndNXDomain() async throws {
        let (client, server) = try await startContoso()
        defer { server.stop() }
            #expect(try await client.lookup("mail.contoso.com", .mx) == RelayDNSAnswer(status: .ok, records: []))
            #expect(try await client.lookup("mail.contoso.com", .txt) == RelayDNSAnswer(status: .ok, records: []))
            #expect(try await client.lookup("missing.contoso.com", .mx) == RelayDNSAnswer(status: .noSuchName, records: []))
            #expect(try await client.lookup("contoso.example", .txt) == RelayDNSAnswer(status: .noSuchName, records: []))
    }

    @Test("SERVFAIL is an error naming it, not an empty answer")
    func servfail() async throws {
        let (client, server) = try await startContoso(servfail: ["broken.contoso.com"])
        defer { server.stop() }
            let error = await #expect(throws: RelayDNSError.self) { try await client.lookup("broken.contoso.com", .txt) }
            #expect(error?.name == "broken.contoso.com")
            #expect(error?.type == .txt)
            #expect(error?.reason.contains("SERVFAIL") == true)
            #expect(error?.description.hasPrefix("DNS TXT broken.contoso.com:") == true)
    }

    @Test("A truncated UDP reply is asked again over TCP")
    func tcpFallback() async throws {
        let (client, server) = try await startContoso(truncatedOverUDP: ["contoso.com"])
        defer { server.stop() }
            #expect(try await client.lookup("contoso.com", .mx).records.count == 2)
            let asked = server.queries().filter { $0.name == "contoso.com" && $0.type == "MX" }.map(\.transport)
            #expect(asked == ["udp", "tcp"])
    }

    @Test("An answer over 512 octets is truncated over UDP by size and arrives whole over TCP")
    func largeAnswerOverTCP() async throws {
        let addresses = (1...60).map { "192.0.2.\($0)" }
        let zone = addresses.map { "big.contoso.com. 60 IN A \($0)" }.joined(separator: "\n")
        let server = try await TestDNSServer.start(zone: zone)
        defer { server.stop() }
        let client = RelayDNSClient(server: (server.host, server.port), timeout: .seconds(10))
        #expect(try await client.lookup("big.contoso.com", .a).records == addresses.map(RelayDNSRecord.a))
        #expect(server.queries().map(\.transport) == ["udp", "tcp"])
    }

    @Test("Names that are not ASCII or not names are refused before any query")
    func invalidNames() async throws {
        let client = RelayDNSClient(server: ("127.0.0.1", 9), timeout: .milliseconds(200))
        for name in ["bücher.example", "", "a..example", ".example", String(repeating: "a", count: 64) + ".example"] {
            let error = await #expect(throws: RelayDNSError.self) { try await client.lookup(name, .a) }
            #expect(error?.name == name)
        }
        let idn = await #expect(throws: RelayDNSError.self) { try await client.lookup("bücher.example", .mx) }
        #expect(idn?.reason.contains("xn--") == true)
    }
}
