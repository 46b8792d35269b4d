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
}

public final class M365SandboxMailStore: Sendable {
    public let directory: String
    let logger: Logger
    private let counter = NIOLockedValueBox(0)

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

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    func nextID() -> String {
        let n = counter.withLockedValue { $0 += 1; return $0 }
        let stamp = Int(Date().timeIntervalSince1970 * 1000)
        return "\(stamp)-\(String(repeating: "0", count: max(0, 6 - String(n).count)))\(n)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }

    func makeSink(envelope: SMTPSessionEnvelope, connection: SMTPConnectionInfo, mailbox: String, allowedSenders: Set<String>, hostname: String) throws -> M365SandboxSink {
        try M365SandboxSink(
            store: self, id: nextID(), envelope: envelope, connection: "\(connection.clientAddress):\(connection.clientPort)",
            mailbox: mailbox, allowedSenders: allowedSenders, hostname: hostname)
    }
}

/// Receives one message into a temporary file; at the end decides, as
/// Exchange Online does, whether the mailbox may send as the message's sender.
final class M365SandboxSink: SMTPMessageSink, @unchecked Sendable {
    private let store: M365SandboxMailStore
    private let id: String
    private let envelope: SMTPSessionEnvelope
    private let connection: String
    private let mailbox: String
    private let allowedSenders: Set<String>
    private let hostname: String
    private let handle: FileHandle
    private let temporaryPath: String
    private var headerBytes: [UInt8] = []
    private var size = 0

    init(store: M365SandboxMailStore, id: String, envelope: SMTPSessionEnvelope, connection: String, mailbox: String, allowedSenders: Set<String>, hostname: String) throws {
        self.store = store
        self.id = id
        self.envelope = envelope
        self.connection = connection
        self.mailbox = mailbox
        self.allowedSenders = allowedSenders
        self.hostname = hostname
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
        // Exchange checks both the envelope sender and the From header against Send As rights.
        let senders = [envelope.sender.address] + (headers.fromAddress.map { [$0] } ?? [])
        if let denied = senders.first(where: { !$0.isEmpty && !allowedSenders.contains($0.lowercased()) }) {
            abort()
            return SMTPReply(554, .init(5, 2, 252), "SendAsDenied; \(mailbox) not allowed to send as \(denied); STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied")
        }
        let messageID = headers.value("Message-ID") ?? "<\(id)@\(hostname)>"
        let record = M365SandboxMessage(
            id: id, mailbox: mailbox, sender: envelope.sender.address, recipients: envelope.recipients.map(\.address),
            messageID: messageID, size: size, receivedAt: Date(), tlsVersion: envelope.tls?.version, connection: connection)
        do {
            try handle.synchronize()
            try handle.close()
            try FileManager.default.moveItem(atPath: temporaryPath, toPath: store.path("\(id).eml"))
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(record).write(to: URL(fileURLWithPath: store.path("\(id).json")), options: .atomic)
        } catch {
            store.logger.error("Sandbox could not store a message", metadata: ["id": "\(id)", "error": "\(error)"])
            abort()
            return SMTPReply(451, .init(4, 3, 0), "Temporary server error. Please try again later")
        }
        return SMTPReply(250, .init(2, 0, 0), "OK \(messageID) [Hostname=\(hostname)]")
    }
}

/// Just enough header reading for the Send As check: unfolded fields and the From address.
struct M365SandboxHeaders {
    private var fields: [(name: String, value: String)] = []

    init(bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let section = text.components(separatedBy: "\r\n\r\n").first ?? ""
        for line in section.components(separatedBy: "\r\n") {
            if let first = line.first, first == " " || first == "\t", !fields.isEmpty {
                let continuation = line.trimmingCharacters(in: .whitespaces)
                let value = fields[fields.count - 1].value
                fields[fields.count - 1].value = value.isEmpty ? continuation : value + " " + continuation
            } else if let colon = line.firstIndex(of: ":") {
                fields.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        }
    }

    func value(_ name: String) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    var fromAddress: String? {
        guard let from = value("From") else { return nil }
        if let open = from.lastIndex(of: "<"), let close = from[open...].firstIndex(of: ">") {
            return String(from[from.index(after: open)..<close])
        }
        return from.split(separator: " ").first { $0.contains("@") }.map(String.init)
    }
}
