import Foundation
import NIOCore
import RelayCore

/// The durable queue. Ingress writes messages through it; delivery leases
/// them, and records each attempt. SQLite is the embedded implementation; a
/// PostgreSQL one shared by several nodes fits the same protocol because
/// delivery only ever holds messages by expiring leases.
public protocol RelayQueueStore: Sendable {
    /// Starts a new message. The writer takes the content in chunks as it
    /// arrives, so no session holds a whole message in memory.
    func makeWriter(id: RelayQueueID) throws -> any RelayMessageWriter

    /// Makes the message durable (content and envelope synced to disk) and
    /// due for delivery at `now`. Only after this returns may the client be told `250`.
    func commit(_ writer: any RelayMessageWriter, envelope: RelayEnvelope, now: Date) async throws -> RelayQueuedMessage

    /// Convenience for messages the relay makes itself (delivery status notifications).
    func enqueue(id: RelayQueueID, content: ByteBuffer, envelope: RelayEnvelope, now: Date) async throws -> RelayQueuedMessage

    /// Takes up to `limit` queued messages whose next attempt is due, for
    /// `leaseDuration`. A message leased by another owner whose lease has not
    /// expired is never returned.
    func lease(owner: String, now: Date, limit: Int, leaseDuration: TimeInterval, routes: Set<String>?) async throws -> [RelayQueuedMessage]

    /// Reads a message's content in chunks.
    func openContent(id: RelayQueueID) throws -> any RelayContentReader

    /// Records an attempt and releases the lease. When the disposition is
    /// `.finished`, the state becomes `delivered` if every recipient was
    /// delivered, else `failed`, and the content is removed.
    func recordAttempt(id: RelayQueueID, owner: String, result: RelayAttemptResult) async throws

    /// Releases the lease without an attempt: nothing was tried (the sending
    /// mailbox had no budget, the route is paused), so the attempt count and
    /// the retry schedule are untouched. The message is due again at `until`,
    /// on `route` when given (a fallback route; the caller makes sure no
    /// recipient was delivered by the old one).
    func postpone(id: RelayQueueID, owner: String, until: Date, route: String?) async throws

    /// The soonest `nextAttemptAt` of a queued message, so delivery can sleep until then.
    func nextDueDate() async throws -> Date?

    func message(id: RelayQueueID) async throws -> RelayQueuedMessage?

    /// Number of messages in each state.
    func counts() async throws -> [RelayMessageState: Int]
}

/// Receives one message's content. Sendable so that it can be handed to
/// `commit`, but used by one caller at a time (implementations are
/// `@unchecked Sendable` on that rule).
public protocol RelayMessageWriter: AnyObject, Sendable {
    var id: RelayQueueID { get }
    /// Octets written so far.
    var size: Int { get }
    func write(_ chunk: ByteBuffer) throws
    /// Discards everything written; nothing of the message remains.
    func abort()
}

/// Reads one message's content from the start. Used by one caller at a time.
public protocol RelayContentReader: AnyObject, Sendable {
    /// The next chunk of at most `maxLength` octets; nil at the end.
    func read(maxLength: Int) throws -> ByteBuffer?
    func close()
}

public struct RelayStorageError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, RawRepresentable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let io = Code(rawValue: "io")
        public static let notFound = Code(rawValue: "not-found")
        public static let leaseLost = Code(rawValue: "lease-lost")
        public static let unreachable = Code(rawValue: "unreachable")
        /// The caller passed something the store cannot use (e.g. a malformed trace cursor).
        public static let invalidRequest = Code(rawValue: "invalid-request")
    }

    public var code: Code
    /// Detail for logs; never message content.
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "storage error (\(code.rawValue)): \(detail)" }
}
