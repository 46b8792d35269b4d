import Foundation
import NIOCore
import RelayCore
import Testing
@testable import RelayStorage

@Suite("SQLite queue store: durability")
struct SQLiteQueueDurabilityTests {
    @Test("a committed message and its content survive reopening the store, byte for byte")
    func committedMessageSurvivesReopen() async throws {
        try await TemporaryQueue.with { queue in
            let content = sampleContent(size: 200_003)
            let envelope = makeEnvelope(recipients: ["alice@example.com", "bob@example.com"])
            let id = makeID()
            let first = try queue.open()
            let committed = try await commit(content, id: id, envelope: envelope, to: first)
            #expect(committed.size == 200_003)
            first.close()

            let reopened = try queue.open()
            defer { reopened.close() }
            let message = try #require(try await reopened.message(id: id))
            #expect(message.envelope == envelope)
            #expect(message.recipients == [RelayRecipient(address: "alice@example.com"), RelayRecipient(address: "bob@example.com")])
            #expect(message.state == .queued)
            #expect(message.size == 200_003)
            #expect(message.receivedAt == t0)
            #expect(message.nextAttemptAt == t0)
            #expect(message.attempts == 0)
            #expect(message.lastError == nil)
            #expect(message == committed)
            #expect(try readContent(of: id, from: reopened, maxLength: 777) == content)
        }
    }

    @Test("the writer connection commits with synchronous=FULL, not GRDB's WAL default NORMAL")
    func commitsAreFullySynchronous() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            #expect(try await store.writerSynchronousSetting() == 2)
        }
    }

    @Test("abort leaves neither a file nor a row")
    func abortLeavesNothing() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let id = makeID()
            let writer = try store.makeWriter(id: id)
            try writer.write(sampleContent(size: 10_000))
            #expect(queue.spoolFileExists(id))
            writer.abort()
            #expect(!queue.spoolFileExists(id))
            #expect(try await store.message(id: id) == nil)
            #expect(try await store.counts().values.reduce(0, +) == 0)
            await #expect(throws: RelayStorageError.self) {
                try await store.commit(writer, envelope: makeEnvelope(), now: t0)
            }
            #expect(try await store.message(id: id) == nil)
        }
    }

    @Test("a writer dropped without commit or abort leaves no file")
    func droppedWriterLeavesNothing() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let id = makeID()
            do {
                let writer = try store.makeWriter(id: id)
                try writer.write(sampleContent(size: 100))
                #expect(queue.spoolFileExists(id))
            }
            #expect(!queue.spoolFileExists(id))
        }
    }

    @Test("a queue id is a file name: malformed ids and ids already being written are refused")
    func writerRefusesBadIDs() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            #expect(throws: RelayStorageError.self) { try store.makeWriter(id: RelayQueueID(rawValue: "../../etc/passwd")) }
            let id = makeID()
            let writer = try store.makeWriter(id: id)
            #expect(throws: RelayStorageError.self) { try store.makeWriter(id: id) }
            writer.abort()
        }
    }

    @Test("on open, spool files without a queued message are removed and nothing else")
    func recoveryRemovesOrphans() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            let kept = try await commit(sampleContent(size: 5_000), to: store)
            let finished = try await commit(sampleContent(size: 5_000), to: store)
            _ = try await store.lease(owner: "worker", now: t0, limit: 10, leaseDuration: 60, routes: nil)
            try await store.recordAttempt(
                id: finished.id, owner: "worker",
                result: attempt([RelayRecipient(address: "alice@example.com", status: .delivered)], summary: "250 OK", .finished))
            store.close()

            // A crash after the content was written but before its row: never acknowledged.
            let orphan = makeID()
            try Data("half a message".utf8).write(to: URL(fileURLWithPath: queue.spoolPath + "/" + orphan.rawValue))
            // A crash between a finished message's commit and the removal of its content.
            try Data("delivered already".utf8).write(to: URL(fileURLWithPath: queue.spoolPath + "/" + finished.id.rawValue))
            // Not named like a queue id: not the store's to delete.
            try Data("notes".utf8).write(to: URL(fileURLWithPath: queue.spoolPath + "/README"))

            let reopened = try queue.open()
            defer { reopened.close() }
            #expect(!queue.spoolFileExists(orphan))
            #expect(!queue.spoolFileExists(finished.id))
            #expect(queue.spoolFileExists(kept.id))
            #expect(FileManager.default.fileExists(atPath: queue.spoolPath + "/README"))
            #expect(try readContent(of: kept.id, from: reopened) == sampleContent(size: 5_000))
            // The embedded queue belongs to one process, so leases found on open are a dead
            // process's: the message leased above is due again at once, not after its lease expires.
            #expect(try await reopened.lease(owner: "other", now: at(30), limit: 10, leaseDuration: 60, routes: nil).map(\.id) == [kept.id])
        }
    }

    @Test("a second process cannot open the same queue")
    func exclusiveOpen() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            #expect(throws: RelayStorageError.self) { _ = try queue.open() }
            store.close()
            let again = try queue.open()
            again.close()
        }
    }

    @Test("50 concurrent commits are all stored, with unique ids and their own content")
    func concurrentCommits() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            let committed = try await withThrowingTaskGroup(of: (RelayQueueID, UInt8).self) { group in
                for index in 0..<50 {
                    group.addTask {
                        let seed = UInt8(index)
                        let message = try await commit(sampleContent(size: 3_000 + index, seed: seed), to: store, chunkSize: 512)
                        return (message.id, seed)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(committed.map(\.0)).count == 50)
            #expect(try await store.counts()[.queued] == 50)
            store.close()

            let reopened = try queue.open()
            defer { reopened.close() }
            for (id, seed) in committed {
                let message = try #require(try await reopened.message(id: id))
                #expect(message.size == 3_000 + Int(seed))
                #expect(try readContent(of: id, from: reopened) == sampleContent(size: message.size, seed: seed))
            }
        }
    }

    @Test("a failed commit leaves nothing behind and does not fail the commits batched with it")
    func failedCommitLeavesNothing() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            // A finished message keeps its row but not its file, so its id can be written again,
            // and only the database insert fails.
            let finished = try await commit(sampleContent(size: 100), to: store)
            _ = try await store.lease(owner: "worker", now: t0, limit: 10, leaseDuration: 60, routes: nil)
            try await store.recordAttempt(
                id: finished.id, owner: "worker",
                result: attempt([RelayRecipient(address: "alice@example.com", status: .delivered)], summary: "250 OK", .finished))
            #expect(!queue.spoolFileExists(finished.id))

            let results = await withTaskGroup(of: (RelayQueueID, Bool).self) { group in
                for index in 0..<20 {
                    let id = index == 7 ? finished.id : makeID()
                    group.addTask {
                        let succeeded = (try? await commit(sampleContent(size: 200), id: id, to: store, now: at(10))) != nil
                        return (id, succeeded)
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            for (id, succeeded) in results {
                #expect(succeeded == (id != finished.id))
                #expect(queue.spoolFileExists(id) == (id != finished.id))
            }
            let original = try #require(try await store.message(id: finished.id))
            #expect(original.state == .delivered)
            #expect(original.receivedAt == t0)
            #expect(try await store.counts() == [.queued: 19, .delivered: 1, .failed: 0, .held: 0, .deleted: 0])
        }
    }
}

