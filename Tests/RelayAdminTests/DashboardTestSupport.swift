import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import RelayAdmin
import RelayCore
import RelayStorage
import RelayTestSupport

/// The admin backend a test needs: a real SQLite queue and a fixed list of routes.
struct DashboardTestBackend: RelayAdminBackend {
    let store: SQLiteQueueStore
    let routeStatuses: [RelayRouteStatus]

    var trace: any RelayTraceStore { store }
    func routes(now: Date) async -> [RelayRouteStatus] { routeStatuses }
    func notReadyReason() async -> String? { nil }
    func metricsText() async -> String { "" }
}

/// Input no page may show as markup: each would run script or break out of an attribute if not escaped.
enum Hostile {
    static let sender = "evil\"'><script>alert('sender')</script>@attacker.test"
    static let recipient = "<svg onload=alert(1)>@victim.test"
    static let messageID = "<\"><img src=x onerror=alert('mid')>@attacker.test>"
    static let helo = "<b onmouseover=alert('helo')>helo</b>"
    static let reply = "451 4.7.500 <script>alert('reply')</script> & \"try later\""
    /// Fragments that must never appear verbatim in a page.
    static let markers = ["<script>alert(", "<svg onload", "<img src=x", "<b onmouseover", "\"'><script"]
}

/// A real queue in a temporary directory holding messages in every status the
/// dashboard shows, with attempts at times relative to the wall clock (the
/// dashboard renders the last 24 hours before `Date()`).
final class DashboardFixture: Sendable {
    let directory = TemporaryDirectory("dashboard")
    let store: SQLiteQueueStore
    let backend: DashboardTestBackend
    let now: Date

    static let deliveredSender = "scanner@contoso.com"
    static let deferredSender = "erp@contoso.com"
    static let failedSender = "copier@contoso.com"
    static let heldSender = "held@contoso.com"
    static let queuedSender = "queued@contoso.com"

    /// Seeded messages by role.
    let delivered: [RelayQueueID]
    let deferred: [RelayQueueID]
    let failed: RelayQueueID
    let held: RelayQueueID
    let queued: RelayQueueID
    let hostile: RelayQueueID?
    /// When each attempt finished, with its outcome: what the chart must show.
    let attempts: [(finishedAt: Date, outcome: String)]

    static func routes(hostile: Bool) -> [RelayRouteStatus] { [
        RelayRouteStatus(
            name: "tenant", mode: "graph", tenantID: "contoso.onmicrosoft.com", fallback: "tenant-smtp",
            mailboxes: [
                RelayMailboxQuota(
                    mailbox: "scanner@contoso.com", messagesPerMinute: .init(used: 12, limit: 30), recipientsPerDay: .init(used: 9_100, limit: 10_000),
                    connections: .init(used: 1, limit: 3))
            ],
            tokenExpiresAt: Date().addingTimeInterval(2_700), credentialExpiresAt: Date().addingTimeInterval(5 * 86_400 + 3600)),
        RelayRouteStatus(
            name: "tenant-smtp", mode: "smtp", tenantID: "contoso.onmicrosoft.com", health: .paused, heldUntil: Date().addingTimeInterval(900),
            reason: "535 5.7.139 Authentication unsuccessful, the user credentials were incorrect"
                + (hostile ? " <script>alert('reason')</script>" : ""),
            mailboxes: [
                RelayMailboxQuota(
                    mailbox: "relay@contoso.com", messagesPerMinute: .init(used: 0, limit: 30), recipientsPerDay: .init(used: 40, limit: nil),
                    connections: .init(used: 0, limit: 3), pausedUntil: Date().addingTimeInterval(600))
            ]),
    ] }

