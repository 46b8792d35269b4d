import Foundation
import NIOCore
import NIOPosix
import Synchronization
@testable import RelayDNS
import RelayTestSupport
import Testing

/// A UDP "server" on 127.0.0.1 that answers each query with the datagrams
/// `reply` makes of it (none: it stays silent), and remembers the queries.
struct ScriptedUDPResponder: Sendable {
    let channel: Channel
    private let log: QueryLog

    var port: Int { channel.localAddress!.port! }
    var queries: [[UInt8]] { log.queries.withLock { $0 } }

    static func start(host: String = "127.0.0.1", _ reply: @escaping @Sendable (_ query: [UInt8]) -> [[UInt8]]) async throws -> ScriptedUDPResponder {
        let log = QueryLog()
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler(reply: reply, log: log)) }
            }
            .bind(host: host, port: 0).get()
        return ScriptedUDPResponder(channel: channel, log: log)
    }

    func stop() async { try? await channel.close() }

    private final class QueryLog: Sendable {
        let queries = Mutex<[[UInt8]]>([])
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let reply: @Sendable ([UInt8]) -> [[UInt8]]
        let log: QueryLog

        init(reply: @escaping @Sendable ([UInt8]) -> [[UInt8]], log: QueryLog) {
            self.reply = reply
            self.log = log
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            let query = Array(envelope.data.readableBytesView)
            log.queries.withLock { $0.append(query) }
            for datagram in reply(query) {
                let out = AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: context.channel.allocator.buffer(bytes: datagram))
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            }
        }
    }
}

/// A reply to `query` (its id and question) with the given header counts and flags, then `rest`.
func reply(to query: [UInt8], flags: UInt16 = 0x8180, answers: UInt16 = 1, rest: [UInt8]) -> [UInt8] {
    let question = Array(query[12...])
    return Array(query[0..<2]) + [UInt8(flags >> 8), UInt8(flags & 0xFF), 0, 1, UInt8(answers >> 8), UInt8(answers & 0xFF), 0, 0, 0, 0]
        + question + rest
}

/// An answer record header: a pointer to the question name (offset 12), type, class IN, TTL 60, data length.
func record(type: UInt16, length: UInt16) -> [UInt8] {
    [0xC0, 12, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1, 0, 0, 0, 60, UInt8(length >> 8), UInt8(length & 0xFF)]
}

@Suite("RelayDNSClient against broken and silent servers")
struct DNSReplyFaultTests {
    /// Asks `name`/`type` of a responder that answers with `bytes(query)` and returns the error.
    func failure(_ type: RelayDNSRecordType = .a, timeout: TimeAmount = .seconds(5), _ bytes: @escaping @Sendable ([UInt8]) -> [[UInt8]]) async throws -> RelayDNSError? {
        let responder = try await ScriptedUDPResponder.start(bytes)
        let client = RelayDNSClient(server: ("127.0.0.1", responder.port), timeout: timeout)
        let error = await #expect(throws: RelayDNSError.self) { try await client.lookup("contoso.com", type) }
        await responder.stop()
        return error
    }

    @Test("A compression pointer to itself is a malformed reply, not a hang or a crash")
    func pointerToItself() async throws {
        let error = try await failure { query in
            // The answer's owner name, at offset 12 + question, points at itself.
            let ownerOffset = query.count
            return [reply(to: query, rest: [0xC0 | UInt8(ownerOffset >> 8), UInt8(ownerOffset & 0xFF)] + record(type: 1, length: 4).dropFirst(2) + [1, 2, 3, 4])]
        }
        #expect(error?.reason.contains("malformed reply") == true)
        #expect(error?.reason.contains("loop") == true)
    }

    @Test("Two compression pointers pointing at each other are a malformed reply")
    func pointerCycle() async throws {
        let error = try await failure(.cname) { query in
            // CNAME data: pointer A (at p) -> p + 2, pointer B (at p + 2) -> p.
            let p = query.count + 12
            let data: [UInt8] = [0xC0 | UInt8(p >> 8), UInt8((p + 2) & 0xFF), 0xC0 | UInt8(p >> 8), UInt8(p & 0xFF)]
            return [reply(to: query, rest: record(type: 5, length: 4) + data)]
        }
        #expect(error?.reason.contains("malformed reply") == true)
    }

