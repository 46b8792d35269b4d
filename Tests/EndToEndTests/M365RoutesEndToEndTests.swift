import Foundation
import Logging
import M365Sandbox
import NIOPosix
import RelayCore
import RelayTestSupport
import Testing
import X509

/// A sandbox tenant with every endpoint (submission, MX with connectors, HTTPS
/// for tokens and Graph), the apps of `SandboxApps`, and mailboxes of contoso.com.
private struct Tenant {
    let directory: TemporaryDirectory
    let sandbox: M365Sandbox

    init(_ configure: (inout M365SandboxConfiguration) -> Void = { _ in }) async throws {
        directory = TemporaryDirectory("m365-routes")
        var configuration = M365SandboxConfiguration(dataDirectory: directory.file("sandbox"))
        SandboxApps.configure(&configuration)
        configuration.mailboxes += [
            .init(address: "relay@contoso.com", sendAs: ["scanner@contoso.com"]),
            .init(address: "scanner@contoso.com"),
        ]
        configuration.acceptedDomains = ["contoso.com"]
        configure(&configuration)
        var logger = Logger(label: "sandbox")
        logger.logLevel = .warning
        sandbox = try M365Sandbox(
            configuration: configuration, smtp: ("127.0.0.1", 0), connector: ("127.0.0.1", 0), http: ("127.0.0.1", 0),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        try await sandbox.start()
    }

    var login: String { sandbox.httpBaseURL ?? "" }

    /// An `smtp` route to the sandbox's submission endpoint with the secret app's token.
    func smtpRoute(name: String = "tenant", mailbox: String? = "relay@contoso.com") -> String {
        """
          - name: \(name)
            mode: smtp
            smtp_endpoint: "127.0.0.1:\(sandbox.ports.smtp)"
            ca_file: \(sandbox.caFile)
            login_url: \(login)
            tenant_id: sandbox.onmicrosoft.com
            client_id: \(SandboxApps.clientID)
            client_secret_file: $DIR/secret
        """ + (mailbox.map { "\n    mailbox: \($0)" } ?? "")
    }

    /// A relay whose one client sends through `routes` (YAML list items), the first one named `tenant`.
    func relay(routes: String, delivery: String = "delivery:\n  retry: [1s]\n  bounces: sender") async throws -> RelayHarness {
        try await RelayHarness { directory in
            _ = try directory.write("secret", SandboxApps.secret + "\n")
            _ = try directory.write("app.crt", SandboxApps.signing.pem + "\n", mode: 0o644)
            _ = try directory.write("app.key", try SandboxApps.signing.key.pemRepresentation + "\n")
            return """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:0"
                  tls: none
            storage:
              url: "sqlite:\(directory.file("relay.sqlite"))"
            clients:
              - name: local
                networks: ["127.0.0.1/32"]
                auth: none
                route: tenant
            routes:
            \(routes.replacingOccurrences(of: "$DIR", with: directory.path))
            \(delivery)
            """
        }
    }

    func stop(_ relay: RelayHarness) async throws {
        try await relay.stop()
        await sandbox.shutdown()
    }
}

private func mail(from: String, to: String = "alice@contoso.com", subject: String, extraHeaders: String = "", body: String = "hello") -> [UInt8] {
    Array("From: \(from)\r\nTo: \(to)\r\n\(extraHeaders)Subject: \(subject)\r\nMessage-ID: <\(subject)@test>\r\n\r\n\(body)\r\n".utf8)
}

/// The relay records an attempt just after the sandbox stores the message: wait for the record.
private func deliveredMessages(_ relay: RelayHarness, count: Int) async throws -> [RelayQueuedMessage] {
    for _ in 0..<1200 {
        let delivered = try await relay.application.store.list(state: .delivered, limit: 50)
        if delivered.count >= count { return delivered }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await relay.application.store.list(state: .delivered, limit: 50)
}

@Suite("Microsoft 365 routes, each mode end to end against the sandbox")
struct M365RoutesEndToEndTests {
    @Test("smtp: XOAUTH2 with an app-only token from the token endpoint (client secret); one token for several messages")
    func smtpWithClientSecret() async throws {
        let tenant = try await Tenant()
        let relay = try await tenant.relay(routes: tenant.smtpRoute())
        for number in 1...3 {
            let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["alice@contoso.com"], content: mail(from: "scanner@contoso.com", subject: "smtp\(number)"))
            #expect(sent["ok"] as? Bool == true, "\(sent)")
        }
        #expect(try await eventually(timeout: 60) { try tenant.sandbox.mailStore.messages().count == 3 })
        let stored = try tenant.sandbox.mailStore.messages()
        #expect(stored.allSatisfy { $0.mailbox == "relay@contoso.com" && $0.recipients == ["alice@contoso.com"] })
        #expect(tenant.sandbox.stats.tokensIssued == 1)
        try await tenant.stop(relay)
    }

    @Test("graph: sendMail with a certificate assertion; an envelope-only recipient arrives as Bcc; the request-id is kept")
    func graphWithCertificate() async throws {
        let tenant = try await Tenant()
        let relay = try await tenant.relay(routes: """
              - name: tenant
                mode: graph
                graph_url: \(tenant.login)
                login_url: \(tenant.login)
                ca_file: \(tenant.sandbox.caFile)
                tenant_id: sandbox.onmicrosoft.com
                client_id: \(SandboxApps.certificateClientID)
                client_certificate_file: $DIR/app.crt
                client_key_file: $DIR/app.key
            """)
        let sent = try await sendWithPython(
            port: relay.port, from: "scanner@contoso.com", to: ["alice@contoso.com", "hidden@contoso.com"],
            content: mail(from: "scanner@contoso.com", subject: "graph"))
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        #expect(try await eventually(timeout: 60) { try tenant.sandbox.mailStore.messages().count == 1 })
        let stored = try #require(try tenant.sandbox.mailStore.messages().first)
        #expect(stored.via == "graph")
        #expect(Set(stored.recipients) == ["alice@contoso.com", "hidden@contoso.com"])
        #expect(stored.mailbox == "scanner@contoso.com")
        let requestID = try #require(stored.requestID)
        var delivered = 0
        for _ in 0..<1200 where delivered == 0 {
            delivered = try await relay.application.store.list(state: .delivered, limit: 5).count
            if delivered == 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(delivered == 1)
        // The stored copy has no Bcc header: Graph removes it, as Exchange does.
        let content = String(decoding: try tenant.sandbox.mailStore.content(of: stored), as: UTF8.self)
        #expect(!content.contains("hidden@contoso.com"))
        #expect(!requestID.isEmpty)
        try await tenant.stop(relay)
    }

    @Test("connector: the tenant MX over STARTTLS, attributed by the relay's client certificate")
    func connectorWithCertificate() async throws {
        let authority = try SandboxCertificateAuthority(commonName: "relay client CA")
        let client = try authority.issueClientCertificate(commonName: "relay.contoso.com")
        let scratch = TemporaryDirectory("connector-ca")
        let caFile = try scratch.write("client-ca.pem", authority.certificatePEM + "\n", mode: 0o644)
        let tenant = try await Tenant { configuration in
            configuration.connectors = [.init(name: "relay-certificate", certificateSubject: "relay.contoso.com")]
            configuration.trustedClientCAFiles = [caFile]
        }
        let certificate = try scratch.write("relay.crt", client.certificatePEM + "\n", mode: 0o644)
        let key = try scratch.write("relay.key", client.privateKeyPEM + "\n")
        let relay = try await tenant.relay(routes: """
              - name: tenant
                mode: connector
                mx_endpoint: "127.0.0.1:\(tenant.sandbox.ports.connector ?? 0)"
                ca_file: \(tenant.sandbox.caFile)
                client_certificate_file: \(certificate)
                client_key_file: \(key)
            """)
        let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["partner@fabrikam.com"], content: mail(from: "scanner@contoso.com", to: "partner@fabrikam.com", subject: "connector"))
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        #expect(try await eventually(timeout: 60) { try tenant.sandbox.mailStore.messages().count == 1 })
        let stored = try #require(try tenant.sandbox.mailStore.messages().first)
        #expect(stored.via == "connector")
        #expect(stored.connectorName == "relay-certificate")
        #expect(stored.recipients == ["partner@fabrikam.com"])
        try await tenant.stop(relay)
    }

    @Test("connector: without a matching connector Microsoft says 550 5.7.64 and the route is paused, the message kept")
    func connectorNotAttributed() async throws {
        let tenant = try await Tenant { $0.connectors = [.init(name: "other-office", senderNetworks: ["192.0.2.0/24"])] }
        let relay = try await tenant.relay(routes: """
              - name: tenant
                mode: connector
                mx_endpoint: "127.0.0.1:\(tenant.sandbox.ports.connector ?? 0)"
                ca_file: \(tenant.sandbox.caFile)
            """)
        let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["partner@fabrikam.com"], content: mail(from: "scanner@contoso.com", to: "partner@fabrikam.com", subject: "unattributed"))
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        let delivery = relay.application.delivery
        #expect(try await eventually(timeout: 60) { delivery.health.hold(on: "tenant", now: Date())?.kind == .routePaused })
        // The route is held a moment before the attempt is recorded: wait for the record.
        var queued = try await relay.application.store.list(state: .queued, limit: 5)
        for _ in 0..<1200 where queued.first?.attempts ?? 0 == 0 {
            try await Task.sleep(for: .milliseconds(50))
            queued = try await relay.application.store.list(state: .queued, limit: 5)
        }
        #expect(queued.count == 1)
        #expect(queued.first?.recipients.first?.status == .pending)
        #expect(queued.first?.recipients.first?.lastReply?.contains("5.7.64") == true)
        #expect(try tenant.sandbox.mailStore.messages().isEmpty)
        try await tenant.stop(relay)
    }