    /// - Parameters:
    ///   - hostile: add a deferred message whose sender, recipient, HELO, Message-ID and reply are markup.
    ///   - history: add a day of ordinary traffic from other senders, so the chart has many bars.
    init(hostile: Bool = true, history: Bool = false) async throws {
        var logger = Logger(label: "dashboard-tests")
        logger.logLevel = .critical
        store = try SQLiteQueueStore(path: directory.file("queue.sqlite"), logger: logger)
        backend = DashboardTestBackend(store: store, routeStatuses: Self.routes(hostile: hostile))
        // Whole seconds: they survive the store's REAL columns exactly.
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        self.now = now
        var attempts: [(Date, String)] = []
        let store = store

        func envelope(_ sender: String, _ recipients: [String] = ["alice@contoso.com"], messageID: String? = nil, helo: String = "scanner.local") -> RelayEnvelope {
            RelayEnvelope(
                sender: sender, recipients: recipients, clientName: "scanners", clientAddress: "10.20.0.7", heloName: helo,
                tlsVersion: "TLSv1.3", route: "tenant", messageID: messageID ?? "<\(UUID().uuidString)@scanner.local>")
        }
        /// Enqueues a message received `ago` seconds before now, then runs one attempt per entry of
        /// `outcomes` (outcome, reply), five minutes apart; a last deferral waits until an hour from now.
        func seed(_ envelope: RelayEnvelope, ago: TimeInterval, outcomes: [(String, String)]) async throws -> RelayQueueID {
            let received = now.addingTimeInterval(-ago)
            let id = RelayQueueID.make(millisecondsSinceEpoch: UInt64(received.timeIntervalSince1970 * 1000))
            _ = try await store.enqueue(id: id, content: ByteBuffer(string: "Subject: dashboard test\r\n\r\nHello.\r\n"), envelope: envelope, now: received)
            for (index, (outcome, reply)) in outcomes.enumerated() {
                let started = received.addingTimeInterval(30 + Double(index) * 300)
                let leased = try await store.lease(owner: "dashboard-test", now: started, limit: 1, leaseDuration: 300, routes: nil)
                guard leased.map(\.id) == [id] else { throw FixtureError("leasing \(id) returned \(leased.map(\.id.rawValue))") }
                let finished = started.addingTimeInterval(Double(1 + index * 2))
                let status: RelayRecipientStatus = outcome == "delivered" ? .delivered : outcome == "failed" ? .failed : .pending
                let retryAt = index == outcomes.count - 1 ? now.addingTimeInterval(3_600) : received.addingTimeInterval(Double(index + 1) * 300)
                let result = RelayAttemptResult(
                    startedAt: started, finishedAt: finished, route: "tenant",
                    recipientUpdates: status == .pending ? [] : envelope.recipients.map { RelayRecipient(address: $0, status: status, lastReply: reply) },
                    summary: reply, disposition: outcome == "deferred" ? .deferred(until: retryAt) : .finished,
                    detail: RelayAttemptDetail(
                        transport: "graph", sendingMailbox: "scanner@contoso.com",
                        upstreamID: outcome == "delivered" ? "<\(id.rawValue.lowercased())@EX.contoso.prod.outlook.com>" : nil))
                try await store.recordAttempt(id: id, owner: "dashboard-test", result: result)
                attempts.append((finished, outcome))
            }
            return id
        }
        func seed(_ envelope: RelayEnvelope, ago: TimeInterval, outcome: String?, reply: String = "250 2.6.0 Queued mail for delivery") async throws -> RelayQueueID {
            try await seed(envelope, ago: ago, outcomes: outcome.map { [($0, reply)] } ?? [])
        }

        // Oldest first: each is leased alone because the ones before it are finished or deferred to later.
        if history {
            let senders = ["invoices@contoso.com", "alerts@contoso.com", "backup@contoso.com"]
            // At most 22.4 hours back: the chart's window (the current hour and the 23 before it)
            // always holds them, whenever in the hour the page is rendered.
            for hoursAgo in stride(from: 22, through: 2, by: -1) {
                // A working-day shape: busier in the middle, a deferral or failure now and then.
                let count = 1 + (hoursAgo * 7) % 5
                for index in 0..<count {
                    let outcome = (hoursAgo + index) % 11 == 0 ? "failed" : (hoursAgo * 3 + index) % 7 == 0 ? "deferred" : "delivered"
                    let reply = outcome == "failed" ? "550 5.7.520 Access denied, your organization does not allow external forwarding"
                        : outcome == "deferred" ? "451 4.7.500 Server busy. Please try again later" : "250 2.6.0 Queued mail for delivery"
                    _ = try await seed(
                        envelope(senders[(hoursAgo + index) % senders.count], ["team\(index)@contoso.com"]),
                        ago: Double(hoursAgo) * 3_600 + Double(index) * 300 + 200, outcome: outcome, reply: reply)
                }
            }
        }
        delivered = [
            try await seed(envelope(Self.deliveredSender), ago: 6_000, outcome: "delivered"),
            try await seed(envelope(Self.deliveredSender, ["bob@contoso.com", "carol@contoso.com", "dave@contoso.com"]), ago: 2_400, outcome: "delivered"),
            // The newest, whose timeline the browser opens, was deferred once first.
            try await seed(
                envelope(Self.deliveredSender), ago: 2_300,
                outcomes: [
                    ("deferred", "451 4.7.500 Server busy. Please try again later. [AM0PR01CA0001.eurprd01.prod.exchangelabs.com]"),
                    ("delivered", "250 2.0.0 OK <\(UUID().uuidString.lowercased())@contoso.com> [Hostname=AM0PR01MB0001.eurprd01.prod.exchangelabs.com]"),
                ]),
        ]
        deferred = [
            try await seed(envelope(Self.deferredSender), ago: 1_900, outcome: "deferred", reply: "451 4.3.2 Temporary server error"),
            try await seed(envelope(Self.deferredSender), ago: 1_800, outcome: "deferred", reply: "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"),
        ]
        failed = try await seed(envelope(Self.failedSender, ["nobody@contoso.com"]), ago: 1_200, outcome: "failed", reply: "550 5.1.10 RESOLVER.ADR.RecipientNotFound")
        self.hostile = hostile
            ? try await seed(
                envelope(Hostile.sender, [Hostile.recipient], messageID: Hostile.messageID, helo: Hostile.helo), ago: 900, outcome: "deferred", reply: Hostile.reply)
            : nil
        held = try await seed(envelope(Self.heldSender), ago: 600, outcome: nil)
        _ = try await store.apply(.hold, to: held, by: "dashboard-test", now: now.addingTimeInterval(-590))
        queued = try await seed(envelope(Self.queuedSender), ago: 300, outcome: nil)
        self.attempts = attempts
    }