    @Test("Lengths past the end of the reply are a malformed reply")
    func outOfBounds() async throws {
        // The data length claims more octets than were sent.
        var error = try await failure { query in [reply(to: query, rest: record(type: 1, length: 400) + [1, 2, 3, 4])] }
        #expect(error?.reason.contains("past the end") == true)
        // A header announcing a question and an answer, with nothing after it.
        error = try await failure { query in [Array(query[0..<2]) + [0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]] }
        #expect(error?.reason.contains("malformed reply") == true)
        // A TXT character-string longer than its record.
        error = try await failure(.txt) { query in [reply(to: query, rest: record(type: 16, length: 3) + [200, 65, 66])] }
        #expect(error?.reason.contains("malformed reply") == true)
        // An MX exchange whose label runs past the record's data.
        error = try await failure(.mx) { query in [reply(to: query, rest: record(type: 15, length: 5) + [0, 10, 9, 65, 66, 0])] }
        #expect(error?.reason.contains("malformed reply") == true)
        // An A record of 3 octets.
        error = try await failure { query in [reply(to: query, rest: record(type: 1, length: 3) + [1, 2, 3])] }
        #expect(error?.reason.contains("3 octets") == true)
    }

    @Test("A reply to another question is refused")
    func otherQuestion() async throws {
        let error = try await failure { query in
            var forged = reply(to: query, answers: 0, rest: [])
            forged[forged.count - 3] = 28  // asks AAAA instead of A
            return [forged]
        }
        #expect(error?.reason.contains("another question") == true)
    }

    @Test("A reply with another id is ignored; the matching one is used")
    func strayReplyIgnored() async throws {
        let responder = try await ScriptedUDPResponder.start { query in
            var stray = reply(to: query, rest: record(type: 1, length: 4) + [6, 6, 6, 6])
            stray[0] ^= 0xFF
            return [stray, reply(to: query, rest: record(type: 1, length: 4) + [192, 0, 2, 1])]
        }
        let client = RelayDNSClient(server: ("127.0.0.1", responder.port), timeout: .seconds(5))
        #expect(try await client.lookup("contoso.com", .a).records == [.a("192.0.2.1")])
        await responder.stop()
    }

    @Test("REFUSED is an error naming it")
    func refused() async throws {
        let error = try await failure { query in [reply(to: query, flags: 0x8185, answers: 0, rest: [])] }
        #expect(error?.reason.contains("REFUSED") == true)
    }

    @Test("A server that never answers: a bounded timeout, one retry")
    func timeout() async throws {
        let responder = try await ScriptedUDPResponder.start { _ in [] }
        let client = RelayDNSClient(server: ("127.0.0.1", responder.port), timeout: .milliseconds(300))
        let started = ContinuousClock.now
        let error = await #expect(throws: RelayDNSError.self) { try await client.lookup("contoso.com", .mx) }
        let elapsed = ContinuousClock.now - started
        // An upper bound for a loaded 2-core CI machine, not a performance claim.
        #expect(elapsed >= .milliseconds(600) && elapsed < .seconds(90))
        #expect(error?.reason.contains("no reply within 300 ms (2 attempts)") == true)
        #expect(error?.reason.contains("127.0.0.1:\(responder.port)") == true)
        // Two queries, with different ids.
        #expect(responder.queries.count == 2)
        #expect(Set(responder.queries.map { Array($0[0..<2]) }).count == 2)
        await responder.stop()
    }

