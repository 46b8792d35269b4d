import Foundation
import GRDB
import NIOCore
import RelayCore
import Testing
@testable import RelayStorage

// The message trace kept with the queue: search, timeline, administrator
// actions, kept bodies, pruning, mail flow and statistics, on real SQLite.

func traceEnvelope(
    sender: String = "scanner@printer.local", recipients: [String] = ["alice@example.com"], client: String = "printers",
    address: String = "192.0.2.10", route: String = "smtp", messageID: String? = nil
) -> RelayEnvelope {
    RelayEnvelope(
        sender: sender, recipients: recipients, clientName: client, clientAddress: address, heloName: "printer.local",
        tlsVersion: "TLSv1.3", route: route, messageID: messageID)
}

enum TestOutcome {
    case delivered
    case failed
    case deferred(until: Date)
    case rerouted(to: String, until: Date)
}

/// Leases `message` alone (by its route, which the test keeps to itself) and records one
/// attempt that started at `time` and took a second.
func settle(
    _ message: RelayQueuedMessage, in store: SQLiteQueueStore, at time: Date, _ outcome: TestOutcome,
    summary: String = "250 2.0.0 OK", detail: RelayAttemptDetail? = nil
) async throws {
    let route = message.envelope.route
    let leased = try await store.lease(owner: "worker", now: time, limit: 100, leaseDuration: 600, routes: [route])
    try #require(leased.map(\.id) == [message.id], "route \(route) should hold only \(message.id)")
    try await store.recordAttempt(id: message.id, owner: "worker", result: attemptResult(for: message, at: time, outcome, summary: summary, detail: detail))
}

func attemptResult(
    for message: RelayQueuedMessage, at time: Date, _ outcome: TestOutcome, summary: String, detail: RelayAttemptDetail? = nil
) -> RelayAttemptResult {
    let updates: [RelayRecipient]
    let disposition: RelayAttemptResult.Disposition
    var reroute: String?
    switch outcome {
    case .delivered:
        updates = message.envelope.recipients.map { RelayRecipient(address: $0, status: .delivered, lastReply: summary) }
        disposition = .finished
    case .failed:
        updates = message.envelope.recipients.map { RelayRecipient(address: $0, status: .failed, lastReply: summary) }
        disposition = .finished
    case .deferred(let until):
        updates = []
        disposition = .deferred(until: until)
    case .rerouted(let route, let until):
        updates = []
        disposition = .deferred(until: until)
        reroute = route
    }
    return RelayAttemptResult(
        startedAt: time, finishedAt: time.addingTimeInterval(1), route: message.envelope.route, recipientUpdates: updates,
        summary: summary, disposition: disposition, reroute: reroute, detail: detail)
}

func count(_ table: String, in store: SQLiteQueueStore) async throws -> Int {
    try await store.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? -1 }
}

/// Every page of `query`, following the cursors; fails on a runaway loop.
func allPages(_ query: RelayTraceQuery, of store: SQLiteQueueStore) async throws -> [[RelayTraceSummary]] {
    var pages: [[RelayTraceSummary]] = []
    var query = query
    for _ in 0..<1_000 {
        let page = try await store.searchTrace(query)
        pages.append(page.messages)
        guard let next = page.nextCursor else { return pages }
        query.cursor = next
    }
    Issue.record("paging did not end")
    return pages
}

@Suite("SQLite trace store: search")
struct SQLiteTraceSearchTests {
    @Test("each filter alone and together: sender and recipient by case-insensitive substring, the rest exact")
    func filters() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(inlineContentLimit: 64 * 1024)
            defer { store.close() }
            let a = try await commit(
                sampleContent(size: 100),
                envelope: traceEnvelope(sender: "Scanner@Printer.Local", recipients: ["alice@example.com"], messageID: "<a1@printer.local>"),
                to: store, now: t0)
            try await settle(a, in: store, at: at(1), .delivered)
            let b = try await commit(
                sampleContent(size: 100),
                envelope: traceEnvelope(
                    sender: "app@apps.example", recipients: ["Bob@Example.com", "carol@example.org"], client: "apps",
                    address: "192.0.2.20", route: "graph", messageID: "<b2@apps>"),
                to: store, now: at(60))
            try await settle(b, in: store, at: at(61), .deferred(until: at(3600)), summary: "451 4.7.500 Server busy")
            let c = try await commit(
                sampleContent(size: 100), envelope: traceEnvelope(sender: "", recipients: ["dave@example.net"], route: "smtp"),
                to: store, now: at(120))

