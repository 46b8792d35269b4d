import Foundation
import NIOCore
import RelayCore
import Testing
@testable import RelayStorage

@Suite("SQLite queue store: waiting without an attempt, and moving to a fallback route")
struct PostponeAndRerouteTests {
    @Test("postpone releases the lease, sets the due time, and counts no attempt")
    func postponeCountsNoAttempt() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store)
            _ = try await store.lease(owner: "a", now: t0, limit: 10, leaseDuration: 600, routes: nil)
            try await store.postpone(id: message.id, owner: "a", until: at(30), route: nil)

            let after = try #require(try await store.message(id: message.id))
            #expect(after.attempts == 0)
            #expect(after.nextAttemptAt == at(30))
            #expect(after.envelope.route == "smtp")
            // Not due before its time, then due again for anyone.
            #expect(try await store.lease(owner: "b", now: at(29), limit: 10, leaseDuration: 600, routes: nil).isEmpty)
            #expect(try await store.lease(owner: "b", now: at(30), limit: 10, leaseDuration: 600, routes: nil).map(\.id) == [message.id])
        }
    }

    @Test("postpone by a worker that no longer holds the lease is refused")
    func postponeNeedsTheLease() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store)
            _ = try await store.lease(owner: "a", now: t0, limit: 10, leaseDuration: 600, routes: nil)
            await #expect(throws: RelayStorageError.self) {
                try await store.postpone(id: message.id, owner: "b", until: at(30), route: nil)
            }
            #expect(try await store.message(id: message.id)?.nextAttemptAt == t0)
        }
    }

    @Test("a postponement to another route moves the message there, in the row and in the envelope, and survives reopening")
    func postponeToFallbackRoute() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            let message = try await commit(sampleContent(size: 100), to: store)
            _ = try await store.lease(owner: "a", now: t0, limit: 10, leaseDuration: 600, routes: nil)
            try await store.postpone(id: message.id, owner: "a", until: t0, route: "fallback")
            #expect(try await store.lease(owner: "a", now: t0, limit: 10, leaseDuration: 600, routes: ["smtp"]).isEmpty)
            store.close()

            let reopened = try queue.open()
            defer { reopened.close() }
            let leased = try await reopened.lease(owner: "a", now: t0, limit: 10, leaseDuration: 600, routes: ["fallback"])
            #expect(leased.map(\.id) == [message.id])
            #expect(leased.first?.envelope.route == "fallback")
            #expect(leased.first?.envelope.sender == message.envelope.sender)
        }
    }

    @Test("an attempt may move an undelivered message to another route, and counts as an attempt")
    func attemptReroutes() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store)
            _ = try await store.lease(owner: "a", now: t0, limit: 10, leaseDuration: 600, routes: nil)
            var result = attempt([RelayRecipient(address: "alice@example.com", lastReply: "413")], summary: "HTTP 413", .deferred(until: t0))
            result.reroute = "fallback"
            try await store.recordAttempt(id: message.id, owner: "a", result: result)
            let after = try #require(try await store.message(id: message.id))
            #expect(after.envelope.route == "fallback")
            #expect(after.attempts == 1)
            #expect(after.state == .queued)
        }
    }

    @Test("a message with a delivered recipient never changes route: the attempt is refused whole")
    func deliveredRecipientPinsTheRoute() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), envelope: makeEnvelope(recipients: ["a@example.com", "b@example.com"]), to: store)
            _ = try await store.lease(owner: "a", now: t0, limit: 10, leaseDuration: 600, routes: nil)
            try await store.recordAttempt(id: message.id, owner: "a", result: attempt(
                [RelayRecipient(address: "a@example.com", status: .delivered, lastReply: "250")], summary: "250", .deferred(until: t0)))
            _ = try await store.lease(owner: "a", now: t0, limit: 10, leaseDuration: 600, routes: nil)
            var result = attempt([RelayRecipient(address: "b@example.com", lastReply: "432")], summary: "432", .deferred(until: at(10)))
            result.reroute = "fallback"
            await #expect(throws: RelayStorageError.self) {
                try await store.recordAttempt(id: message.id, owner: "a", result: result)
            }
            let after = try #require(try await store.message(id: message.id))
            #expect(after.envelope.route == "smtp")
            #expect(after.attempts == 1)
        }
    }
}
