import Foundation
import NIOCore
import NIOPosix

/// A small stub resolver on SwiftNIO: one question to one recursive server over
/// UDP, again over TCP when the reply is truncated (RFC 1035 §4.2, RFC 7766).
/// Hand-written (see `DNSMessage`) because no library this project uses does DNS.
///
/// Each attempt waits at most `timeout`; a UDP query that gets no answer is sent
/// once more (with a new id) before giving up.
public final class RelayDNSClient: RelayDNSResolver {
    /// The server asked: an IP address and a port.
    public let host: String
    public let port: Int
    public let timeout: TimeAmount
    private let group: EventLoopGroup
    /// How the server was chosen, when not given: said in errors, so that a
    /// failure against a guessed server points at the setting to change.
    private let origin: String?

    /// - Parameters:
    ///   - server: The DNS server; nil means the first `nameserver` of /etc/resolv.conf
    ///     (127.0.0.1:53 when there is none).
    ///   - timeout: How long one attempt waits for its reply.
    public init(
        server: (host: String, port: Int)? = nil, timeout: TimeAmount = .seconds(5),
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        if let server {
            (host, port, origin) = (server.host, server.port, nil)
        } else {
            (host, port, origin) = Self.systemServer(resolvConf: try? String(contentsOfFile: ResolvConf.path, encoding: .utf8))
        }
        self.timeout = timeout
        self.group = group
    }

    /// The server /etc/resolv.conf names (its text, nil when unreadable), and how it was chosen.
    static func systemServer(resolvConf text: String?) -> (host: String, port: Int, origin: String) {
        if let address = ResolvConf.firstNameserver(in: text ?? "") {
            return (address, 53, "the first nameserver of \(ResolvConf.path)")
        }
        let why = text == nil ? "\(ResolvConf.path) cannot be read" : "\(ResolvConf.path) names no nameserver"
        return ("127.0.0.1", 53, "\(why), so 127.0.0.1:53 was tried: set dns.server to a resolver's address")
    }

    /// "host:port", with brackets around an IPv6 address.
    public var serverDescription: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public func lookup(_ name: String, _ type: RelayDNSRecordType) async throws(RelayDNSError) -> RelayDNSAnswer {
        func failure(_ reason: String) -> RelayDNSError { RelayDNSError(name: name, type: type, reason: reason) }
        let question: String
        do {
            question = try DNSMessage.normalisedName(name)
        } catch {
            throw failure(error.description)
        }
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: host, port: port)
        } catch {
            throw failure("the DNS server \(host) is not an IP address: set dns.server to the address of a resolver, e.g. 1.1.1.1:53")
        }
        let server = serverDescription + (origin.map { " (\($0))" } ?? "")

        var reply: DNSMessage.Reply? = nil
        var lastFailure = ""
        for attempt in 1...2 {
            let id = UInt16.random(in: .min ... .max)
            let query = DNSMessage.query(id: id, name: question, type: type)
            do {
                let bytes = try await exchange(query, id: id, address: address, overTCP: false)
                do {
                    reply = try DNSMessage.parseReply(bytes, id: id, name: question, type: type)
                } catch {
                    throw failure("malformed reply from \(server) over UDP: \(error.description)")
                }
                break
            } catch let error as TransportFailure {
                lastFailure = error.describe(timeout: timeout, attempts: attempt)
                // Only silence is worth a second try; a refusal will not change.
                if case .timedOut = error { continue }
                break
            } catch let error as RelayDNSError {
                throw error
            } catch {
                throw failure("\(error)")
            }
        }
        guard var reply else { throw failure("no answer from \(server) over UDP: \(lastFailure)") }

        if reply.truncated {
            let id = UInt16.random(in: .min ... .max)
            let query = DNSMessage.query(id: id, name: question, type: type)
            let bytes: [UInt8]
            do {
                bytes = try await exchange(query, id: id, address: address, overTCP: true)
            } catch let error as TransportFailure {
                throw failure("the UDP reply from \(server) was truncated and TCP failed: \(error.describe(timeout: timeout, attempts: 1))")
            } catch {
                throw failure("\(error)")
            }
            do {
                reply = try DNSMessage.parseReply(bytes, id: id, name: question, type: type)
            } catch {
                throw failure("malformed reply from \(server) over TCP: \(error.description)")
            }
            guard !reply.truncated else { throw failure("the reply from \(server) over TCP is marked truncated") }
        }

        switch reply.rcode {
        case 0: return RelayDNSAnswer(status: .ok, records: reply.records)
        case 3: return RelayDNSAnswer(status: .noSuchName, records: [])
        default: throw failure("\(server) answered \(Self.rcodeName(reply.rcode))")
        }
    }

    static func rcodeName(_ rcode: Int) -> String {
        switch rcode {
        case 1: "FORMERR (rcode 1: the server could not parse the query)"
        case 2: "SERVFAIL (rcode 2: the server failed to resolve the name, e.g. the domain's DNS is broken or DNSSEC validation failed)"
        case 4: "NOTIMP (rcode 4: the server does not support this query)"
        case 5: "REFUSED (rcode 5: the server refuses to answer this client; use a resolver that allows it)"
        default: "rcode \(rcode)"
        }
    }

    /// Sends one query and returns the first reply carrying its id, or throws a ``TransportFailure``.
    private func exchange(_ query: [UInt8], id: UInt16, address: SocketAddress, overTCP: Bool) async throws -> [UInt8] {
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: [UInt8].self)
        let timeout = self.timeout
        let timer = eventLoop.scheduleTask(in: timeout) { promise.fail(TransportFailure.timedOut) }
        let channelFuture: EventLoopFuture<Channel>
        if overTCP {
            channelFuture = ClientBootstrap(group: eventLoop)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(TCPReplyHandler(id: id, promise: promise))
                    }
                }
                .connect(to: address)
        } else {
            channelFuture = DatagramBootstrap(group: eventLoop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(UDPReplyHandler(id: id, promise: promise))
                    }
                }
                .connect(to: address)
        }
        channelFuture.whenComplete { result in
            switch result {
            case .success(let channel):
                var buffer = channel.allocator.buffer(capacity: query.count + 2)
                if overTCP { buffer.writeInteger(UInt16(query.count)) }
                buffer.writeBytes(query)
                channel.writeAndFlush(buffer).whenFailure { promise.fail(TransportFailure.failed("sending the query failed: \($0)")) }
                promise.futureResult.whenComplete { _ in
                    timer.cancel()
                    channel.close(promise: nil)
                }
            case .failure(let error):
                timer.cancel()
                promise.fail(TransportFailure.failed("cannot \(overTCP ? "connect" : "open a socket"): \(error)"))
            }
        }
        return try await promise.futureResult.get()
    }
}