            func ids(_ query: RelayTraceQuery) async throws -> [RelayQueueID] {
                try await store.searchTrace(query).messages.map { RelayQueueID(rawValue: $0.id) }
            }
            #expect(try await ids(RelayTraceQuery()) == [c.id, b.id, a.id])
            #expect(try await ids(RelayTraceQuery(sender: "printer.local")) == [a.id])
            #expect(try await ids(RelayTraceQuery(sender: "SCANNER@")) == [a.id])
            #expect(try await ids(RelayTraceQuery(sender: "nobody")) == [])
            #expect(try await ids(RelayTraceQuery(recipient: "bob@EXAMPLE")) == [b.id])
            #expect(try await ids(RelayTraceQuery(recipient: "example.org")) == [b.id])
            #expect(try await ids(RelayTraceQuery(recipient: "example")) == [c.id, b.id, a.id])
            #expect(try await ids(RelayTraceQuery(client: "printers")) == [c.id, a.id])
            #expect(try await ids(RelayTraceQuery(client: "print")) == [], "client is exact")
            #expect(try await ids(RelayTraceQuery(route: "graph")) == [b.id])
            #expect(try await ids(RelayTraceQuery(route: "grap")) == [], "route is exact")
            #expect(try await ids(RelayTraceQuery(messageID: "b2@apps")) == [b.id])
            #expect(try await ids(RelayTraceQuery(messageID: "<b2@apps>")) == [b.id])
            #expect(try await ids(RelayTraceQuery(messageID: "b2")) == [], "Message-ID is exact")
            #expect(try await ids(RelayTraceQuery(queueID: a.id.rawValue)) == [a.id])
            #expect(try await ids(RelayTraceQuery(queueID: String(a.id.rawValue.dropLast()))) == [])
            #expect(try await ids(RelayTraceQuery(since: at(60))) == [c.id, b.id])
            #expect(try await ids(RelayTraceQuery(until: at(60))) == [a.id], "until is exclusive")
            #expect(try await ids(RelayTraceQuery(since: at(60), until: at(120))) == [b.id])
            #expect(try await ids(RelayTraceQuery(status: .delivered)) == [a.id])
            #expect(try await ids(RelayTraceQuery(status: .deferred)) == [b.id])
            #expect(try await ids(RelayTraceQuery(status: .queued)) == [c.id])
            #expect(try await ids(RelayTraceQuery(sender: "printer", status: .delivered, client: "printers", route: "smtp")) == [a.id])
            #expect(try await ids(RelayTraceQuery(sender: "printer", status: .queued)) == [])

            let summaries = try await store.searchTrace(RelayTraceQuery()).messages
            let summaryB = try #require(summaries.first { $0.id == b.id.rawValue })
            #expect(summaryB.client == "apps")
            #expect(summaryB.clientAddress == "192.0.2.20")
            #expect(summaryB.route == "graph")
            #expect(summaryB.messageID == "<b2@apps>")
            #expect(summaryB.recipients.map(\.address) == ["Bob@Example.com", "carol@example.org"])
            #expect(summaryB.attempts == 1)
            #expect(summaryB.nextAttemptAt == at(3600))
            #expect(summaryB.lastReply == "451 4.7.500 Server busy")
            #expect(summaryB.finishedAt == nil)
            let summaryA = try #require(summaries.first { $0.id == a.id.rawValue })
            #expect(summaryA.finishedAt == at(2))
            #expect(summaryA.nextAttemptAt == nil)
            #expect(summaryA.size == 100)
            #expect(summaries.first { $0.id == c.id.rawValue }?.sender == "")
        }
    }

    @Test("paging newest first visits every message once, ties on the arrival time broken by id, new arrivals not mixed in")
    func paging() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(inlineContentLimit: 64 * 1024)
            defer { store.close() }
            var committed: [RelayQueuedMessage] = []
            for index in 0..<23 {
                // Three messages share each arrival second.
                let client = index.isMultiple(of: 2) ? "even" : "odd"
                committed.append(try await commit(
                    sampleContent(size: 50), envelope: traceEnvelope(client: client), to: store, now: at(Double(index / 3))))
            }
            let expected = committed.sorted { ($0.receivedAt, $0.id.rawValue) > ($1.receivedAt, $1.id.rawValue) }.map(\.id.rawValue)

            let first = try await store.searchTrace(RelayTraceQuery(limit: 5))
            #expect(first.messages.map(\.id) == Array(expected.prefix(5)))
            // A message arriving between pages belongs before the first page, not in a later one.
            let newcomer = try await commit(sampleContent(size: 50), to: store, now: at(1000))
            var pages = [first.messages]
            var cursor = first.nextCursor
            while let next = cursor, pages.count < 100 {
                let page = try await store.searchTrace(RelayTraceQuery(limit: 5, cursor: next))
                pages.append(page.messages)
                cursor = page.nextCursor
            }
            #expect(pages.map(\.count) == [5, 5, 5, 5, 3])
            #expect(pages.flatMap { $0 }.map(\.id) == expected)
            #expect(!pages.flatMap { $0 }.contains { $0.id == newcomer.id.rawValue })

            // With a filter across pages.
            let odd = try await allPages(RelayTraceQuery(client: "odd", limit: 4), of: store)
            let expectedOdd = committed.filter { $0.envelope.clientName == "odd" }
                .sorted { ($0.receivedAt, $0.id.rawValue) > ($1.receivedAt, $1.id.rawValue) }.map(\.id.rawValue)
            #expect(odd.flatMap { $0 }.map(\.id) == expectedOdd)
            #expect(odd.map(\.count) == [4, 4, 3])

            // A page that ends exactly at the last message has no next cursor.
            #expect(try await store.searchTrace(RelayTraceQuery(limit: 24)).nextCursor == nil)
            #expect(try await store.searchTrace(RelayTraceQuery(limit: 23)).nextCursor != nil)
            // The limit is clamped to 1...500.
            #expect(try await store.searchTrace(RelayTraceQuery(limit: 0)).messages.count == 1)
            #expect(try await store.searchTrace(RelayTraceQuery(limit: -5)).messages.count == 1)
            #expect(try await store.searchTrace(RelayTraceQuery(limit: 100_000)).messages.count == 24)
        }
    }

    @Test("a malformed cursor is refused with a storage error that says so")
    func malformedCursor() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let junkJSON = Data(#"{"receivedAt":"soon","id":"x"}"#.utf8).base64EncodedString()
            for cursor in ["not a cursor!", "", junkJSON, "eyJ9"] {
                do {
                    _ = try await store.searchTrace(RelayTraceQuery(cursor: cursor))
                    Issue.record("cursor \(cursor) was accepted")
                } catch let error as RelayStorageError {
                    #expect(error.code == .invalidRequest)
                    #expect(error.detail.contains("cursor"))
                }
            }
        }
    }
}

