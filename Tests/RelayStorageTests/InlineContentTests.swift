import Foundation
import NIOCore
import RelayCore
@testable import RelayStorage
import Testing

@Suite("SQLite queue store: small messages kept in the database")
struct InlineContentTests {
    static let limit = 64 * 1024

    @Test("a small message needs no spool file, survives reopening, and is removed when finished")
    func smallMessageIsInline() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(inlineContentLimit: Self.limit)
            let content = sampleContent(size: 5_000, seed: 3)
            let message = try await commit(content, to: store, chunkSize: 700)
            #expect(!queue.spoolFileExists(message.id))
            store.close()

            let reopened = try queue.open(inlineContentLimit: Self.limit)
            defer { reopened.close() }
            #expect(try readContent(of: message.id, from: reopened, maxLength: 999) == content)
            _ = try await reopened.lease(owner: "worker", now: t0, limit: 1, leaseDuration: 60, routes: nil)
            try await reopened.recordAttempt(
                id: message.id, owner: "worker",
                result: attempt([RelayRecipient(address: "alice@example.com", status: .delivered)], summary: "250 OK", .finished))
            #expect(throws: RelayStorageError.self) { try reopened.openContent(id: message.id) }
        }
    }

    @Test("content past the limit spills to a spool file, byte for byte", arguments: [Self.limit, Self.limit + 1, 200_003])
    func largeMessageSpills(size: Int) async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(inlineContentLimit: Self.limit)
            defer { store.close() }
            let content = sampleContent(size: size, seed: 9)
            let message = try await commit(content, to: store, chunkSize: 4096)
            #expect(queue.spoolFileExists(message.id) == (size > Self.limit))
            #expect(try readContent(of: message.id, from: store, maxLength: 5000) == content)
        }
    }

    @Test("an aborted message leaves nothing, in memory or on disk")
    func abortLeavesNothing() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(inlineContentLimit: Self.limit)
            defer { store.close() }
            let small = try store.makeWriter(id: makeID())
            try small.write(sampleContent(size: 100))
            small.abort()
            #expect(throws: RelayStorageError.self) { try small.write(sampleContent(size: 1)) }
            let large = try store.makeWriter(id: makeID())
            try large.write(sampleContent(size: Self.limit + 10))
            #expect(queue.spoolFileExists(large.id))
            large.abort()
            #expect(!queue.spoolFileExists(large.id))
            #expect(try await store.counts().values.reduce(0, +) == 0)
        }
    }
}