    /// Expected chart totals over the 24 hours.
    var expectedTotals: (delivered: Int, deferred: Int, failed: Int) {
        (attempts.filter { $0.outcome == "delivered" }.count, attempts.filter { $0.outcome == "deferred" }.count, attempts.filter { $0.outcome == "failed" }.count)
    }

    deinit { store.close() }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs the admin router (the JSON API and the dashboard, no authentication) on
/// 127.0.0.1 at a port the system picks, for the duration of `body`.
func withDashboardServer<Value: Sendable>(backend: any RelayAdminBackend, _ body: @Sendable (_ port: Int) async throws -> Value) async throws -> Value {
    let router = Router(context: RelayAdminRequestContext.self)
    RelayAdminAPI.addRoutes(to: router, backend: backend)
    RelayDashboard.addRoutes(to: router, backend: backend)
    var logger = Logger(label: "dashboard-tests")
    logger.logLevel = .critical
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = Application(
        router: router,
        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
            continuation.finish()
        },
        logger: logger)
    let server = Task {
        defer { continuation.finish() }
        try await app.run()
    }
    defer { server.cancel() }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next(), port > 0 else {
        server.cancel()
        _ = await server.result
        throw FixtureError("the dashboard test server did not start on 127.0.0.1")
    }
    let value: Value
    do {
        value = try await body(port)
    } catch {
        server.cancel()
        _ = await server.result
        throw error
    }
    server.cancel()
    _ = await server.result
    return value
}

/// One GET against the test server: status and body text.
func fetch(_ path: String, port: Int) async throws -> (status: Int, headers: HTTPFields, body: String) {
    try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(20))) { client in
        let response = try await client.get(path)
        return (Int(response.head.status.code), response.head.headerFields, response.body.map { String(buffer: $0) } ?? "")
    }
}

/// `<tag ... name="value" ...>` attributes of every element whose opening tag matches `prefix`.
func elements(_ html: String, startingWith prefix: String) -> [[String: String]] {
    var found: [[String: String]] = []
    var rest = html[...]
    while let start = rest.range(of: prefix) {
        guard let end = rest[start.lowerBound...].firstIndex(of: ">") else { break }
        let tag = rest[start.lowerBound..<end]
        var attributes: [String: String] = [:]
        let pattern = /([a-zA-Z-]+)="([^"]*)"/
        for match in tag.matches(of: pattern) { attributes[String(match.1)] = String(match.2) }
        found.append(attributes)
        rest = rest[end...]
    }
    return found
}
