import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SMTPCore
import SMTPNIO

/// What the sandbox received, kept where a person or a test can read it:
/// `<dataDirectory>/messages/<id>.eml` (the bytes as received) and
/// `<id>.json` (envelope, mailbox, reply).
public struct M365SandboxMessage: Codable, Sendable, Hashable {
    public var id: String
    public var mailbox: String
    public var sender: String
    public var recipients: [String]
    public var messageID: String
    public var size: Int
    public var receivedAt: Date
    public var tlsVersion: String?
    /// The client's address and port: messages on one connection share it.
    public var connection: String?
    /// How it came in: `smtp` (SMTP AUTH submission), `graph`, `connector`
    /// or `direct-send`. Nil in records written before the field existed.
    public var via: String?
    /// The inbound connector that matched (via `connector`).
    public var connectorName: String?
    /// Graph's `request-id` of the request that sent it.
    public var requestID: String?
    /// When the submission was accepted, after any quota delay: what a
    /// benchmark uses to compute drain times.
    public var acceptedAt: Date?
}

/// One acceptance, kept in memory for quick statistics.
public struct M365SandboxAcceptance: Sendable, Hashable {
    public var id: String
    public var mailbox: String
    public var via: String
    public var recipients: Int
    public var acceptedAt: Date
}

public final class M365SandboxMailStore: Sendable {
    public let directory: String
    let logger: Logger
    private let counter = NIOLockedValueBox(0)
    private let accepted = NIOLockedValueBox([M365SandboxAcceptance]())

    public init(dataDirectory: String, logger: Logger = Logger(label: "m365-relay.sandbox")) throws {
        self.logger = logger
        directory = (dataDirectory as NSString).appendingPathComponent("messages")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Every message received so far, oldest first.
    public func messages() throws -> [M365SandboxMessage] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".json") }
            .sorted()
            .map { try decoder.decode(M365SandboxMessage.self, from: Data(contentsOf: URL(fileURLWithPath: path($0)))) }
    }

    /// The bytes of a received message.
    public func content(of message: M365SandboxMessage) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path("\(message.id).eml")))
    }

    /// Every message stored by this instance, oldest first, without reading the disk.
    public var acceptances: [M365SandboxAcceptance] { accepted.withLockedValue { $0 } }

    /// Writes a whole message (Graph) and its record.
    func store(content: Data, record: M365SandboxMessage) throws {
        try content.write(to: URL(fileURLWithPath: path("\(record.id).tmp")))
        try FileManager.default.moveItem(atPath: path("\(record.id).tmp"), toPath: path("\(record.id).eml"))
        try writeRecord(record)
    }

    func writeRecord(_ record: M365SandboxMessage) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(record).write(to: URL(fileURLWithPath: path("\(record.id).json")), options: .atomic)
        accepted.withLockedValue {
            $0.append(M365SandboxAcceptance(
                id: record.id, mailbox: record.mailbox, via: record.via ?? "smtp", recipients: record.recipients.count,
                acceptedAt: record.acceptedAt ?? record.receivedAt))
        }
    }

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    func nextID() -> String {
        let n = counter.withLockedValue { $0 += 1; return $0 }
        let stamp = Int(Date().timeIntervalSince1970 * 1000)
        return "\(stamp)-\(String(repeating: "0", count: max(0, 6 - String(n).count)))\(n)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }

    func makeSink(envelope: SMTPSessionEnvelope, connection: SMTPConnectionInfo, context: M365SandboxSinkContext) throws -> M365SandboxSink {
        try M365SandboxSink(
            store: self, id: nextID(), envelope: envelope, connection: "\(connection.clientAddress):\(connection.clientPort)", context: context)
    }
}

/// What happens to a message whose content has arrived, after the Send As check.
enum M365SandboxGateDecision: Sendable {
    /// Store it; the submission counts as accepted at this time.
    case store(acceptedAt: Date)
    /// Refuse it with this reply.
    case refuse(SMTPReply)
    /// Drop it and close the connection without a reply (an injected fault).
    case closeWithoutReply
}

