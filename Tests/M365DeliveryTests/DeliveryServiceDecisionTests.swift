import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RelayCore
import RelayStorage
import RelayTestSupport
import SMTPCore
import Testing
@testable import M365Delivery

/// Stands for Microsoft 365 on one route: answers each attempt from a script
/// (the last answer repeats) and remembers what it was asked.
private final class ScriptedTransport: RelayTransport {
    private let script: NIOLockedValueBox<[(SMTPReply, Bool)]>
    let calls = NIOLockedValueBox<[(id: RelayQueueID, sender: String, route: String)]>([])

    /// - Parameter replies: the SMTP reply to each attempt in turn, and whether it reached submission.
    init(_ replies: [(SMTPReply, Bool)]) {
        script = NIOLockedValueBox(replies)
    }

    func deliver(_ message: RelayQueuedMessage, recipients: [String], content: any RelayContentReader) async -> RelayTransportOutcome {
        calls.withLockedValue { $0.append((message.id, message.envelope.sender, message.envelope.route)) }
        let (reply, submitted) = script.withLockedValue { $0.count > 1 ? $0.removeFirst() : $0[0] }
        let status: RelayTransportOutcome.Status = reply.code < 300 ? .delivered : reply.code < 500 ? .temporaryFailure : .permanentFailure
        return RelayTransportOutcome(
            recipients: recipients.map { .init(address: $0, status: status, reply: reply.description) },
            summary: reply.description, reply: .smtp(reply), sendingMailbox: message.envelope.sender, submitted: submitted)
    }

    func shutdown() async {}
}

/// A real SQLite queue, a delivery service over scripted routes, and a clock the test moves.
private struct ServiceFixture {
    let directory = TemporaryDirectory("delivery-service")
    let store: SQLiteQueueStore
    let service: RelayDeliveryService
    let clock: NIOLockedValueBox<Date>

    init(routes: [RelayDeliveryRoute], transports: [String: any RelayTransport], start: Date = Date(timeIntervalSince1970: 1_800_000_000)) throws {
        var logger = Logger(label: "delivery-service-tests")
        logger.logLevel = .critical
        store = try SQLiteQueueStore(path: directory.file("queue.sqlite"), logger: logger)
        var settings = RelayDeliveryService.Settings(
            hostname: "relay.test", schedule: RelayRetrySchedule(delays: [60, 300], maxAge: 86_400), bounces: .none,
            operatorAddress: nil, concurrency: 4)
        settings.routes = Dictionary(uniqueKeysWithValues: routes.map { ($0.name, $0) })
        let clock = NIOLockedValueBox(start)
        self.clock = clock
        service = RelayDeliveryService(store: store, transports: transports, settings: settings, owner: "test", logger: logger, now: { clock.withLockedValue { $0 } })
    }

    var now: Date { clock.withLockedValue { $0 } }
    func advance(_ seconds: TimeInterval) { clock.withLockedValue { $0 = $0.addingTimeInterval(seconds) } }

    @discardableResult
    func enqueue(from sender: String = "scanner@contoso.com", to recipients: [String] = ["alice@contoso.com"], route: String, size: Int = 200) async throws -> RelayQueuedMessage {
        var content = ByteBuffer(string: "Subject: test\r\n\r\n")
        content.writeRepeatingByte(UInt8(ascii: "x"), count: max(size - content.readableBytes, 0))
        let envelope = RelayEnvelope(sender: sender, recipients: recipients, clientName: "test", clientAddress: "127.0.0.1", heloName: "test", tlsVersion: nil, route: route)
        return try await store.enqueue(id: RelayQueueID.make(millisecondsSinceEpoch: UInt64(now.timeIntervalSince1970 * 1000)), content: content, envelope: envelope, now: now)
    }

    /// Leases everything due now and delivers it, one message after the other.
    @discardableResult
    func runDue() async throws -> Int {
        let leased = try await store.lease(owner: "test", now: now, limit: 100, leaseDuration: 600, routes: nil)
        for message in leased { await service.deliver(message) }
        return leased.count
    }

    func message(_ id: RelayQueueID) async throws -> RelayQueuedMessage {
        try #require(try await store.message(id: id))
    }
}

private let accepted = (SMTPReply(250, .init(2, 0, 0), "OK <id@outlook.com>"), true)

