import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import RelayAdmin
import RelayCore
import RelayTestSupport
import ServiceLifecycle
import Testing

@Suite("Admin server: authentication and listening")
struct RelayAdminServerTests {
    static let token = "s3cret-admin-token"

    static func basic(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    @Test("bound to loopback without a token, every route is open")
    func loopbackNeedsNoToken() async throws {
        let fixture = try await AdminFixture.standard()
        try await withAdminServer(backend: fixture.backend()) { client throws in
            #expect(try await client.get("/api/v1/routes").status == .ok)
            #expect(try await client.get("/api/v1/messages").status == .ok)
            #expect(try await client.post("/api/v1/messages/\(fixture.id("queued").rawValue)/hold").status == .ok)
        }
    }

    @Test("with a token: 401 and a Basic challenge without it, 200 with Bearer or Basic, /healthz open")
    func tokenRequired() async throws {
        let fixture = try await AdminFixture.standard()
        let token = Self.token
        try await withAdminServer(backend: fixture.backend(), token: token) { client in
            for path in ["/api/v1/messages", "/api/v1/routes", "/readyz", "/metrics", "/openapi.json", "/", "/api/v1/unknown"] {
                let response = try await client.get(path)
                #expect(response.status == .unauthorized, "\(path)")
                #expect(response.headers[.wwwAuthenticate] == "Basic realm=\"m365-relay\"", "\(path)")
                #expect(response.errorMessage.hasPrefix("authentication required"), "\(path)")
            }
            #expect(try await client.post("/api/v1/messages/\(fixture.id("queued").rawValue)/hold").status == .unauthorized)
            #expect(try await client.get("/healthz").status == .ok)

            #expect(try await client.get("/api/v1/messages", token: token).status == .ok)
            #expect(try await client.get("/api/v1/messages", headers: [.authorization: "bearer \(token)"]).status == .ok)
            #expect(try await client.get("/api/v1/messages", headers: [.authorization: Self.basic("admin", token)]).status == .ok)
            #expect(try await client.get("/api/v1/messages", headers: [.authorization: Self.basic("", token)]).status == .ok)

            for wrong in ["Bearer \(token)x", "Bearer \(token.dropLast())", "Bearer ", Self.basic(token, "nope"), "Basic !!!", "Token \(token)", token] {
                let response = try await client.get("/api/v1/messages", headers: [.authorization: wrong])
                #expect(response.status == .unauthorized, "\(wrong)")
                #expect(!response.text.contains(token), "the token is never echoed")
            }
        }
    }

    @Test("a non-loopback address without a token is refused, naming admin.token_file")
    func nonLoopbackNeedsToken() throws {
        let fixture = try AdminFixture()
        for host in ["0.0.0.0", "192.0.2.1", "::"] {
            #expect {
                _ = try RelayAdminServer(address: RelayEndpoint(host: host, port: 8025), token: nil, backend: fixture.backend(), logger: Logger(label: "test"))
            } throws: { error in
                "\(error)".contains("admin.token_file") && "\(error)".contains("not a loopback address")
            }
            #expect(throws: RelayAdminServerError.self) {
                _ = try RelayAdminServer(address: RelayEndpoint(host: host, port: 8025), token: "", backend: fixture.backend(), logger: Logger(label: "test"))
            }
            // With a token it may be built (not started here: tests listen on loopback only).
            _ = try RelayAdminServer(address: RelayEndpoint(host: host, port: 8025), token: "t", backend: fixture.backend(), logger: Logger(label: "test"))
        }
        for host in ["127.0.0.1", "::1", "localhost", "127.1.2.3"] {
            _ = try RelayAdminServer(address: RelayEndpoint(host: host, port: 8025), token: nil, backend: fixture.backend(), logger: Logger(label: "test"))
        }
    }

    @Test("a port in use fails start with `admin: cannot listen on ADDRESS: reason`")
    func portInUse() async throws {
        let fixture = try AdminFixture()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let first = try RelayAdminServer(address: RelayEndpoint(host: "127.0.0.1", port: 0), token: nil, backend: fixture.backend(), logger: logger)
        let port = try await first.start()
        #expect(first.port == port)
        #expect(port > 0)
        let second = try RelayAdminServer(address: RelayEndpoint(host: "127.0.0.1", port: port), token: nil, backend: fixture.backend(), logger: logger)
        do {
            try await second.start()
            Issue.record("the second server started on a port in use")
        } catch {
            #expect(error.description == "admin: cannot listen on 127.0.0.1:\(port): address already in use")
        }
        #expect(second.port == nil)
        await first.shutdown()
    }

    @Test("run() serves until graceful shutdown, then stops listening")
    func runsAsAService() async throws {
        let fixture = try AdminFixture()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try RelayAdminServer(address: RelayEndpoint(host: "127.0.0.1", port: 0), token: nil, backend: fixture.backend(), logger: logger)
        let port = try await server.start()
        let running = Task { try await server.run() }
        let status = try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            try await client.get("/healthz").status
        }
        #expect(status == .ok)
        running.cancel()
        try? await running.value
        await #expect(throws: (any Error).self) {
            try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                _ = try await client.get("/healthz")
            }
        }
    }

    @Test("in a ServiceGroup, graceful shutdown stops it")
    func gracefulShutdownInAGroup() async throws {
        let fixture = try AdminFixture()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try RelayAdminServer(address: RelayEndpoint(host: "127.0.0.1", port: 0), token: nil, backend: fixture.backend(), logger: logger)
        let port = try await server.start()
        let group = ServiceGroup(configuration: .init(services: [server], logger: logger))
        let running = Task { try await group.run() }
        let status = try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            try await client.get("/healthz").status
        }
        #expect(status == .ok)
        await group.triggerGracefulShutdown()
        try await running.value
        await #expect(throws: (any Error).self) {
            try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                _ = try await client.get("/healthz")
            }
        }
    }
}
