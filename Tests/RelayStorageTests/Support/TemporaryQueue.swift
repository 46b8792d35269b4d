import Foundation
import Logging
import NIOCore
import RelayCore
@testable import RelayStorage

/// A queue database and spool in a fresh temporary directory, removed afterwards,
/// so that tests run in parallel against real SQLite and real files.
struct TemporaryQueue {
    let directory: String

    var databasePath: String { directory + "/queue.sqlite" }
    var spoolPath: String { directory + "/spool" }

    /// - Parameter inlineContentLimit: 0 (the default here) puts every message in a
    ///   spool file, so most tests see the file side; the inline side has its own tests.
    /// - Parameter keepBodies: `trace.keep_bodies`; 0 removes content when a message finishes.
    func open(inlineContentLimit: Int = 0, keepBodies: TimeInterval = 0) throws -> SQLiteQueueStore {
        var logger = Logger(label: "relay-storage-tests")
        logger.logLevel = .critical
        return try SQLiteQueueStore(path: databasePath, inlineContentLimit: inlineContentLimit, keepBodies: keepBodies, logger: logger)
    }

    func spoolFileExists(_ id: RelayQueueID) -> Bool {
        FileManager.default.fileExists(atPath: spoolPath + "/" + id.rawValue)
    }

    static func with<Result>(_ body: (TemporaryQueue) async throws -> Result) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("relay-storage-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try await body(TemporaryQueue(directory: directory))
    }
}

/// Fixed instants: whole seconds survive the round trip through a REAL column exactly.
let t0 = Date(timeIntervalSince1970: 1_750_000_000)

func at(_ seconds: TimeInterval) -> Date {
    t0.addingTimeInterval(seconds)
}

func makeEnvelope(recipients: [String] = ["alice@example.com"], route: String = "smtp") -> RelayEnvelope {
    RelayEnvelope(
        sender: "scanner@printer.local", recipients: recipients, clientName: "printers",
        clientAddress: "192.0.2.10", heloName: "printer.local", tlsVersion: "TLSv1.3", route: route)
}

/// Every byte value, CR LF pairs, a lone `.` line: content must come back byte for byte.
func sampleContent(size: Int, seed: UInt8 = 0) -> ByteBuffer {
    var bytes: [UInt8] = Array("Subject: test\r\n\r\n.\r\n".utf8)
    var value = seed
    while bytes.count < size {
        bytes.append(value)
        value &+= 1
    }
    return ByteBuffer(bytes: bytes.prefix(size))
}

/// A distinct, well-formed queue id per call.
func makeID() -> RelayQueueID {
    RelayQueueID.make(millisecondsSinceEpoch: UInt64(t0.timeIntervalSince1970 * 1000))
}

/// Writes `content` in chunks of `chunkSize` and commits it.
func commit(
    _ content: ByteBuffer, id: RelayQueueID = makeID(), envelope: RelayEnvelope = makeEnvelope(),
    to store: SQLiteQueueStore, now: Date = t0, chunkSize: Int = 4096
) async throws -> RelayQueuedMessage {
    let writer = try store.makeWriter(id: id)
    var remaining = content
    while let chunk = remaining.readSlice(length: min(chunkSize, remaining.readableBytes)), chunk.readableBytes > 0 {
        try writer.write(chunk)
    }
    return try await store.commit(writer, envelope: envelope, now: now)
}

func readContent(of id: RelayQueueID, from store: SQLiteQueueStore, maxLength: Int = 1000) throws -> ByteBuffer {
    let reader = try store.openContent(id: id)
    defer { reader.close() }
    var content = ByteBuffer()
    while var chunk = try reader.read(maxLength: maxLength) {
        precondition(chunk.readableBytes <= maxLength, "reader returned more than maxLength")
        content.writeBuffer(&chunk)
    }
    return content
}

func attempt(
    _ updates: [RelayRecipient], summary: String, _ disposition: RelayAttemptResult.Disposition, at start: Date = t0
) -> RelayAttemptResult {
    RelayAttemptResult(
        startedAt: start, finishedAt: start.addingTimeInterval(1), route: "smtp",
        recipientUpdates: updates, summary: summary, disposition: disposition)
}