@Suite("SQLite trace store: timeline")
struct SQLiteTraceTimelineTests {
    @Test("a deferred then delivered message: arrival, attempts with their outcomes, and stored events, oldest first")
    func deferredThenDelivered() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let envelope = RelayEnvelope(
                sender: "scanner@contoso.com", recipients: ["alice@example.com", "bob@example.com"], clientName: "printers",
                clientAddress: "192.0.2.10", heloName: "printer.local", tlsVersion: "TLSv1.3", authenticatedAs: "scanner",
                route: "m365", messageID: "<scan-1@printer.local>", originalSender: "scanner@printer.local",
                policyNotes: ["sender rewritten", "Date added"])
            let message = try await commit(sampleContent(size: 1234), envelope: envelope, to: store, now: t0)
            try await settle(
                message, in: store, at: at(10), .deferred(until: at(300)), summary: "451 4.7.500 Server busy",
                detail: RelayAttemptDetail(transport: "smtp", sendingMailbox: "relay@contoso.com", replyClass: "throttled"))
            _ = try await store.apply(.hold, to: message.id, by: "admin-api 127.0.0.1", now: at(100))
            _ = try await store.apply(.release, to: message.id, by: "cli uid 0", now: at(200))
            try await settle(
                message, in: store, at: at(300), .delivered, summary: "250 2.6.0 <scan-1@printer.local> Queued mail for delivery",
                detail: RelayAttemptDetail(transport: "smtp", sendingMailbox: "relay@contoso.com", upstreamID: "MS-123"))

            let timeline = try #require(try await store.timeline(id: message.id))
            #expect(timeline.events.map(\.kind) == [.received, .attempt, .deferred, .held, .released, .attempt, .delivered])
            #expect(timeline.events.map(\.at) == [t0, at(10), at(11), at(100), at(200), at(300), at(301)])
            #expect(timeline.envelope == envelope)
            #expect(!timeline.hasContent)
            #expect(timeline.message.status == .delivered)
            #expect(timeline.message.attempts == 2)
            #expect(timeline.message.finishedAt == at(301))
            #expect(timeline.message.lastReply == "250 2.6.0 <scan-1@printer.local> Queued mail for delivery")

            let received = timeline.events[0]
            #expect(received.details["client"] == "printers")
            #expect(received.details["client_address"] == "192.0.2.10")
            #expect(received.details["helo"] == "printer.local")
            #expect(received.details["tls"] == "TLSv1.3")
            #expect(received.details["auth_identity"] == "scanner")
            #expect(received.details["sender"] == "scanner@contoso.com")
            #expect(received.details["original_sender"] == "scanner@printer.local")
            #expect(received.details["recipient_count"] == "2")
            #expect(received.details["recipients"] == "alice@example.com, bob@example.com")
            #expect(received.details["size"] == "1234")
            #expect(received.details["message_id"] == "<scan-1@printer.local>")
            #expect(received.details["policy"] == "sender rewritten; Date added")
            #expect(received.summary.contains("printers") && received.summary.contains("2 recipients"))

            let firstAttempt = timeline.events[1]
            #expect(firstAttempt.details["route"] == "m365")
            #expect(firstAttempt.details["transport"] == "smtp")
            #expect(firstAttempt.details["mailbox"] == "relay@contoso.com")
            #expect(firstAttempt.details["reply"] == "451 4.7.500 Server busy")
            #expect(firstAttempt.details["reply_class"] == "throttled")
            #expect(firstAttempt.details["duration_ms"] == "1000")
            #expect(firstAttempt.details["outcome"] == "deferred")
            #expect(firstAttempt.summary.contains("451 4.7.500 Server busy"))
            #expect(timeline.events[2].details["next_attempt_at"] == at(300).ISO8601Format())
            #expect(timeline.events[2].summary.contains(at(300).ISO8601Format()))
            #expect(timeline.events[3].details["by"] == "admin-api 127.0.0.1")
            #expect(timeline.events[4].details["by"] == "cli uid 0")
            #expect(timeline.events[5].details["upstream_id"] == "MS-123")
            #expect(timeline.events[5].details["outcome"] == "delivered")
            #expect(timeline.events[6].summary.contains("MS-123"))
            for event in timeline.events {
                #expect(!event.summary.isEmpty && !event.summary.contains("\n"), "\(event.kind): one readable line")
            }