@Suite("SQLite queue store: leases")
struct SQLiteQueueLeaseTests {
    @Test("a leased message is not leased again until its lease expires")
    func leaseExcludesLeasedUntilExpiry() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store)

            let first = try await store.lease(owner: "a", now: t0, limit: 10, leaseDuration: 60, routes: nil)
            #expect(first.map(\.id) == [message.id])
            #expect(try await store.lease(owner: "b", now: at(30), limit: 10, leaseDuration: 60, routes: nil).isEmpty)
            #expect(try await store.lease(owner: "a", now: at(59), limit: 10, leaseDuration: 60, routes: nil).isEmpty)
            #expect(try await store.nextDueDate() == at(60))
            #expect(try await store.lease(owner: "b", now: at(60), limit: 10, leaseDuration: 60, routes: nil).map(\.id) == [message.id])
        }
    }

    @Test("only messages whose next attempt is due are leased, soonest first, up to the limit")
    func leaseHonoursNextAttempt() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            #expect(try await store.nextDueDate() == nil)
            // Ids sort opposite to due times, so that only ordering by due time passes.
            let later = try await commit(sampleContent(size: 100), id: .make(millisecondsSinceEpoch: 1_000), to: store, now: at(100))
            let soonest = try await commit(sampleContent(size: 100), id: .make(millisecondsSinceEpoch: 3_000), to: store, now: at(10))
            let middle = try await commit(sampleContent(size: 100), id: .make(millisecondsSinceEpoch: 2_000), to: store, now: at(50))
            #expect(try await store.nextDueDate() == at(10))

            #expect(try await store.lease(owner: "w", now: at(5), limit: 10, leaseDuration: 600, routes: nil).isEmpty)
            let leased = try await store.lease(owner: "w", now: at(100), limit: 2, leaseDuration: 600, routes: nil)
            #expect(leased.map(\.id) == [soonest.id, middle.id])
            #expect(try await store.lease(owner: "w", now: at(100), limit: 10, leaseDuration: 600, routes: nil).map(\.id) == [later.id])
            #expect(try await store.lease(owner: "w", now: at(100), limit: 0, leaseDuration: 600, routes: nil).isEmpty)
        }
    }

    @Test("the route filter leases only the routes asked for")
    func leaseFiltersByRoute() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let graph = try await commit(sampleContent(size: 100), envelope: makeEnvelope(route: "graph"), to: store)
            let smtp = try await commit(sampleContent(size: 100), envelope: makeEnvelope(route: "smtp"), to: store, now: at(1))

            #expect(try await store.lease(owner: "w", now: at(10), limit: 10, leaseDuration: 60, routes: []).isEmpty)
            #expect(try await store.lease(owner: "w", now: at(10), limit: 10, leaseDuration: 60, routes: ["smtp", "connector"]).map(\.id) == [smtp.id])
            #expect(try await store.lease(owner: "w", now: at(10), limit: 10, leaseDuration: 60, routes: nil).map(\.id) == [graph.id])
        }
    }
}

