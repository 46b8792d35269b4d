import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import RelayAdmin
import RelayCore
import RelayStorage
import RelayTestSupport
import Testing

/// A backend over a real SQLite queue in a temporary directory; routes,
/// readiness and metrics are whatever the test sets.
struct TestAdminBackend: RelayAdminBackend {
    let store: SQLiteQueueStore
    var routeStatuses: [RelayRouteStatus] = [RelayRouteStatus(name: "tenant", mode: "smtp", tenantID: "contoso.onmicrosoft.com")]
    var notReady: String?

    var trace: any RelayTraceStore { store }
    func routes(now: Date) async -> [RelayRouteStatus] { routeStatuses }
    func notReadyReason() async -> String? { notReady }
    func metricsText() async -> String { "# TYPE m365relay_test gauge\nm365relay_test 1\n" }
}

/// A queue with messages in known states, received one hour apart, newest last:
/// `delivered` (3 h ago), `deferred` (2 h ago), `queued` (1 h ago), `fresh` (just now).
final class AdminFixture: @unchecked Sendable {
    let directory = TemporaryDirectory("relay-admin")
    let store: SQLiteQueueStore
    let now = Date()
    private(set) var ids: [String: RelayQueueID] = [:]

    init() throws {
        var logger = Logger(label: "relay-admin-tests")
        logger.logLevel = .critical
        store = try SQLiteQueueStore(path: directory.file("data/relay.sqlite"), logger: logger)
    }

    deinit { store.close() }

    func id(_ name: String) -> RelayQueueID { ids[name]! }

    static let content = ByteBuffer(string: "From: scanner@contoso.com\r\nSubject: scan\r\n\r\nA scan.\r\n")

    @discardableResult
    func enqueue(
        _ name: String, sender: String = "scanner@contoso.com", recipients: [String] = ["alice@example.com"], client: String = "scanners",
        route: String = "tenant", messageID: String? = nil, hoursAgo: Double
    ) async throws -> RelayQueueID {
        let received = now.addingTimeInterval(-hoursAgo * 3600)
        let id = RelayQueueID.make(millisecondsSinceEpoch: UInt64(received.timeIntervalSince1970 * 1000))
        let envelope = RelayEnvelope(
            sender: sender, recipients: recipients, clientName: client, clientAddress: "10.20.0.7", heloName: "scanner.contoso.local",
            tlsVersion: "TLSv1.3", route: route, messageID: messageID ?? "<\(name)@contoso.com>")
        _ = try await store.enqueue(id: id, content: Self.content, envelope: envelope, now: received)
        ids[name] = id
        return id
    }

    /// One attempt on `id` (which must be the only message due at `at`).
    func attempt(_ id: RelayQueueID, at: Date, delivered: Bool, reply: String) async throws {
        let leased = try await store.lease(owner: "fixture", now: at, limit: 10, leaseDuration: 60, routes: nil)
        #expect(leased.map(\.id) == [id])
        let message = try #require(leased.first)
        let result = RelayAttemptResult(
            startedAt: at, finishedAt: at.addingTimeInterval(1.5), route: message.envelope.route,
            recipientUpdates: delivered ? message.recipients.map { RelayRecipient(address: $0.address, status: .delivered, lastReply: reply) } : [],
            summary: reply, disposition: delivered ? .finished : .deferred(until: now.addingTimeInterval(3600)),
            detail: RelayAttemptDetail(transport: "smtp", sendingMailbox: "relay@contoso.com", upstreamID: delivered ? "MS-4711" : nil))
        try await store.recordAttempt(id: id, owner: "fixture", result: result)
    }

    /// The standard four messages.
    static func standard() async throws -> AdminFixture {
        let fixture = try AdminFixture()
        let delivered = try await fixture.enqueue("delivered", hoursAgo: 3)
        try await fixture.attempt(
            delivered, at: fixture.now.addingTimeInterval(-3 * 3600 + 5), delivered: true, reply: "250 2.6.0 <MS-4711> Queued mail for delivery")
        let deferred = try await fixture.enqueue(
            "deferred", sender: "erp@contoso.com", recipients: ["bob@example.com", "Carol@Example.com"], client: "erp", hoursAgo: 2)
        try await fixture.attempt(deferred, at: fixture.now.addingTimeInterval(-2 * 3600 + 5), delivered: false, reply: "451 4.7.500 Server busy")
        try await fixture.enqueue("queued", sender: "SCANNER@contoso.com", recipients: ["dave@example.com"], route: "tenant-smtp", hoursAgo: 1)
        try await fixture.enqueue("fresh", sender: "", recipients: ["operator@contoso.com"], client: "relay", hoursAgo: 0)
        return fixture
    }

    func backend(notReady: String? = nil) -> TestAdminBackend {
        TestAdminBackend(store: store, notReady: notReady)
    }
}

/// A started admin server on 127.0.0.1 port 0, shut down after `body`, which gets its port.
func withStartedAdminServer<Value: Sendable>(
    backend: any RelayAdminBackend, token: String? = nil, _ body: @Sendable (Int) async throws -> Value
) async throws -> Value {
    var logger = Logger(label: "relay-admin-tests")
    logger.logLevel = .critical
    let server = try RelayAdminServer(address: RelayEndpoint(host: "127.0.0.1", port: 0), token: token, backend: backend, logger: logger)
    let port = try await server.start()
    do {
        let value = try await body(port)
        await server.shutdown()
        return value
    } catch {
        await server.shutdown()
        throw error
    }
}

/// A started admin server and a client connected to it.
func withAdminServer<Value: Sendable>(
    backend: any RelayAdminBackend, token: String? = nil, _ body: @escaping @Sendable (TestClient) async throws -> Value
) async throws -> Value {
    try await withStartedAdminServer(backend: backend, token: token) { port in
        try await TestClient.withClient(host: "127.0.0.1", port: port, operation: body)
    }
}

extension TestClient.Response {
    var text: String { body.map { String(buffer: $0) } ?? "" }

    func json<Value: Decodable>(_ type: Value.Type) throws -> Value {
        try RelayAdminJSON.decode(type, from: Data(text.utf8))
    }

    /// The body as untyped JSON, to check keys as the wire has them.
    var object: [String: Any] {
        get throws {
            try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        }
    }

    /// `error` of an error body.
    var errorMessage: String {
        (try? json(RelayAdminErrorBody.self).error) ?? "(not an error body: \(text))"
    }
}

extension TestClient {
    func get(_ uri: String, token: String) async throws -> TestClient.Response {
        try await get(uri, headers: [.authorization: "Bearer \(token)"])
    }

    func post(_ uri: String) async throws -> TestClient.Response {
        try await post(uri, body: ByteBuffer())
    }

    func delete(_ uri: String) async throws -> TestClient.Response {
        try await delete(uri, body: ByteBuffer())
    }

    /// Every page of a search, following `next_cursor`.
    func allPages(_ query: String) async throws -> [[RelayAdminMessage]] {
        var pages: [[RelayAdminMessage]] = []
        var cursor: String?
        repeat {
            let separator = query.isEmpty ? "" : "&"
            let uri = "/api/v1/messages?" + query + (cursor.map { "\(separator)cursor=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? "")
            let response = try await get(uri)
            #expect(response.status == .ok, "\(uri): \(response.text)")
            let page = try response.json(RelayAdminMessagePage.self)
            pages.append(page.messages)
            cursor = page.nextCursor
        } while cursor != nil && pages.count < 20
        return pages
    }
}