@Suite("Delivery service: the governor, Microsoft's replies, fallback routes")
struct DeliveryServiceDecisionTests {
    @Test("a mailbox past its per-minute quota waits in the queue without an attempt; another mailbox goes on")
    func governorMakesOneMailboxWait() async throws {
        let transport = ScriptedTransport([accepted])
        let route = RelayDeliveryRoute(name: "tenant", transport: .smtp, quotas: .init(messagesPerMinute: 2), quotaMargin: 0)
        let fixture = try ServiceFixture(routes: [route], transports: ["tenant": transport])
        defer { fixture.store.close() }
        var busy: [RelayQueuedMessage] = []
        for _ in 0..<3 { busy.append(try await fixture.enqueue(from: "busy@contoso.com", route: "tenant")) }
        let other = try await fixture.enqueue(from: "quiet@contoso.com", route: "tenant")

        try await fixture.runDue()
        let states = try await busy.asyncMap { try await fixture.message($0.id) }
        #expect(states.filter { $0.state == .delivered }.count == 2)
        let waiting = try #require(states.first { $0.state == .queued })
        #expect(waiting.attempts == 0)
        // The window frees 60 s after the first admission.
        #expect(waiting.nextAttemptAt == fixture.now.addingTimeInterval(60))
        #expect(try await fixture.message(other.id).state == .delivered)

        fixture.advance(60)
        #expect(try await fixture.runDue() == 1)
        #expect(try await fixture.message(waiting.id).state == .delivered)
        #expect(transport.calls.withLockedValue { $0.count } == 4)
    }

    @Test("a 432 lowers the mailbox's concurrency and retries soon; nothing fails")
    func concurrencyThrottle() async throws {
        let transport = ScriptedTransport([(SMTPReply(432, .init(4, 3, 2), "Concurrent connections limit exceeded"), false), accepted])
        let route = RelayDeliveryRoute(name: "tenant", transport: .smtp, quotas: .init(connections: 3))
        let fixture = try ServiceFixture(routes: [route], transports: ["tenant": transport])
        defer { fixture.store.close() }
        let message = try await fixture.enqueue(route: "tenant")
        try await fixture.runDue()
        let after = try await fixture.message(message.id)
        #expect(after.state == .queued)
        #expect(after.nextAttemptAt == fixture.now.addingTimeInterval(10))
        let usage = try #require(fixture.service.quotaUsage(route: "tenant", mailbox: "scanner@contoso.com"))
        #expect(usage.concurrency.limit == 2)
        fixture.advance(10)
        try await fixture.runDue()
        #expect(try await fixture.message(message.id).state == .delivered)
    }

    @Test("SubmissionQuotaExceeded pauses that mailbox until its window frees; the message is not failed")
    func dailyQuotaPausesMailbox() async throws {
        let quota = SMTPReply(554, .init(5, 2, 0), "STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message")
        let transport = ScriptedTransport([accepted, (quota, true), accepted])
        let route = RelayDeliveryRoute(name: "tenant", transport: .smtp, quotas: .init(recipientsPerDay: 10_000))
        let fixture = try ServiceFixture(routes: [route], transports: ["tenant": transport])
        defer { fixture.store.close() }
        let first = try await fixture.enqueue(route: "tenant")
        try await fixture.runDue()
        #expect(try await fixture.message(first.id).state == .delivered)
        fixture.advance(100)
        let second = try await fixture.enqueue(route: "tenant")
        try await fixture.runDue()
        let after = try await fixture.message(second.id)
        #expect(after.state == .queued)
        // The first message's recipient leaves the 24-hour window 86,400 s after it was admitted.
        #expect(after.nextAttemptAt == first.receivedAt.addingTimeInterval(86_400))
        #expect(after.recipients.allSatisfy { $0.status == .pending })
    }

    @Test("an authentication refusal pauses the route and sends the message to its fallback; the fallback carries later mail too")
    func pausedRouteUsesFallback() async throws {
        let primary = ScriptedTransport([(SMTPReply(535, .init(5, 7, 139), "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant"), false)])
        let fallback = ScriptedTransport([accepted])
        let fixture = try ServiceFixture(
            routes: [RelayDeliveryRoute(name: "graph", transport: .graph, fallback: "smtp"), RelayDeliveryRoute(name: "smtp", transport: .smtp)],
            transports: ["graph": primary, "smtp": fallback])
        defer { fixture.store.close() }
        let first = try await fixture.enqueue(route: "graph")
        try await fixture.runDue()
        #expect(try await fixture.message(first.id).envelope.route == "smtp")
        #expect(fixture.service.health.hold(on: "graph", now: fixture.now)?.kind == .routePaused)
        try await fixture.runDue()
        #expect(try await fixture.message(first.id).state == .delivered)

        let later = try await fixture.enqueue(route: "graph")
        try await fixture.runDue()
        try await fixture.runDue()
        #expect(try await fixture.message(later.id).state == .delivered)
        #expect(primary.calls.withLockedValue { $0.count } == 1)
        #expect(fallback.calls.withLockedValue { $0.map(\.id) } == [first.id, later.id])
    }