    @Test("direct-send: internal recipients delivered without authentication; an external one refused before sending, with the reason")
    func directSend() async throws {
        let tenant = try await Tenant()
        let relay = try await tenant.relay(routes: """
              - name: tenant
                mode: direct-send
                domain: contoso.com
                mx_endpoint: "127.0.0.1:\(tenant.sandbox.ports.connector ?? 0)"
                ca_file: \(tenant.sandbox.caFile)
            """, delivery: "delivery:\n  retry: [1s]\n  bounces: none")
        let sent = try await sendWithPython(
            port: relay.port, from: "scanner@contoso.com", to: ["alice@contoso.com", "partner@fabrikam.com"],
            content: mail(from: "scanner@contoso.com", subject: "direct"))
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        #expect(try await eventually(timeout: 60) { try tenant.sandbox.mailStore.messages().count == 1 })
        let stored = try #require(try tenant.sandbox.mailStore.messages().first)
        #expect(stored.via == "direct-send")
        #expect(stored.recipients == ["alice@contoso.com"])
        let store = relay.application.store
        var finished: RelayQueuedMessage?
        for _ in 0..<1200 {
            finished = try await store.list(state: .failed, limit: 5).first
            if finished != nil { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let message = try #require(finished)
        let external = try #require(message.recipients.first { $0.address == "partner@fabrikam.com" })
        #expect(external.status == .failed)
        #expect(external.lastReply?.contains("accepted domains") == true)
        #expect(message.recipients.first { $0.address == "alice@contoso.com" }?.status == .delivered)
        try await tenant.stop(relay)
    }

    @Test("SendAsDenied fails the message at once and the sender gets a delivery status notification")
    func sendAsDeniedBounces() async throws {
        let tenant = try await Tenant()
        let relay = try await tenant.relay(routes: tenant.smtpRoute())
        // relay@contoso.com may send as scanner@, not as the CEO.
        let sent = try await sendWithPython(port: relay.port, from: "ceo@contoso.com", to: ["alice@contoso.com"], content: mail(from: "ceo@contoso.com", subject: "spoof"))
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        #expect(try await eventually(timeout: 60) { try tenant.sandbox.mailStore.messages().count == 1 })
        let dsn = try #require(try tenant.sandbox.mailStore.messages().first)
        #expect(dsn.sender.isEmpty)
        #expect(dsn.recipients == ["ceo@contoso.com"])
        let report = String(decoding: try tenant.sandbox.mailStore.content(of: dsn), as: UTF8.self)
        #expect(report.contains("Final-Recipient: rfc822; alice@contoso.com"))
        #expect(report.contains("SendAsDenied"))
        let failed = try await relay.application.store.list(state: .failed, limit: 5)
        #expect(failed.first { $0.envelope.sender == "ceo@contoso.com" }?.attempts == 1)
        try await tenant.stop(relay)
    }

    @Test("an expired token is replaced before it is refused: no delivery fails, a second token is issued")
    func expiredTokenIsRefreshed() async throws {
        // Short enough to outlive within the test, long enough that a loaded machine uses it before it expires.
        let tenant = try await Tenant { $0.tokenLifetime = 6 }
        let relay = try await tenant.relay(routes: tenant.smtpRoute())
        let first = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["alice@contoso.com"], content: mail(from: "scanner@contoso.com", subject: "before"))
        #expect(first["ok"] as? Bool == true)
        #expect(try await eventually(timeout: 60) { try tenant.sandbox.mailStore.messages().count == 1 })
        // Past the first token's lifetime; the idle connection is gone too (the sandbox drops it or it is stale).
        try await Task.sleep(for: .seconds(7))
        let second = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["alice@contoso.com"], content: mail(from: "scanner@contoso.com", subject: "after"))
        #expect(second["ok"] as? Bool == true)
        #expect(try await eventually(timeout: 60) { try tenant.sandbox.mailStore.messages().count == 2 })
        let delivered = try await deliveredMessages(relay, count: 2)
        #expect(delivered.count == 2)
        #expect(delivered.allSatisfy { $0.attempts == 1 }, "\(delivered.map { ($0.attempts, $0.lastError ?? "") })")
        #expect(tenant.sandbox.stats.tokensIssued >= 2)
        try await tenant.stop(relay)
    }

