import NIOCore
import SMTPCore

/// Runs an `SMTPServerSession` with no channel: bytes in, replies and stored
/// messages out. Used by transcript tests, which can feed the same input in
/// any chunking and must get the same result. Time is a mock clock that only
/// `advance(by:)` moves; deadlines fire as it passes them.
public struct SMTPServerDriver {
    public var session: SMTPServerSession
    public private(set) var output = ""
    public private(set) var committed: [(envelope: SMTPSessionEnvelope, content: String)] = []
    public private(set) var closed = false
    public private(set) var tlsRequested = false
    /// What the next AUTH check answers.
    public var acceptCredentials: (SMTPAuthExchange) -> String? = { _ in nil }
    private var openContent: String?
    private var input = ByteBuffer()
    private var queueNumber = 0
    /// The mock clock.
    public private(set) var now = NIODeadline.uptimeNanoseconds(1_000_000_000)

    public init(configuration: SMTPServerSession.Configuration, timeouts: SMTPServerTimeouts = SMTPServerTimeouts()) {
        session = SMTPServerSession(configuration: configuration, timeouts: timeouts)
        if let action = session.start(now: now) { perform(action) }
    }

    /// Feeds bytes, running every action to completion.
    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        guard !closed else { return }
        let bytes = Array(bytes)
        if let action = session.received(octets: bytes.count, now: now) {
            perform(action)
            return
        }
        input.writeBytes(bytes)
        while !closed, let action = session.consume(&input) {
            perform(action)
        }
    }

    /// Moves the mock clock on, firing every deadline it passes, in order.
    public mutating func advance(by amount: TimeAmount) {
        let target = now + amount
        while !closed, let deadline = session.nextDeadline, deadline <= target {
            now = max(now, deadline)
            guard let action = session.timerFired(now: now) else { break }
            perform(action)
        }
        now = target
    }

    public mutating func feed(_ text: String) { feed(Array(text.utf8)) }

    /// Completes a STARTTLS handshake.
    public mutating func completeTLS(version: String = "TLSv1.3") {
        tlsRequested = false
        session.tlsEstablished(SMTPTLSInfo(version: version), now: now)
        feed([UInt8]())
    }

    /// Takes the output so far.
    public mutating func takeOutput() -> String {
        defer { output = "" }
        return output
    }

    public mutating func shutdown() {
        if let action = session.shutdownRequested() { perform(action) }
    }

    private mutating func perform(_ action: SMTPServerSession.Action) {
        switch action {
        case .reply(let replies, let after):
            send(replies, after)
        case .openMessage:
            openContent = ""
            if let next = session.messageOpened(succeeded: true) { perform(next) }
        case .writeContent(let chunk):
            openContent? += String(decoding: chunk.readableBytesView, as: UTF8.self)
        case .commitMessage(let envelope):
            queueNumber += 1
            committed.append((envelope, openContent ?? ""))
            openContent = nil
            if let next = session.messageCommitted(reply: .ok("Ok: queued as Q\(queueNumber)"), now: now) { perform(next) }
        case .discardMessage(let replies, let after):
            openContent = nil
            send(replies, after)
        case .verifyCredentials(let exchange):
            let identity = acceptCredentials(exchange)
            let reply = identity != nil
                ? SMTPReply(235, .init(2, 7, 0), "Authentication successful")
                : SMTPReply(535, .init(5, 7, 3), "Authentication unsuccessful")
            if let next = session.authenticationCompleted(identity: identity, reply: reply, now: now) { perform(next) }
        }
    }

    private mutating func send(_ replies: [SMTPReply], _ after: SMTPServerSession.After) {
        for reply in replies { output += reply.encoded }
        switch after {
        case .continue: break
        case .close: closed = true
        case .startTLS: tlsRequested = true
        }
    }
}

/// Ways to cut `bytes` into pieces: whole, byte by byte (up to 4 KB), every
/// two-way split and, for short inputs, every three-way split. Long inputs get
/// the split points near both ends and an even sample in between, so that the
/// test stays fast and still crosses every boundary that matters (line ends
/// and the end-of-data sequence sit near the ends).
public func everyChunking(of bytes: [UInt8], maxSplits: Int = 2) -> [[[UInt8]]] {
    var result: [[[UInt8]]] = [[bytes]]
    if bytes.count <= 4096 { result.append(bytes.map { [$0] }) }
    let count = bytes.count
    guard count > 1 else { return result }
    var points = Set<Int>()
    if count <= 256 {
        points = Set(1..<count)
    } else {
        for i in 1...64 { points.insert(i); points.insert(count - i) }
        let stride = max(1, count / 64)
        for i in Swift.stride(from: 1, to: count, by: stride) { points.insert(i) }
    }
    let sorted = points.sorted()
    for i in sorted {
        result.append([Array(bytes[..<i]), Array(bytes[i...])])
        if maxSplits >= 2 && count <= 200 {
            for j in sorted where j > i {
                result.append([Array(bytes[..<i]), Array(bytes[i..<j]), Array(bytes[j...])])
            }
        }
    }
    return result
}