@Suite("SQLite queue store: attempts")
struct SQLiteQueueAttemptTests {
    @Test("partial delivery: the next lease carries only the pending recipient, and delivered never reverts")
    func partialDelivery() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(
                sampleContent(size: 100), envelope: makeEnvelope(recipients: ["x@example.com", "y@example.com"]), to: store)
            let leased = try await store.lease(owner: "a", now: t0, limit: 1, leaseDuration: 60, routes: nil)
            #expect(leased.first?.pendingRecipients == ["x@example.com", "y@example.com"])

            try await store.recordAttempt(
                id: message.id, owner: "a",
                result: attempt(
                    [RelayRecipient(address: "x@example.com", status: .delivered, lastReply: "250 2.0.0 OK"),
                     RelayRecipient(address: "y@example.com", status: .pending, lastReply: "451 4.7.500 Server busy")],
                    summary: "451 4.7.500 Server busy", .deferred(until: at(300))))

            let deferred = try #require(try await store.message(id: message.id))
            #expect(deferred.state == .queued)
            #expect(deferred.nextAttemptAt == at(300))
            #expect(deferred.attempts == 1)
            #expect(deferred.lastError == "451 4.7.500 Server busy")
            #expect(deferred.recipients == [
                RelayRecipient(address: "x@example.com", status: .delivered, lastReply: "250 2.0.0 OK"),
                RelayRecipient(address: "y@example.com", status: .pending, lastReply: "451 4.7.500 Server busy"),
            ])
            #expect(queue.spoolFileExists(message.id))

            // The lease was released, but the message is not due before 300 s.
            #expect(try await store.lease(owner: "b", now: at(299), limit: 1, leaseDuration: 60, routes: nil).isEmpty)
            let retry = try await store.lease(owner: "b", now: at(300), limit: 1, leaseDuration: 60, routes: nil)
            #expect(retry.first?.pendingRecipients == ["y@example.com"])

            // A confused transport reports x as pending again: x stays delivered.
            try await store.recordAttempt(
                id: message.id, owner: "b",
                result: attempt(
                    [RelayRecipient(address: "x@example.com", status: .pending, lastReply: "451 again"),
                     RelayRecipient(address: "y@example.com", status: .delivered, lastReply: "250 2.0.0 OK")],
                    summary: "250 2.0.0 OK", .finished, at: at(300)))
            let done = try #require(try await store.message(id: message.id))
            #expect(done.state == .delivered)
            #expect(done.attempts == 2)
            #expect(done.lastError == nil)
            #expect(done.recipients.map(\.status) == [.delivered, .delivered])
            #expect(done.recipients.first?.lastReply == "250 2.0.0 OK")
        }
    }

    @Test("finished with every recipient delivered: delivered, and the content is removed")
    func finishedDelivered() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), envelope: makeEnvelope(recipients: ["x@example.com", "y@example.com"]), to: store)
            _ = try await store.lease(owner: "a", now: t0, limit: 1, leaseDuration: 60, routes: nil)
            try await store.recordAttempt(
                id: message.id, owner: "a",
                result: attempt(
                    [RelayRecipient(address: "x@example.com", status: .delivered), RelayRecipient(address: "y@example.com", status: .delivered)],
                    summary: "250 2.0.0 OK", .finished))

            let done = try #require(try await store.message(id: message.id))
            #expect(done.state == .delivered)
            #expect(done.lastError == nil)
            #expect(!queue.spoolFileExists(message.id))
            #expect(throws: RelayStorageError(.notFound, "no content for \(message.id)")) { try store.openContent(id: message.id) }
            #expect(try await store.counts() == [.queued: 0, .delivered: 1, .failed: 0, .held: 0, .deleted: 0])
            #expect(try await store.nextDueDate() == nil)
            // Finished messages are never leased again.
            #expect(try await store.lease(owner: "a", now: at(3600), limit: 1, leaseDuration: 60, routes: nil).isEmpty)
        }
    }

    @Test("finished with a recipient failed or left undecided: failed, and the content is removed")
    func finishedFailed() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(
                sampleContent(size: 100), envelope: makeEnvelope(recipients: ["x@example.com", "y@example.com", "z@example.com"]), to: store)
            _ = try await store.lease(owner: "a", now: t0, limit: 1, leaseDuration: 60, routes: nil)
            try await store.recordAttempt(
                id: message.id, owner: "a",
                result: attempt(
                    [RelayRecipient(address: "x@example.com", status: .delivered, lastReply: "250 OK"),
                     RelayRecipient(address: "y@example.com", status: .failed, lastReply: "550 5.7.60 SendAsDenied")],
                    summary: "550 5.7.60 SendAsDenied", .finished))

            let done = try #require(try await store.message(id: message.id))
            #expect(done.state == .failed)
            #expect(done.lastError == "550 5.7.60 SendAsDenied")
            #expect(done.recipients == [
                RelayRecipient(address: "x@example.com", status: .delivered, lastReply: "250 OK"),
                RelayRecipient(address: "y@example.com", status: .failed, lastReply: "550 5.7.60 SendAsDenied"),
                RelayRecipient(address: "z@example.com", status: .failed, lastReply: "550 5.7.60 SendAsDenied"),
            ])
            #expect(done.pendingRecipients.isEmpty)
            #expect(!queue.spoolFileExists(message.id))
            #expect(try await store.counts()[.failed] == 1)
            #expect(try await store.list(state: .failed, limit: 10).map(\.id) == [message.id])
        }
    }

    @Test("another owner took the expired lease: the first owner's record is refused")
    func leaseLost() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store)
            let delivered = attempt([RelayRecipient(address: "alice@example.com", status: .delivered)], summary: "250 OK", .finished)
            _ = try await store.lease(owner: "slow", now: t0, limit: 1, leaseDuration: 60, routes: nil)
            #expect(try await store.lease(owner: "fast", now: at(61), limit: 1, leaseDuration: 60, routes: nil).map(\.id) == [message.id])

            await #expect(throws: RelayStorageError.self) {
                try await store.recordAttempt(id: message.id, owner: "slow", result: delivered)
            }
            let error = await #expect(throws: RelayStorageError.self) {
                try await store.recordAttempt(id: message.id, owner: "slow", result: delivered)
            }
            #expect(error?.code == .leaseLost)
            let untouched = try #require(try await store.message(id: message.id))
            #expect(untouched.attempts == 0)
            #expect(untouched.state == .queued)
            #expect(queue.spoolFileExists(message.id))

            try await store.recordAttempt(id: message.id, owner: "fast", result: delivered)
            #expect(try await store.message(id: message.id)?.state == .delivered)
            // The lease is released with the record: a second record is refused too.
            let again = await #expect(throws: RelayStorageError.self) {
                try await store.recordAttempt(id: message.id, owner: "fast", result: delivered)
            }
            #expect(again?.code == .leaseLost)
            let unknown = await #expect(throws: RelayStorageError.self) {
                try await store.recordAttempt(id: makeID(), owner: "fast", result: delivered)
            }
            #expect(unknown?.code == .notFound)
        }
    }

    @Test("list returns the newest messages first, optionally by state")
    func listNewestFirst() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let oldest = try await commit(sampleContent(size: 10), to: store, now: at(1))
            let middle = try await commit(sampleContent(size: 10), to: store, now: at(2))
            let newest = try await commit(sampleContent(size: 10), to: store, now: at(3))
            #expect(try await store.list(state: nil, limit: 10).map(\.id) == [newest.id, middle.id, oldest.id])
            #expect(try await store.list(state: nil, limit: 2).map(\.id) == [newest.id, middle.id])
            #expect(try await store.list(state: .delivered, limit: 10).isEmpty)
            #expect(try await store.list(state: .queued, limit: 10).first?.recipients == [RelayRecipient(address: "alice@example.com")])
        }
    }

    @Test("enqueue stores content made by the relay itself")
    func enqueueStoresContent() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let id = makeID()
            let content = sampleContent(size: 70_000)
            let message = try await store.enqueue(id: id, content: content, envelope: makeEnvelope(), now: t0)
            #expect(message.size == 70_000)
            #expect(try await store.message(id: id) == message)
            #expect(try readContent(of: id, from: store, maxLength: 65_536) == content)
        }
    }
}