    @Test("without a fallback a paused route's mail waits until the pause ends, then the route is probed again")
    func pausedRouteWithoutFallbackWaits() async throws {
        let transport = ScriptedTransport([(SMTPReply(550, .init(5, 7, 64), "TenantAttribution; Relay Access Denied"), true), accepted])
        let fixture = try ServiceFixture(routes: [RelayDeliveryRoute(name: "connector", transport: .connector)], transports: ["connector": transport])
        defer { fixture.store.close() }
        let first = try await fixture.enqueue(route: "connector")
        try await fixture.runDue()
        let paused = try await fixture.message(first.id)
        #expect(paused.state == .queued)
        #expect(paused.nextAttemptAt == fixture.now.addingTimeInterval(300))
        #expect(paused.recipients.allSatisfy { $0.status == .pending })

        let second = try await fixture.enqueue(route: "connector")
        try await fixture.runDue()
        #expect(try await fixture.message(second.id).attempts == 0)
        #expect(try await fixture.message(second.id).nextAttemptAt == fixture.now.addingTimeInterval(300))

        fixture.advance(300)
        #expect(try await fixture.runDue() == 2)
        #expect(try await fixture.message(first.id).state == .delivered)
        #expect(try await fixture.message(second.id).state == .delivered)
    }

    @Test("5.7.708 stops every route of the tenant, not other tenants' routes")
    func tenantStop() async throws {
        let blocked = ScriptedTransport([(SMTPReply(550, .init(5, 7, 708), "Access denied, traffic not accepted from this IP"), true)])
        let sibling = ScriptedTransport([accepted])
        let other = ScriptedTransport([accepted])
        let fixture = try ServiceFixture(
            routes: [
                RelayDeliveryRoute(name: "a", transport: .connector, tenant: "contoso"),
                RelayDeliveryRoute(name: "b", transport: .smtp, tenant: "contoso"),
                RelayDeliveryRoute(name: "c", transport: .smtp, tenant: "fabrikam"),
            ],
            transports: ["a": blocked, "b": sibling, "c": other])
        defer { fixture.store.close() }
        try await fixture.enqueue(route: "a")
        try await fixture.runDue()
        let held = try await fixture.enqueue(route: "b")
        let free = try await fixture.enqueue(route: "c")
        try await fixture.runDue()
        #expect(fixture.service.health.hold(on: "b", now: fixture.now)?.kind == .tenantStopped)
        #expect(try await fixture.message(held.id).nextAttemptAt == fixture.now.addingTimeInterval(3600 - 0))
        #expect(sibling.calls.withLockedValue { $0.isEmpty })
        #expect(try await fixture.message(free.id).state == .delivered)
    }

    @Test("a message over the route's size limit goes to the fallback before any attempt; without one it fails with 552 5.3.4")
    func oversizedMessage() async throws {
        let small = ScriptedTransport([accepted])
        let large = ScriptedTransport([accepted])
        let fixture = try ServiceFixture(
            routes: [
                RelayDeliveryRoute(name: "smtp", transport: .smtp, fallback: "graph", maxMessageSize: 1000),
                RelayDeliveryRoute(name: "graph", transport: .graph, maxMessageSize: 2000),
            ],
            transports: ["smtp": small, "graph": large])
        defer { fixture.store.close() }
        let fits = try await fixture.enqueue(route: "smtp", size: 900)
        let big = try await fixture.enqueue(route: "smtp", size: 1500)
        let huge = try await fixture.enqueue(route: "graph", size: 2500)
        try await fixture.runDue()
        try await fixture.runDue()
        #expect(try await fixture.message(fits.id).state == .delivered)
        let moved = try await fixture.message(big.id)
        #expect(moved.state == .delivered)
        #expect(moved.envelope.route == "graph")
        let refused = try await fixture.message(huge.id)
        #expect(refused.state == .failed)
        #expect(refused.recipients.first?.lastReply?.hasPrefix("552 5.3.4") == true)
        #expect(small.calls.withLockedValue { $0.map(\.id) } == [fits.id])
    }

    @Test("SendAsDenied fails the message permanently at once, even as a temporary-looking outcome")
    func sendAsDenied() async throws {
        let transport = ScriptedTransport([(SMTPReply(554, .init(5, 2, 252), "SendAsDenied; scanner@contoso.com not allowed to send as ceo@contoso.com"), true)])
        let fixture = try ServiceFixture(routes: [RelayDeliveryRoute(name: "tenant", transport: .smtp)], transports: ["tenant": transport])
        defer { fixture.store.close() }
        let message = try await fixture.enqueue(route: "tenant")
        try await fixture.runDue()
        let after = try await fixture.message(message.id)
        #expect(after.state == .failed)
        #expect(after.attempts == 1)
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