    @Test("Graph's 429 Retry-After is honoured: the retry waits at least that long, and the message is delivered")
    func retryAfterIsHonoured() async throws {
        let tenant = try await Tenant()
        try tenant.sandbox.inject(.graphError(status: 429, code: "ApplicationThrottled", message: "Application is over its MailboxConcurrency limit.", retryAfter: 2))
        let relay = try await tenant.relay(routes: """
              - name: tenant
                mode: graph
                graph_url: \(tenant.login)
                login_url: \(tenant.login)
                ca_file: \(tenant.sandbox.caFile)
                tenant_id: sandbox.onmicrosoft.com
                client_id: \(SandboxApps.clientID)
                client_secret_file: $DIR/secret
            """)
        let started = Date()
        let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["alice@contoso.com"], content: mail(from: "scanner@contoso.com", subject: "throttled"))
        #expect(sent["ok"] as? Bool == true)
        #expect(try await eventually(timeout: 60) { try tenant.sandbox.mailStore.messages().count == 1 })
        let stored = try #require(try tenant.sandbox.mailStore.messages().first)
        #expect(stored.receivedAt.timeIntervalSince(started) >= 2)
        let delivered = try await deliveredMessages(relay, count: 1)
        #expect(delivered.first?.attempts == 2)
        try await tenant.stop(relay)
    }

    @Test("a route refused by Microsoft sends its mail through the fallback route; no message goes by both")
    func fallbackRoute() async throws {
        let tenant = try await Tenant()
        // The graph app is refused on every request: 403 ErrorAccessDenied pauses the route.
        try tenant.sandbox.inject(.graphError(status: 403, code: "ErrorAccessDenied", message: "Access is denied.", count: 100))
        let relay = try await tenant.relay(routes: """
              - name: tenant
                mode: graph
                graph_url: \(tenant.login)
                login_url: \(tenant.login)
                ca_file: \(tenant.sandbox.caFile)
                tenant_id: sandbox.onmicrosoft.com
                client_id: \(SandboxApps.clientID)
                client_secret_file: $DIR/secret
                fallback: submission
            """ + "\n" + tenant.smtpRoute(name: "submission", mailbox: nil))
        for number in 1...2 {
            let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["alice@contoso.com"], content: mail(from: "scanner@contoso.com", subject: "fallback\(number)"))
            #expect(sent["ok"] as? Bool == true)
        }
        #expect(try await eventually(timeout: 60) { try tenant.sandbox.mailStore.messages().count == 2 })
        try await Task.sleep(for: .milliseconds(300))
        let stored = try tenant.sandbox.mailStore.messages()
        #expect(stored.count == 2)
        #expect(stored.allSatisfy { $0.via != "graph" })
        let delivered = try await deliveredMessages(relay, count: 2)
        #expect(delivered.count == 2)
        #expect(delivered.allSatisfy { $0.envelope.route == "submission" })
        try await tenant.stop(relay)
    }
}