/// How one endpoint treats the messages of one transaction.
struct M365SandboxSinkContext: Sendable {
    var mailbox: String
    /// Addresses the sender may use (lowercased); nil = no Send As check (the MX).
    var allowedSenders: Set<String>?
    var via: String
    var connectorName: String?
    var hostname: String
    /// Faults and quotas, decided once the content is complete; may wait (a quota delay).
    var gate: @Sendable (_ recipients: Int) async -> M365SandboxGateDecision
    /// Closes the client's connection.
    var closeConnection: @Sendable () async -> Void
}

/// Receives one message into a temporary file; at the end decides, as
/// Exchange Online does, whether the mailbox may send as the message's sender.
final class M365SandboxSink: SMTPMessageSink, @unchecked Sendable {
    private let store: M365SandboxMailStore
    private let id: String
    private let envelope: SMTPSessionEnvelope
    private let connection: String
    private let context: M365SandboxSinkContext
    private let handle: FileHandle
    private let temporaryPath: String
    private var headerBytes: [UInt8] = []
    private var size = 0

    init(store: M365SandboxMailStore, id: String, envelope: SMTPSessionEnvelope, connection: String, context: M365SandboxSinkContext) throws {
        self.store = store
        self.id = id
        self.envelope = envelope
        self.connection = connection
        self.context = context
        temporaryPath = store.path("\(id).tmp")
        guard FileManager.default.createFile(atPath: temporaryPath, contents: nil) else {
            throw CocoaError(.fileWriteUnknown)
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporaryPath))
    }

    func write(_ chunk: ByteBuffer) throws {
        if headerBytes.count < 65536 { headerBytes.append(contentsOf: chunk.readableBytesView.prefix(65536 - headerBytes.count)) }
        size += chunk.readableBytes
        try handle.write(contentsOf: Data(chunk.readableBytesView))
    }

    func abort() {
        try? handle.close()
        try? FileManager.default.removeItem(atPath: temporaryPath)
    }

    func commit() async -> SMTPReply {
        let headers = M365SandboxHeaders(bytes: headerBytes)
        if let allowedSenders = context.allowedSenders {
            // Exchange checks both the envelope sender and the From header against Send As rights.
            let senders = [envelope.sender.address] + (headers.fromAddress.map { [$0] } ?? [])
            if let denied = senders.first(where: { !$0.isEmpty && !allowedSenders.contains($0.lowercased()) }) {
                abort()
                return SMTPReply(554, .init(5, 2, 252), "SendAsDenied; \(context.mailbox) not allowed to send as \(denied); STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied")
            }
        }
        let acceptedAt: Date
        switch await context.gate(envelope.recipients.count) {
        case .store(let time):
            acceptedAt = time
        case .refuse(let reply):
            abort()
            return reply
        case .closeWithoutReply:
            abort()
            await context.closeConnection()
            // Nobody reads this: the connection is closed.
            return SMTPReply(421, .init(4, 4, 2), "Connection dropped")
        }
        let messageID = headers.value("Message-ID") ?? "<\(id)@\(context.hostname)>"
        let record = M365SandboxMessage(
            id: id, mailbox: context.mailbox, sender: envelope.sender.address, recipients: envelope.recipients.map(\.address),
            messageID: messageID, size: size, receivedAt: Date(), tlsVersion: envelope.tls?.version, connection: connection,
            via: context.via, connectorName: context.connectorName, requestID: nil, acceptedAt: acceptedAt)
        do {
            try handle.synchronize()
            try handle.close()
            try FileManager.default.moveItem(atPath: temporaryPath, toPath: store.path("\(id).eml"))
            try store.writeRecord(record)
        } catch {
            store.logger.error("Sandbox could not store a message", metadata: ["id": "\(id)", "error": "\(error)"])
            abort()
            return SMTPReply(451, .init(4, 3, 0), "Temporary server error. Please try again later")
        }
        return SMTPReply(250, .init(2, 0, 0), "OK \(messageID) [Hostname=\(context.hostname)]")
    }
}