enum TransportFailure: Error {
    case timedOut
    case failed(String)

    func describe(timeout: TimeAmount, attempts: Int) -> String {
        switch self {
        case .timedOut:
            let milliseconds = timeout.nanoseconds / 1_000_000
            let time = milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
            return "no reply within \(time)" + (attempts > 1 ? " (\(attempts) attempts)" : "")
        case .failed(let reason): return reason
        }
    }
}

/// Completes the promise with the first datagram that answers the query's id;
/// anything else (a late reply to an earlier query, stray traffic) is ignored.
private final class UDPReplyHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let id: UInt16
    let promise: EventLoopPromise<[UInt8]>

    init(id: UInt16, promise: EventLoopPromise<[UInt8]>) {
        self.id = id
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        let bytes = envelope.data.readBytes(length: envelope.data.readableBytes) ?? []
        if DNSMessage.isReply(bytes, to: id) { promise.succeed(bytes) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // On a connected UDP socket an ICMP "port unreachable" comes back as ECONNREFUSED.
        if let error = error as? IOError, error.errnoCode == ECONNREFUSED {
            promise.fail(TransportFailure.failed("connection refused (nothing listens on that port)"))
        } else {
            promise.fail(TransportFailure.failed("\(error)"))
        }
    }
}

/// Reads one length-prefixed message (RFC 1035 §4.2.2).
private final class TCPReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let id: UInt16
    let promise: EventLoopPromise<[UInt8]>
    private var received: ByteBuffer?

    init(id: UInt16, promise: EventLoopPromise<[UInt8]>) {
        self.id = id
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        if received == nil { received = chunk } else { received!.writeBuffer(&chunk) }
        guard let buffer = received, let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
              buffer.readableBytes >= 2 + Int(length),
              let bytes = buffer.getBytes(at: buffer.readerIndex + 2, length: Int(length))
        else { return }
        promise.succeed(bytes)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(TransportFailure.failed("the server closed the TCP connection before the whole reply arrived"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(TransportFailure.failed("\(error)"))
    }
}