            #expect(try await store.timeline(id: makeID()) == nil)
        }
    }

    @Test("moves to a fallback route, by postponement and by an attempt, appear as rerouted events")
    func reroutes() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), envelope: traceEnvelope(route: "smtp"), to: store, now: t0)
            _ = try await store.lease(owner: "worker", now: at(1), limit: 10, leaseDuration: 600, routes: ["smtp"])
            try await store.postpone(id: message.id, owner: "worker", until: at(5), route: "fallback")
            let moved = try #require(try await store.message(id: message.id))
            try await settle(moved, in: store, at: at(5), .rerouted(to: "graph", until: at(50)), summary: "550 5.7.708 Access denied")

            let timeline = try #require(try await store.timeline(id: message.id))
            let rerouted = timeline.events.filter { $0.kind == .rerouted }
            #expect(rerouted.count == 2)
            #expect(rerouted.contains { $0.details["from_route"] == "smtp" && $0.details["route"] == "fallback" })
            #expect(rerouted.contains { $0.details["from_route"] == "fallback" && $0.details["route"] == "graph" && $0.at == at(6) })
            #expect(timeline.events.first { $0.kind == .attempt }?.details["outcome"] == "rerouted")
            #expect(timeline.message.route == "graph")
            #expect(timeline.message.status == .deferred)
            #expect(timeline.hasContent)

            // A reroute counts as a deferral in the mail flow.
            let hour = Date(timeIntervalSince1970: (t0.timeIntervalSince1970 / 3600).rounded(.down) * 3600)
            let flow = try await store.flow(since: hour, until: hour.addingTimeInterval(3600))
            #expect(flow == [RelayFlowHour(start: hour, delivered: 0, deferred: 1, failed: 0)])
        }
    }

    @Test("a bounced event marks a failed message bounced; events need a known message")
    func bouncedEvent() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store, now: t0)
            try await settle(message, in: store, at: at(1), .failed, summary: "550 5.1.1 User unknown")
            #expect(try await store.searchTrace(RelayTraceQuery(status: .failed)).messages.map(\.id) == [message.id.rawValue])
            try await store.recordEvent(
                RelayTraceEvent(at: at(3), kind: .bounced, summary: "Delivery status notification queued", details: ["dsn_id": "X"]),
                for: message.id)
            #expect(try await store.searchTrace(RelayTraceQuery(status: .failed)).messages.isEmpty)
            #expect(try await store.searchTrace(RelayTraceQuery(status: .bounced)).messages.map(\.id) == [message.id.rawValue])
            let timeline = try #require(try await store.timeline(id: message.id))
            #expect(timeline.events.map(\.kind) == [.received, .attempt, .failed, .bounced])
            #expect(timeline.events.last?.details == ["dsn_id": "X"])
            #expect(timeline.message.status == .bounced)

            await #expect(throws: RelayStorageError.self) {
                try await store.recordEvent(RelayTraceEvent(at: t0, kind: .bounced, summary: "x"), for: makeID())
            }
        }
    }
}