    @Test("A port where nothing listens: refused at once, not after the timeout")
    func nothingListening() async throws {
        let responder = try await ScriptedUDPResponder.start { _ in [] }
        let port = responder.port
        await responder.stop()
        // The reply says which happened: the ICMP refusal, not the timeout. No wall-clock
        // bound: a loaded CI machine once took 12 s to start the lookup at all.
        let client = RelayDNSClient(server: ("127.0.0.1", port), timeout: .seconds(120))
        let error = await #expect(throws: RelayDNSError.self) { try await client.lookup("contoso.com", .a) }
        #expect(error?.reason.contains("refused") == true, "\(String(describing: error))")
        #expect(error?.reason.contains("no reply within") == false, "\(String(describing: error))")
    }

    @Test("A server address that is not an IP address is refused with the setting to fix")
    func hostNameServer() async throws {
        let client = RelayDNSClient(server: ("dns.example", 53), timeout: .milliseconds(200))
        let error = await #expect(throws: RelayDNSError.self) { try await client.lookup("contoso.com", .a) }
        #expect(error?.reason.contains("dns.server") == true)
    }
}

@Suite("DNS wire format and /etc/resolv.conf")
struct DNSWireFormatTests {
    @Test("RFC 5952 text for IPv6 addresses")
    func ipv6Text() {
        func text(_ groups: [UInt16]) -> String { DNSMessage.ipv6Text(groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }) }
        #expect(text([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]) == "2001:db8::1")
        #expect(text([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]) == "2001:db8:0:1:1:1:1:1")  // a single zero group stays
        #expect(text([0x2001, 0, 0, 1, 0, 0, 0, 1]) == "2001:0:0:1::1")  // the longest run
        #expect(text([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]) == "2001:db8::1:0:0:1")  // the first of equal runs
        #expect(text([0, 0, 0, 0, 0, 0, 0, 0]) == "::")
        #expect(text([0, 0, 0, 0, 0, 0, 0, 1]) == "::1")
        #expect(text([0xfe80, 0, 0, 0, 0, 0, 0, 0]) == "fe80::")
        #expect(text([0xABCD, 0x0F00, 0, 0, 0, 0, 0xffff, 0xC000]) == "abcd:f00::ffff:c000")
        #expect(text([0, 0, 0, 0, 0, 0xffff, 0xC000, 0x0201]) == "::ffff:192.0.2.1")
    }

    @Test("The query: header, RD set, one question for the lower-cased name")
    func query() throws {
        let name = try DNSMessage.normalisedName("Contoso.COM.")
        #expect(name == "contoso.com")
        let bytes = DNSMessage.query(id: 0xBEEF, name: name, type: .mx)
        #expect(bytes == [0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7] + Array("contoso".utf8) + [3] + Array("com".utf8) + [0, 0, 15, 0, 1])
    }

    @Test("Names: a pointer must point backwards; labels are lower-cased and escaped")
    func names() throws {
        // Header, then "Ab.c" at 12, then "x" + pointer to 12 at 18.
        let message: [UInt8] = Array(repeating: 0, count: 12) + [2, 0x41, 0x62, 1, 0x63, 0] + [1, 0x78, 0xC0, 12] + [2, 0x2E, 0x00, 0]
        var reader = DNSMessage.Reader(bytes: message)
        reader.offset = 18
        #expect(try reader.name() == "x.ab.c")
        #expect(reader.offset == 22)
        #expect(try reader.name() == "\\046\\000")
        // A pointer to the header or to itself.
        for pointer: [UInt8] in [[0xC0, 2], [0xC0, 12]] {
            var looping = DNSMessage.Reader(bytes: Array(repeating: 0, count: 12) + pointer)
            looping.offset = 12
            #expect(throws: DNSWireError.self) { try looping.name() }
        }
        // A reserved label type (0x40).
        var reserved = DNSMessage.Reader(bytes: Array(repeating: 0, count: 12) + [0x41, 0])
        reserved.offset = 12
        #expect(throws: DNSWireError.self) { try reserved.name() }
    }

    @Test("The first nameserver line of resolv.conf, IPv4 or IPv6")
    func resolvConf() {
        #expect(ResolvConf.firstNameserver(in: """
        # Generated by NetworkManager
        search example.com
        ; nameserver 9.9.9.9
        options edns0 trust-ad
        nameserver 10.0.0.2   # the VPC resolver
        nameserver 10.0.0.3
        """) == "10.0.0.2")
        #expect(ResolvConf.firstNameserver(in: "nameserver\t2001:4860:4860::8888\nnameserver 8.8.8.8\n") == "2001:4860:4860::8888")
        #expect(ResolvConf.firstNameserver(in: "nameserver fe80::1%eth0\r\n") == "fe80::1")
        #expect(ResolvConf.firstNameserver(in: "search example.com\nnameserver\nnameserver resolver.example\n") == nil)
        #expect(ResolvConf.firstNameserver(in: "") == nil)
    }

    @Test("Without a nameserver line the client tries 127.0.0.1:53 and its errors say why")
    func systemServer() async throws {
        let chosen = RelayDNSClient.systemServer(resolvConf: "search example.com\n")
        #expect(chosen.host == "127.0.0.1" && chosen.port == 53)
        #expect(chosen.origin.contains("names no nameserver") && chosen.origin.contains("dns.server"))
        #expect(RelayDNSClient.systemServer(resolvConf: nil).origin.contains("cannot be read"))
        let listed = RelayDNSClient.systemServer(resolvConf: "nameserver ::1\n")
        #expect(listed.host == "::1" && listed.port == 53)
        // The default client uses this machine's file.
        let system = RelayDNSClient()
        let expected = RelayDNSClient.systemServer(resolvConf: try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8))
        #expect(system.host == expected.host && system.port == 53)
    }
}

@Suite("TestDNSServer")
struct TestDNSServerTests {
    @Test("python3's dnslib is installed (scripts/test.sh installs it)")
    func dnslibInstalled() async throws {
        let result = try await ExternalProcess.python("import dnslib")
        #expect(result.status == 0, "python3 cannot import dnslib, which the DNS tests need: run scripts/test.sh or `python3 -m pip install dnslib`. \(result.stderr)")
    }

    @Test("The server stops with stop(): its port no longer answers")
    func stops() async throws {
        let server = try await TestDNSServer.start(zone: "a.example. 60 IN A 192.0.2.1")
        let client = RelayDNSClient(server: (server.host, server.port), timeout: .seconds(10))
        #expect(try await client.lookup("a.example", .a).records == [.a("192.0.2.1")])
        server.stop()
        let error = await #expect(throws: RelayDNSError.self) { try await client.lookup("a.example", .a) }
        #expect(error != nil)
    }
}

@Suite("RelayDNSClient transports")
struct DNSTransportTests {
    @Test("A truncated UDP reply from a server without TCP: an error naming both")
    func truncatedWithoutTCP() async throws {
        let responder = try await ScriptedUDPResponder.start { query in [reply(to: query, flags: 0x8380, answers: 0, rest: [])] }
        let client = RelayDNSClient(server: ("127.0.0.1", responder.port), timeout: .seconds(5))
        let error = await #expect(throws: RelayDNSError.self) { try await client.lookup("contoso.com", .txt) }
        #expect(error?.reason.contains("truncated") == true)
        #expect(error?.reason.contains("TCP") == true)
        await responder.stop()
    }

    @Test("A server on ::1 (IPv6) is asked over IPv6", .enabled(if: ipv6LoopbackWorks()))
    func ipv6Server() async throws {
        let responder = try await ScriptedUDPResponder.start(host: "::1") { query in
            [reply(to: query, rest: record(type: 28, length: 16) + [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1])]
        }
        let client = RelayDNSClient(server: ("::1", responder.port), timeout: .seconds(5))
        #expect(client.serverDescription == "[::1]:\(responder.port)")
        #expect(try await client.lookup("contoso.com", .aaaa).records == [.aaaa("2001:db8::1")])
        await responder.stop()
    }
}

/// Whether this machine can bind a socket on ::1 (some containers have no IPv6).
func ipv6LoopbackWorks() -> Bool {
    let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_addr = in6addr_loopback
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
    } == 0
}
