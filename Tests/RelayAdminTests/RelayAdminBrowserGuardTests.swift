import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import RelayAdmin
import RelayCore
import Testing

/// Other web sites, through the administrator's browser: cross-site POSTs
/// and DNS rebinding are refused; the dashboard's own requests and scripts pass.
@Suite("Admin server: cross-site requests and DNS rebinding")
struct RelayAdminBrowserGuardTests {
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!

    @Test func crossSiteStateChangesAreRefusedSameOriginAndScriptsPass() async throws {
        let fixture = try await AdminFixture.standard()
        let queued = fixture.id("queued")
        try await withStartedAdminServer(backend: fixture.backend()) { port in
            try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                let host = "127.0.0.1:\(port)"
                // Another site's form post: Sec-Fetch-Site cross-site, Origin elsewhere.
                let forged = try await Self.send(
                    client, .post, "/api/v1/messages/\(queued)/hold", host: host, [.origin: "https://evil.example", Self.secFetchSite: "cross-site"])
                #expect(forged.status == .forbidden, "\(forged.text)")
                #expect(forged.errorMessage.contains("cross-site"))
                // An older browser without Sec-Fetch-*: the Origin alone decides.
                let originOnly = try await Self.send(client, .post, "/api/v1/messages/\(queued)/hold", host: host, [.origin: "http://attacker.test:8025"])
                #expect(originOnly.status == .forbidden)
                let stillQueued = try await fixture.store.timeline(id: queued)
                #expect(stillQueued?.message.status == .queued, "nothing was held by a refused request")

                // Reading stays possible cross-site (the browser keeps the answer from the other page).
                let read = try await Self.send(client, .get, "/api/v1/messages/\(queued)", host: host, [Self.secFetchSite: "cross-site"])
                #expect(read.status == .ok)

                // The dashboard's own button: same origin.
                let own = try await Self.send(
                    client, .post, "/api/v1/messages/\(queued)/hold", host: host, [.origin: "http://\(host)", Self.secFetchSite: "same-origin"])
                #expect(own.status == .ok, "\(own.text)")
                // A script (curl, the commands): no browser headers.
                let script = try await Self.send(client, .post, "/api/v1/messages/\(queued)/release", host: host)
                #expect(script.status == .ok, "\(script.text)")
            }
        }
    }

    @Test func aLoopbackServerAnswersOnlyLoopbackHostNames() async throws {
        let fixture = try await AdminFixture.standard()
        try await withStartedAdminServer(backend: fixture.backend()) { port in
            try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                for host in ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)", "127.0.0.2", "LOCALHOST"] {
                    let response = try await Self.send(client, .get, "/api/v1/messages", host: host)
                    #expect(response.status == .ok, "\(host): \(response.text)")
                }
                // A rebinding attacker's name that resolves to 127.0.0.1.
                for host in ["attacker.test:\(port)", "127.0.0.1.attacker.test", "[::2]:\(port)", "128.0.0.1"] {
                    let response = try await Self.send(client, .get, "/", host: host)
                    #expect(response.status == .misdirectedRequest, "\(host) must be refused, got \(response.status)")
                }
            }
        }
    }

    /// A request with `Host: host` on the wire.
    static func send(_ client: TestClient, _ method: HTTPRequest.Method, _ uri: String, host: String, _ headers: HTTPFields = [:]) async throws -> TestClient.Response {
        try await client.execute(.init(uri, method: method, authority: host, headers: headers, body: method == .get ? nil : ByteBuffer()))
    }

    @Test func loopbackHostNames() {
        #expect(RelayAdminBrowserGuardProbe.isLoopbackHost("127.0.0.1:8025"))
        #expect(RelayAdminBrowserGuardProbe.isLoopbackHost("127.255.0.9"))
        #expect(RelayAdminBrowserGuardProbe.isLoopbackHost("[::1]:8025"))
        #expect(RelayAdminBrowserGuardProbe.isLoopbackHost("relay.localhost"))
        #expect(!RelayAdminBrowserGuardProbe.isLoopbackHost("127.0.0.1.nip.io"))
        #expect(!RelayAdminBrowserGuardProbe.isLoopbackHost("[::1"))
        #expect(!RelayAdminBrowserGuardProbe.isLoopbackHost("127.0.0.256"))
        #expect(!RelayAdminBrowserGuardProbe.isLoopbackHost("localhost.evil.test"))
    }
}