@Suite("SQLite trace store: administrator actions")
struct SQLiteQueueActionTests {
    @Test("retry makes a deferred message due now; refused for a finished message and unknown ids")
    func retry() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store, now: t0)
            try await settle(message, in: store, at: at(1), .deferred(until: at(3600)))
            #expect(try await store.lease(owner: "worker", now: at(100), limit: 10, leaseDuration: 60, routes: nil).isEmpty)

            let summary = try await store.apply(.retry, to: message.id, by: "admin-api 127.0.0.1", now: at(100))
            #expect(summary.status == .deferred)
            #expect(summary.nextAttemptAt == at(100))
            #expect(try await store.lease(owner: "worker", now: at(100), limit: 10, leaseDuration: 60, routes: nil).map(\.id) == [message.id])
            let retried = try #require(try await store.timeline(id: message.id)?.events.last)
            #expect(retried.kind == .retried)
            #expect(retried.at == at(100))
            #expect(retried.details["by"] == "admin-api 127.0.0.1")

            try await store.recordAttempt(
                id: message.id, owner: "worker", result: attemptResult(for: message, at: at(100), .delivered, summary: "250 OK"))
            do {
                _ = try await store.apply(.retry, to: message.id, by: "cli", now: at(200))
                Issue.record("retry of a delivered message was accepted")
            } catch let RelayQueueActionError.notApplicable(reason) {
                #expect(reason.contains("delivered"))
            }
            await #expect(throws: RelayQueueActionError.notFound("no message \(RelayQueueID(rawValue: "0000000000000000")) in the queue or the trace")) {
                _ = try await store.apply(.retry, to: RelayQueueID(rawValue: "0000000000000000"), by: "cli", now: at(200))
            }
        }
    }

    @Test("hold keeps a message from delivery until release; release makes it due now")
    func holdAndRelease() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store, now: t0)
            let held = try await store.apply(.hold, to: message.id, by: "admin-api 127.0.0.1", now: at(10))
            #expect(held.status == .held)
            #expect(held.nextAttemptAt == nil)
            #expect(try await store.message(id: message.id)?.state == .held)
            #expect(try await store.lease(owner: "worker", now: at(100_000), limit: 10, leaseDuration: 60, routes: nil).isEmpty)
            #expect(try await store.nextDueDate() == nil)
            #expect(try await store.queueStatistics().counts[.held] == 1)
            #expect(try await store.searchTrace(RelayTraceQuery(status: .held)).messages.map(\.id) == [message.id.rawValue])
            #expect(try await store.timeline(id: message.id)?.hasContent == true)

            do {
                _ = try await store.apply(.hold, to: message.id, by: "cli", now: at(11))
                Issue.record("hold of a held message was accepted")
            } catch let RelayQueueActionError.notApplicable(reason) {
                #expect(reason.contains("held"))
            }
            await #expect(throws: RelayQueueActionError.self) {
                _ = try await store.apply(.retry, to: message.id, by: "cli", now: at(11))
            }

            let released = try await store.apply(.release, to: message.id, by: "cli uid 0", now: at(20))
            #expect(released.status == .queued)
            #expect(released.nextAttemptAt == at(20))
            do {
                _ = try await store.apply(.release, to: message.id, by: "cli", now: at(21))
                Issue.record("release of a queued message was accepted")
            } catch let RelayQueueActionError.notApplicable(reason) {
                #expect(reason.contains("queued"))
            }
            #expect(try await store.lease(owner: "worker", now: at(20), limit: 10, leaseDuration: 60, routes: nil).map(\.id) == [message.id])
            let events = try #require(try await store.timeline(id: message.id)?.events)
            #expect(events.map(\.kind) == [.received, .held, .released])
            #expect(events.map { $0.details["by"] } == [nil, "admin-api 127.0.0.1", "cli uid 0"])
        }
    }

    @Test("hold during an attempt: a deferral leaves the message held, a finish delivers it as usual")
    func holdDuringLease() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let deferred = try await commit(sampleContent(size: 100), envelope: traceEnvelope(route: "one"), to: store, now: t0)
            let finished = try await commit(sampleContent(size: 100), envelope: traceEnvelope(route: "two"), to: store, now: t0)
            let leased = try await store.lease(owner: "worker", now: at(1), limit: 10, leaseDuration: 600, routes: nil)
            #expect(Set(leased.map(\.id)) == [deferred.id, finished.id])

            #expect(try await store.apply(.hold, to: deferred.id, by: "cli", now: at(2)).status == .held)
            #expect(try await store.apply(.hold, to: finished.id, by: "cli", now: at(2)).status == .held)
            try await store.recordAttempt(
                id: deferred.id, owner: "worker", result: attemptResult(for: deferred, at: at(1), .deferred(until: at(60)), summary: "451 busy"))
            try await store.recordAttempt(
                id: finished.id, owner: "worker", result: attemptResult(for: finished, at: at(1), .delivered, summary: "250 OK"))

            let stillHeld = try #require(try await store.message(id: deferred.id))
            #expect(stillHeld.state == .held)
            #expect(stillHeld.attempts == 1)
            #expect(try await store.lease(owner: "worker", now: at(1000), limit: 10, leaseDuration: 60, routes: nil).isEmpty)
            #expect(try await store.message(id: finished.id)?.state == .delivered)
            #expect(!queue.spoolFileExists(finished.id))
            #expect(queue.spoolFileExists(deferred.id))

            let released = try await store.apply(.release, to: deferred.id, by: "cli", now: at(1000))
            #expect(released.status == .deferred)
            #expect(try await store.lease(owner: "worker", now: at(1000), limit: 10, leaseDuration: 60, routes: nil).map(\.id) == [deferred.id])
        }
    }

    @Test("delete is refused while an attempt holds the message, then removes its content for good")
    func delete() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store, now: t0)
            _ = try await store.lease(owner: "worker", now: at(1), limit: 10, leaseDuration: 600, routes: nil)
            do {
                _ = try await store.apply(.delete, to: message.id, by: "cli", now: at(2))
                Issue.record("delete of a leased message was accepted")
            } catch let RelayQueueActionError.busy(reason) {
                #expect(reason.contains(message.id.rawValue))
            }
            #expect(queue.spoolFileExists(message.id))
            try await store.recordAttempt(
                id: message.id, owner: "worker", result: attemptResult(for: message, at: at(1), .deferred(until: at(60)), summary: "451 busy"))

            let deleted = try await store.apply(.delete, to: message.id, by: "admin-api 127.0.0.1", now: at(30))
            #expect(deleted.status == .deleted)
            #expect(deleted.finishedAt == at(30))
            #expect(deleted.nextAttemptAt == nil)
            #expect(!queue.spoolFileExists(message.id))
            #expect(throws: RelayStorageError.self) { try store.openContent(id: message.id) }
            #expect(try await store.lease(owner: "worker", now: at(100_000), limit: 10, leaseDuration: 60, routes: nil).isEmpty)
            let timeline = try #require(try await store.timeline(id: message.id))
            #expect(!timeline.hasContent)
            #expect(timeline.events.last?.kind == .deleted)
            #expect(timeline.events.last?.details["by"] == "admin-api 127.0.0.1")
            #expect(try await store.counts()[.deleted] == 1)
            do {
                _ = try await store.apply(.delete, to: message.id, by: "cli", now: at(40))
                Issue.record("a second delete was accepted")
            } catch let RelayQueueActionError.notApplicable(reason) {
                #expect(reason.contains("deleted"))
            }
            await #expect(throws: RelayQueueActionError.self) {
                _ = try await store.apply(.release, to: message.id, by: "cli", now: at(40))
            }
        }
    }

    @Test("delete after a lease expired: allowed, inline content removed, and the late attempt is refused")
    func deleteAfterExpiredLease() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(inlineContentLimit: 64 * 1024)
            defer { store.close() }
            let message = try await commit(sampleContent(size: 100), to: store, now: t0)
            _ = try await store.lease(owner: "worker", now: at(1), limit: 10, leaseDuration: 60, routes: nil)
            #expect(try await store.apply(.delete, to: message.id, by: "cli", now: at(61)).status == .deleted)
            #expect(try await count("contents", in: store) == 0)
            #expect(throws: RelayStorageError.self) { try store.openContent(id: message.id) }
            do {
                try await store.recordAttempt(
                    id: message.id, owner: "worker", result: attemptResult(for: message, at: at(1), .delivered, summary: "250 OK"))
                Issue.record("an attempt on a deleted message was recorded")
            } catch let error as RelayStorageError {
                #expect(error.code == .leaseLost)
            }
            #expect(try await store.message(id: message.id)?.state == .deleted)
        }
    }
}

