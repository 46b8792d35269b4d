import NIOCore
import SMTPCore

/// Runs an `SMTPServerSession` with no channel: bytes in, replies and stored
/// messages out. Used by transcript tests, which can feed the same input in
/// any chunking and must get the same result.
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

    public init(configuration: SMTPServerSession.Configuration) {
        session = SMTPServerSession(configuration: configuration)
        perform(session.start())
    }

    /// Feeds bytes, running every action to completion.
    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        guard !closed else { return }
        input.writeBytes(Array(bytes))
        while !closed, let action = session.consume(&input) {
            perform(action)
        }
    }

    public mutating func feed(_ text: String) { feed(Array(text.utf8)) }

    /// Completes a STARTTLS handshake.
    public mutating func completeTLS(version: String = "TLSv1.3") {
        tlsRequested = false
        session.tlsEstablished(SMTPTLSInfo(version: version))
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
            if let next = session.messageCommitted(reply: .ok("Ok: queued as Q\(queueNumber)")) { perform(next) }
        case .discardMessage(let replies, let after):
            openContent = nil
            send(replies, after)
        case .verifyCredentials(let exchange):
            let identity = acceptCredentials(exchange)
            let reply = identity != nil
                ? SMTPReply(235, .init(2, 7, 0), "Authentication successful")
                : SMTPReply(535, .init(5, 7, 3), "Authentication unsuccessful")
            if let next = session.authenticationCompleted(identity: identity, reply: reply) { perform(next) }
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

/// Every way to cut `bytes` into two or three pieces, plus one byte at a time:
/// a framer must give the same result for each.
public func everyChunking(of bytes: [UInt8], maxSplits: Int = 2) -> [[[UInt8]]] {
    var result: [[[UInt8]]] = [[bytes], bytes.map { [$0] }]
    for i in 1..<max(bytes.count, 1) {
        result.append([Array(bytes[..<i]), Array(bytes[i...])])
        if maxSplits >= 2 && bytes.count <= 200 {
            for j in (i + 1)..<max(bytes.count, i + 1) {
                result.append([Array(bytes[..<i]), Array(bytes[i..<j]), Array(bytes[j...])])
            }
        }
    }
    return result
}