@Suite("SQLite trace store: statistics, flow, kept bodies, pruning")
struct SQLiteTraceMaintenanceTests {
    @Test("every status is derived, searchable and counted")
    func statusesAndStatistics() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(inlineContentLimit: 64 * 1024)
            defer { store.close() }
            func make(_ route: String, at time: Date) async throws -> RelayQueuedMessage {
                try await commit(sampleContent(size: 100), envelope: traceEnvelope(route: route), to: store, now: time)
            }
            #expect(try await store.queueStatistics() == RelayQueueStatistics(
                counts: Dictionary(uniqueKeysWithValues: RelayTraceStatus.allCases.map { ($0, 0) }), oldestQueuedAt: nil))

            let queued = try await make("r-queued", at: at(5))
            let deferred = try await make("r-deferred", at: at(1))
            try await settle(deferred, in: store, at: at(2), .deferred(until: at(1000)))
            let delivered = try await make("r-delivered", at: at(3))
            try await settle(delivered, in: store, at: at(4), .delivered)
            let failed = try await make("r-failed", at: at(5))
            try await settle(failed, in: store, at: at(6), .failed)
            let bounced = try await make("r-bounced", at: at(7))
            try await settle(bounced, in: store, at: at(8), .failed)
            try await store.recordEvent(RelayTraceEvent(at: at(9), kind: .bounced, summary: "DSN queued"), for: bounced.id)
            let held = try await make("r-held", at: at(0))
            _ = try await store.apply(.hold, to: held.id, by: "cli", now: at(11))
            let deleted = try await make("r-deleted", at: at(12))
            _ = try await store.apply(.delete, to: deleted.id, by: "cli", now: at(13))

            let expected: [RelayTraceStatus: RelayQueueID] = [
                .queued: queued.id, .deferred: deferred.id, .delivered: delivered.id, .failed: failed.id,
                .bounced: bounced.id, .held: held.id, .deleted: deleted.id,
            ]
            for status in RelayTraceStatus.allCases {
                let found = try await store.searchTrace(RelayTraceQuery(status: status)).messages
                #expect(found.map(\.id) == [expected[status]?.rawValue], "status \(status)")
                #expect(found.map(\.status) == [status])
            }
            let statistics = try await store.queueStatistics()
            #expect(statistics.counts == Dictionary(uniqueKeysWithValues: RelayTraceStatus.allCases.map { ($0, 1) }))
            // The held message is older but waits for a person, not for delivery.
            #expect(statistics.oldestQueuedAt == at(1))
            #expect(try await store.counts() == [.queued: 2, .delivered: 1, .failed: 2, .held: 1, .deleted: 1])
        }
    }

    @Test("mail flow: hour-aligned UTC buckets of attempts by outcome, every hour present")
    func flow() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(inlineContentLimit: 64 * 1024)
            defer { store.close() }
            let hour = Date(timeIntervalSince1970: (t0.timeIntervalSince1970 / 3600).rounded(.down) * 3600)
            func attempt(_ route: String, at time: Date, _ outcome: TestOutcome) async throws {
                let message = try await commit(sampleContent(size: 100), envelope: traceEnvelope(route: route), to: store, now: time)
                try await settle(message, in: store, at: time, outcome)
            }
            try await attempt("a", at: hour.addingTimeInterval(10), .deferred(until: hour.addingTimeInterval(999_999)))
            try await attempt("b", at: hour.addingTimeInterval(3000), .delivered)
            try await attempt("c", at: hour.addingTimeInterval(3598), .delivered)  // ends 1 s before the hour's end
            try await attempt("d", at: hour.addingTimeInterval(2 * 3600 + 5), .failed)
            try await attempt("e", at: hour.addingTimeInterval(2 * 3600 + 6), .rerouted(to: "x", until: hour.addingTimeInterval(999_999)))
            try await attempt("f", at: hour.addingTimeInterval(3599), .failed)  // ends exactly at the next hour

            let flow = try await store.flow(since: hour, until: hour.addingTimeInterval(3 * 3600))
            #expect(flow == [
                RelayFlowHour(start: hour, delivered: 2, deferred: 1, failed: 0),
                RelayFlowHour(start: hour.addingTimeInterval(3600), delivered: 0, deferred: 0, failed: 1),
                RelayFlowHour(start: hour.addingTimeInterval(7200), delivered: 0, deferred: 1, failed: 1),
            ])
            // Hours start at or after `since`.
            let later = try await store.flow(since: hour.addingTimeInterval(1), until: hour.addingTimeInterval(3 * 3600))
            #expect(later.map(\.start) == [hour.addingTimeInterval(3600), hour.addingTimeInterval(7200)])
            #expect(try await store.flow(since: hour, until: hour) == [])
            #expect(try await store.flow(since: hour.addingTimeInterval(-24 * 3600), until: hour).count == 24)
            await #expect(throws: RelayStorageError.self) {
                _ = try await store.flow(since: Date(timeIntervalSince1970: 0), until: hour)
            }
        }
    }

    @Test("keep_bodies off: content goes when the message finishes")
    func bodiesRemovedByDefault() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            let message = try await commit(sampleContent(size: 500), to: store, now: t0)
            #expect(try await store.timeline(id: message.id)?.hasContent == true)
            try await settle(message, in: store, at: at(1), .delivered)
            #expect(!queue.spoolFileExists(message.id))
            #expect(try await store.timeline(id: message.id)?.hasContent == false)
            #expect(throws: RelayStorageError.self) { try store.openContent(id: message.id) }
        }
    }

    @Test("keep_bodies on: content stays after the finish, survives reopening, and is pruned after bodiesBefore", arguments: [0, 64 * 1024])
    func bodiesKept(inlineContentLimit: Int) async throws {
        try await TemporaryQueue.with { queue in
            let content = sampleContent(size: 500)
            let store = try queue.open(inlineContentLimit: inlineContentLimit, keepBodies: 3600)
            let message = try await commit(content, to: store, now: t0)
            try await settle(message, in: store, at: at(1), .delivered)
            #expect(try await store.timeline(id: message.id)?.hasContent == true)
            #expect(try readContent(of: message.id, from: store) == content)
            #expect(queue.spoolFileExists(message.id) == (inlineContentLimit == 0))
            store.close()

            let reopened = try queue.open(inlineContentLimit: inlineContentLimit, keepBodies: 3600)
            defer { reopened.close() }
            #expect(try readContent(of: message.id, from: reopened) == content)
            #expect(queue.spoolFileExists(message.id) == (inlineContentLimit == 0))

            // Finished at at(2): not yet past bodiesBefore at(2).
            #expect(try await reopened.prune(before: t0, bodiesBefore: at(2), batchSize: 10) == 0)
            #expect(try readContent(of: message.id, from: reopened) == content)
            #expect(try await reopened.prune(before: t0, bodiesBefore: at(3600), batchSize: 10) == 0)
            let timeline = try #require(try await reopened.timeline(id: message.id))
            #expect(!timeline.hasContent)
            #expect(timeline.message.status == .delivered)
            #expect(!queue.spoolFileExists(message.id))
            #expect(try await count("contents", in: reopened) == 0)
            #expect(throws: RelayStorageError.self) { try reopened.openContent(id: message.id) }
        }
    }

    @Test("pruning a kept message removes its content file with it")
    func pruneRemovesKeptFiles() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(keepBodies: 7 * 86_400)
            defer { store.close() }
            let message = try await commit(sampleContent(size: 500), to: store, now: t0)
            try await settle(message, in: store, at: at(1), .failed)
            #expect(queue.spoolFileExists(message.id))
            #expect(try await store.prune(before: at(3), bodiesBefore: t0, batchSize: 10) == 1)
            #expect(!queue.spoolFileExists(message.id))
            #expect(try await store.timeline(id: message.id) == nil)
        }
    }

    @Test("prune removes 1,000 finished messages in batches of 100 with everything they own; queued and recent ones stay")
    func pruneInBatches() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open(inlineContentLimit: 64 * 1024, keepBodies: 3600)
            defer { store.close() }
            let old = try await withThrowingTaskGroup(of: RelayQueuedMessage.self) { group in
                for _ in 0..<1_000 {
                    group.addTask { try await commit(sampleContent(size: 200), envelope: traceEnvelope(route: "done"), to: store, now: t0) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let leased = try await store.lease(owner: "worker", now: at(1), limit: 2_000, leaseDuration: 600, routes: ["done"])
            #expect(leased.count == 1_000)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, message) in old.enumerated() {
                    group.addTask {
                        let outcome: TestOutcome = index.isMultiple(of: 2) ? .delivered : .failed
                        try await store.recordAttempt(
                            id: message.id, owner: "worker", result: attemptResult(for: message, at: at(1), outcome, summary: "reply"))
                    }
                }
                try await group.waitForAll()
            }
            for message in old.prefix(10) {
                guard try await store.message(id: message.id)?.state == .failed else { continue }
                try await store.recordEvent(RelayTraceEvent(at: at(3), kind: .bounced, summary: "DSN queued"), for: message.id)
            }
            var waiting: [RelayQueuedMessage] = []
            for _ in 0..<5 {
                waiting.append(try await commit(sampleContent(size: 200), envelope: traceEnvelope(route: "waiting"), to: store, now: t0))
            }
            _ = try await store.apply(.hold, to: waiting[0].id, by: "cli", now: at(2))
            var recent: [RelayQueuedMessage] = []
            for index in 0..<3 {
                let message = try await commit(
                    sampleContent(size: 200), envelope: traceEnvelope(route: "recent-\(index)"), to: store, now: at(9_000))
                try await settle(message, in: store, at: at(9_000), .delivered)
                recent.append(message)
            }
            #expect(try await count("messages", in: store) == 1_008)
            #expect(try await count("events", in: store) > 0)

            // Commits keep going while pruning runs.
            async let pruned = store.prune(before: at(5_000), bodiesBefore: t0, batchSize: 100)
            let during = try await withThrowingTaskGroup(of: RelayQueuedMessage.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await commit(sampleContent(size: 200), envelope: traceEnvelope(route: "during"), to: store, now: at(9_500)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(try await pruned == 1_000)
            #expect(during.count == 20)

            #expect(try await count("messages", in: store) == 28)
            #expect(try await count("recipients", in: store) == 28)
            #expect(try await count("attempts", in: store) == 3)
            #expect(try await count("events", in: store) == 1, "only the hold of a waiting message")
            #expect(try await count("contents", in: store) == 28, "queued content and the recent messages' kept content")
            for message in old.prefix(20) {
                #expect(try await store.timeline(id: message.id) == nil)
            }
            for message in recent {
                #expect(try await store.timeline(id: message.id)?.hasContent == true)
            }
            let statistics = try await store.queueStatistics()
            #expect(statistics.counts[.delivered] == 3)
            #expect(statistics.counts[.failed] == 0 && statistics.counts[.bounced] == 0)
            #expect(statistics.counts[.queued] == 24)
            #expect(statistics.counts[.held] == 1)
            #expect(try await store.prune(before: at(5_000), bodiesBefore: t0, batchSize: 100) == 0)
        }
    }

    @Test("prune with a batch size that does not divide the count, and nothing finished after `before`")
    func pruneUnevenBatches() async throws {
        try await TemporaryQueue.with { queue in
            let store = try queue.open()
            defer { store.close() }
            var messages: [RelayQueuedMessage] = []
            for index in 0..<10 {
                let message = try await commit(sampleContent(size: 100), envelope: traceEnvelope(route: "r\(index)"), to: store, now: at(Double(index)))
                try await settle(message, in: store, at: at(Double(index)), index < 7 ? .delivered : .failed)
                messages.append(message)
            }
            // Finished at at(1) ... at(10): those before at(8) are the first seven.
            #expect(try await store.prune(before: at(8), bodiesBefore: at(8), batchSize: 3) == 7)
            #expect(try await store.searchTrace(RelayTraceQuery()).messages.map(\.id).sorted() == messages.suffix(3).map(\.id.rawValue).sorted())
        }
    }

    @Test("a queue from before the trace gets its trace columns filled from the stored envelopes")
    func migrationFromVersion2() async throws {
        try await TemporaryQueue.with { queue in
            let legacy = try DatabaseQueue(path: queue.databasePath)
            try SQLiteQueueSchema.migrator.migrate(legacy, upTo: "v2: inline content of small messages")
            let envelope = String(decoding: try JSONEncoder().encode(traceEnvelope(client: "legacy", address: "198.51.100.7", messageID: "<old@x>")), as: UTF8.self)
            try await legacy.write { db in
                for (id, state) in [("0000000000000001", "delivered"), ("0000000000000002", "queued")] {
                    try db.execute(
                        sql: """
                            INSERT INTO messages (id, state, sender, route, envelope, size, received_at, next_attempt_at, attempts)
                            VALUES (?, ?, 'scanner@printer.local', 'smtp', ?, 10, ?, ?, ?)
                            """,
                        arguments: [id, state, envelope, t0.timeIntervalSince1970, t0.timeIntervalSince1970, state == "delivered" ? 2 : 0])
                    try db.execute(
                        sql: "INSERT INTO recipients (message_id, position, address, status) VALUES (?, 0, 'alice@example.com', ?)",
                        arguments: [id, state == "delivered" ? "delivered" : "pending"])
                }
                for (start, summary) in [(at(10), "451 busy"), (at(20), "250 OK")] {
                    try db.execute(
                        sql: "INSERT INTO attempts (message_id, started_at, finished_at, route, summary) VALUES ('0000000000000001', ?, ?, 'smtp', ?)",
                        arguments: [start.timeIntervalSince1970, start.addingTimeInterval(1).timeIntervalSince1970, summary])
                }
            }
            try legacy.close()

            let store = try queue.open()
            defer { store.close() }
            let found = try await store.searchTrace(RelayTraceQuery(client: "legacy"))
            #expect(found.messages.map(\.id) == ["0000000000000002", "0000000000000001"])
            let delivered = try #require(found.messages.last)
            #expect(delivered.status == .delivered)
            #expect(delivered.finishedAt == at(21))
            #expect(delivered.clientAddress == "198.51.100.7")
            #expect(try await store.searchTrace(RelayTraceQuery(messageID: "old@x")).messages.count == 2)
            let timeline = try #require(try await store.timeline(id: RelayQueueID(rawValue: "0000000000000001")))
            #expect(timeline.events.map(\.kind) == [.received, .attempt, .deferred, .attempt, .delivered])
            let hour = Date(timeIntervalSince1970: (t0.timeIntervalSince1970 / 3600).rounded(.down) * 3600)
            #expect(try await store.flow(since: hour, until: hour.addingTimeInterval(3600)) == [
                RelayFlowHour(start: hour, delivered: 1, deferred: 1, failed: 0)
            ])
        }
    }
}
