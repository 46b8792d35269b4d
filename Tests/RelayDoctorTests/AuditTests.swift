import Foundation
import M365Sandbox
import RelayCore
import RelayTestSupport
import Testing

@testable import RelayDoctor

/// A configuration that passes every audit rule, with its secrets, keys and
/// certificates as real files in a temporary directory.
final class AuditFixture: @unchecked Sendable {
    let directory = TemporaryDirectory("audit")
    let now = Date()
    var configuration: RelayConfiguration
    let configurationPath: String

    init() throws {
        let authority = try SandboxCertificateAuthority(commonName: "Audit test CA", now: now)
        let server = try authority.issueServerCertificate(dnsNames: ["relay.contoso.com"], ipAddresses: [], now: now)
        let app = try authority.issueClientCertificate(commonName: "relay.contoso.com", now: now)
        let files = [
            ("relay.crt", server.certificatePEM, 0o644), ("relay.key", server.privateKeyPEM, 0o600),
            ("app.crt", app.certificatePEM, 0o644), ("app.key", app.privateKeyPEM, 0o600),
            ("app.secret", "secret-value", 0o600), ("erp.hash", "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA", 0o600),
            ("dkim.key", "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n", 0o400),
            ("admin.token", "admin-token", 0o600),
        ]
        for (name, text, mode) in files { _ = try directory.write(name, text, mode: mode) }
        let expires = RelayConfigurationSyntax.formatDay(now.addingTimeInterval(200 * 86_400))
        let yaml = """
            server:
              hostname: relay.contoso.com
              listeners:
                - address: "0.0.0.0:587"
                  tls: starttls
                  require_tls: true
                - address: "[::]:465"
                  tls: implicit
                - address: "127.0.0.1:2525"
                  tls: none
                  allow_plaintext_auth: true
              tls:
                certificate_file: \(directory.file("relay.crt"))
                private_key_file: \(directory.file("relay.key"))
            clients:
              - name: scanners
                networks: ["10.20.0.0/24", "fd00:20::/64", "127.0.0.1/32"]
                auth: none
                rewrite_sender: scanner@contoso.com
                allowed_recipients: ["internal"]
                route: graph
              - name: erp
                auth: password
                username: erp
                password_hash_file: \(directory.file("erp.hash"))
                networks: ["10.30.0.0/16"]
                route: graph
              - name: local
                networks: ["127.0.0.0/8", "::1/128"]
                route: smtp
            routes:
              - name: graph
                mode: graph
                tenant_id: contoso.onmicrosoft.com
                client_id: 11111111-2222-3333-4444-555555555555
                client_certificate_file: \(directory.file("app.crt"))
                client_key_file: \(directory.file("app.key"))
                mailbox: relay@contoso.com
                accepted_domains: ["contoso.com"]
              - name: smtp
                mode: smtp
                tenant_id: contoso.onmicrosoft.com
                client_id: 11111111-2222-3333-4444-555555555555
                client_secret_file: \(directory.file("app.secret"))
                client_secret_expires: "\(expires)"
              - name: env
                mode: smtp
                tenant_id: contoso.onmicrosoft.com
                client_id: 11111111-2222-3333-4444-555555555555
                client_key_env: M365_RELAY_AUDIT_TEST_KEY
                client_certificate_file: \(directory.file("app.crt"))
            dkim:
              - domain: contoso.com
                selector: relay
                private_key_file: \(directory.file("dkim.key"))
            admin:
              address: "127.0.0.1:8025"
              token_file: \(directory.file("admin.token"))
            trace:
              retention: 30d
              keep_bodies: 0s
            """
        configurationPath = try directory.write("m365-relay.yaml", yaml, mode: 0o644)
        configuration = try RelayConfiguration.load(path: configurationPath)
    }

    func rows(_ options: RelayDoctorAudit.Options = .init()) -> [RelayDoctorRow] {
        RelayDoctorAudit.rows(configuration: configuration, configurationPath: configurationPath, options: options, now: now)
    }

    /// The rows that did not pass.
    func findings(_ options: RelayDoctorAudit.Options = .init()) -> [RelayDoctorRow] {
        rows(options).filter { $0.result != .pass }
    }

    func chmod(_ name: String, _ mode: Int) throws {
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: directory.file(name))
    }
}

@Suite("Doctor audit")
struct AuditTests {
    /// Exactly one row did not pass; it has `result` and names `keyPath`.
    static func expectOnlyFinding(
        _ fixture: AuditFixture, _ result: RelayDoctorRow.Result, naming keyPath: String, hint: String? = nil,
        options: RelayDoctorAudit.Options = .init(), sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let findings = fixture.findings(options)
        #expect(findings.count == 1, "expected one finding, got \(findings.map { "\($0.result): \($0.action): \($0.verification)" })", sourceLocation: sourceLocation)
        guard let finding = findings.first else { return }
        #expect(finding.step == "Audit", sourceLocation: sourceLocation)
        #expect(finding.result == result, "\(finding)", sourceLocation: sourceLocation)
        #expect((finding.action + " " + finding.verification + " " + finding.hint).contains(keyPath), "\(finding) does not name \(keyPath)", sourceLocation: sourceLocation)
        #expect(!finding.hint.isEmpty, sourceLocation: sourceLocation)
        if let hint {
            #expect(finding.hint.contains(hint), "\(finding.hint)", sourceLocation: sourceLocation)
        }
    }

    @Test("The clean configuration passes every row, one or more per rule")
    func cleanConfigurationPasses() throws {
        let fixture = try AuditFixture()
        let rows = fixture.rows()
        #expect(rows.allSatisfy { $0.step == "Audit" })
        #expect(fixture.findings().isEmpty, "\(fixture.findings())")
        let actions = rows.map(\.action)
        for rule in [
            "AUTH only under TLS: server.listeners[0]", "AUTH only under TLS: server.listeners[2]", "Client networks no wider than",
            "Address-only clients limited in recipients", "No route on basic authentication",
            "File permissions: server.tls.private_key_file", "File permissions: clients[1].password_hash_file",
            "File permissions: routes[0].client_key_file", "File permissions: routes[2].client_key_file",
            "File permissions: dkim[0].private_key_file", "File permissions: admin.token_file",
            "Expiry: server.tls.certificate_file", "Expiry: routes[0].client_certificate_file", "Expiry: routes[1].client_secret_expires",
            "Message bodies removed after delivery", "Trace retention", "Admin API protected",
        ] {
            #expect(actions.contains { $0.hasPrefix(rule) }, "no row for \(rule)")
        }
        // Secrets never reach the output.
        let text = rows.map { "\($0.action) \($0.verification) \($0.hint)" }.joined(separator: "\n")
        #expect(!text.contains("secret-value") && !text.contains("admin-token") && !text.contains("BEGIN"))
    }

    // MARK: AUTH under TLS

    @Test("allow_plaintext_auth on a non-loopback listener fails")
    func plaintextAuthOnNetwork() throws {
        let fixture = try AuditFixture()
        var listener = RelayConfiguration.Listener(address: RelayEndpoint(host: "0.0.0.0", port: 2526))
        listener.allowPlaintextAuth = true
        fixture.configuration.server.listeners.append(listener)
        Self.expectOnlyFinding(fixture, .fail, naming: "server.listeners[3].allow_plaintext_auth")
    }

    @Test("require_tls: false on a STARTTLS listener password clients use warns")
    func starttlsWithoutRequireTLS() throws {
        let fixture = try AuditFixture()
        fixture.configuration.server.listeners[0].requireTLS = false
        Self.expectOnlyFinding(fixture, .warn, naming: "server.listeners[0].require_tls: true")
        // Without password clients AUTH is not offered, and nothing is found.
        fixture.configuration.clients.remove(at: 1)
        #expect(fixture.findings().isEmpty, "\(fixture.findings())")
    }

    // MARK: Networks

    @Test("A client network wider than the bound fails", arguments: ["10.0.0.0/8", "0.0.0.0/0", "::/0", "fd00::/32", "::ffff:0:0/96"])
    func wideNetwork(network: String) throws {
        let fixture = try AuditFixture()
        fixture.configuration.clients[0].networks.append(try #require(RelayNetwork(parsing: network)))
        Self.expectOnlyFinding(fixture, .fail, naming: "clients[0].networks")
    }

    @Test("--widest-network moves the bound; every address fails whatever the bound")
    func widestNetworkOption() throws {
        let fixture = try AuditFixture()
        fixture.configuration.clients[0].networks.append(RelayNetwork(parsing: "10.0.0.0/8")!)
        let eight = RelayDoctorAudit.Options(widestIPv4Prefix: 8)
        #expect(fixture.findings(eight).isEmpty)
        fixture.configuration.clients[0].networks.removeLast()
        Self.expectOnlyFinding(fixture, .fail, naming: "clients[1].networks", options: .init(widestIPv4Prefix: 24))
        fixture.configuration.clients[1].networks = [RelayNetwork(parsing: "10.30.0.0/24")!]
        fixture.configuration.clients[0].networks.append(RelayNetwork(parsing: "0.0.0.0/0")!)
        let findings = fixture.findings(.init(widestIPv4Prefix: 0, widestIPv6Prefix: 0))
        #expect(findings.count == 1 && findings.first?.verification.contains("every address") == true, "\(findings)")
    }

    @Test("A password client without networks warns")
    func passwordClientAnywhere() throws {
        let fixture = try AuditFixture()
        fixture.configuration.clients[1].networks = []
        Self.expectOnlyFinding(fixture, .warn, naming: "clients[1].networks")
    }

    @Test("An auth: none client beyond loopback allowed to send anywhere warns (open-relay risk)")
    func openRelayRisk() throws {
        let fixture = try AuditFixture()
        fixture.configuration.clients[0].allowedRecipients = ["*"]
        Self.expectOnlyFinding(fixture, .warn, naming: "clients[0].allowed_recipients", hint: "internal")
        // The loopback-only client may keep `*`.
        #expect(fixture.configuration.clients[2].allowedRecipients == ["*"])
    }

    // MARK: Basic authentication

    @Test("A route on basic authentication fails")
    func basicAuthentication() throws {
        let fixture = try AuditFixture()
        let password = try fixture.directory.write("route.password", "hunter2")
        fixture.configuration.routes[1].username = "relay@contoso.com"
        fixture.configuration.routes[1].password = .file(password)
        Self.expectOnlyFinding(fixture, .fail, naming: "routes[1].username", hint: "client_certificate_file")
        #expect(!fixture.rows().contains { $0.verification.contains("hunter2") || $0.hint.contains("hunter2") })
    }

    // MARK: Files

    @Test("A group- or world-readable secret file fails with the chmod that fixes it", arguments: [
        ("relay.key", "server.tls.private_key_file"), ("erp.hash", "clients[1].password_hash_file"),
        ("app.key", "routes[0].client_key_file"), ("app.secret", "routes[1].client_secret_file"),
        ("dkim.key", "dkim[0].private_key_file"), ("admin.token", "admin.token_file"),
    ])
    func readableSecret(file: String, keyPath: String) throws {
        for mode in [0o640, 0o604] {
            let fixture = try AuditFixture()
            try fixture.chmod(file, mode)
            Self.expectOnlyFinding(fixture, .fail, naming: keyPath, hint: "chmod 600 \(fixture.directory.file(file))")
        }
    }

    @Test("A missing secret file fails; a secret from the environment passes")
    func missingSecret() throws {
        let fixture = try AuditFixture()
        try FileManager.default.removeItem(atPath: fixture.directory.file("admin.token"))
        Self.expectOnlyFinding(fixture, .fail, naming: "admin.token_file")
        #expect(fixture.findings().first?.verification.contains("no such file") == true)
        fixture.configuration.admin?.token = .environment("M365_RELAY_ADMIN_TOKEN")
        #expect(fixture.findings().isEmpty)
        #expect(fixture.rows().contains { $0.verification.contains("token_env: from environment variable M365_RELAY_ADMIN_TOKEN") })
    }

    @Test("A certificate others may replace fails")
    func writableCertificate() throws {
        let fixture = try AuditFixture()
        try fixture.chmod("app.crt", 0o666)
        let findings = fixture.findings()
        // routes[0] and routes[2] share the certificate file: one row each.
        #expect(findings.count == 2 && findings.allSatisfy { $0.result == .fail && $0.hint.contains("chmod 644") }, "\(findings)")
    }

    @Test("A configuration file holding a webhook URL must be private")
    func configurationFileWithWebhook() throws {
        let fixture = try AuditFixture()
        fixture.configuration.alerts = .init(webhookURL: "https://alerts.contoso.com/hook/capability")
        Self.expectOnlyFinding(fixture, .fail, naming: "alerts.webhook_url", hint: "chmod 600 \(fixture.configurationPath)")
        #expect(!fixture.rows().contains { $0.verification.contains("capability") })
        try fixture.chmod("m365-relay.yaml", 0o600)
        #expect(fixture.findings().isEmpty)
    }

    // MARK: Expiry

    @Test("A server certificate expiring within 30 days fails")
    func certificateExpiringSoon() throws {
        let fixture = try AuditFixture()
        let authority = try SandboxCertificateAuthority(commonName: "Audit test CA", now: fixture.now)
        let short = try authority.issueServerCertificate(dnsNames: ["relay.contoso.com"], ipAddresses: [], validity: 10 * 86_400, now: fixture.now)
        _ = try fixture.directory.write("relay.crt", short.certificatePEM, mode: 0o644)
        Self.expectOnlyFinding(fixture, .fail, naming: "server.tls.certificate_file")
        #expect(fixture.findings().first?.verification.contains("in 9 days") == true || fixture.findings().first?.verification.contains("in 10 days") == true,
                "\(fixture.findings())")
    }

    @Test("A client secret expiring within 30 days, or expired, fails", arguments: [5.0, -2.0])
    func secretExpiring(days: Double) throws {
        let fixture = try AuditFixture()
        fixture.configuration.routes[1].clientSecretExpires = fixture.now.addingTimeInterval(days * 86_400)
        Self.expectOnlyFinding(fixture, .fail, naming: "routes[1].client_secret_expires", hint: "Entra")
    }

    @Test("A client secret without client_secret_expires warns")
    func secretWithoutExpiry() throws {
        let fixture = try AuditFixture()
        fixture.configuration.routes[1].clientSecretExpires = nil
        Self.expectOnlyFinding(fixture, .warn, naming: "routes[1].client_secret_expires")
    }

    // MARK: Personal data

    @Test("Message bodies kept after delivery warn")
    func bodiesKept() throws {
        let fixture = try AuditFixture()
        fixture.configuration.trace.keepBodies = 7 * 86_400
        Self.expectOnlyFinding(fixture, .warn, naming: "trace.keep_bodies", hint: "keep_bodies: 0s")
    }

    @Test("A trace retention above 90 days warns")
    func longRetention() throws {
        let fixture = try AuditFixture()
        fixture.configuration.trace.retention = 180 * 86_400
        Self.expectOnlyFinding(fixture, .warn, naming: "trace.retention")
        fixture.configuration.trace.retention = 90 * 86_400
        #expect(fixture.findings().isEmpty)
        #expect(fixture.rows().contains { $0.action == "Trace retention" && $0.verification.contains("90d") })
    }

    // MARK: Admin API

    @Test("An admin API on the network without a token fails; loopback without one passes with a note")
    func adminWithoutToken() throws {
        let fixture = try AuditFixture()
        fixture.configuration.admin = .init(address: RelayEndpoint(host: "0.0.0.0", port: 8025), token: nil)
        Self.expectOnlyFinding(fixture, .fail, naming: "admin.token_file")
        fixture.configuration.admin = .init(address: RelayEndpoint(host: "127.0.0.1", port: 8025), token: nil)
        #expect(fixture.findings().isEmpty)
        let row = try #require(fixture.rows().first { $0.action == "Admin API protected" })
        #expect(row.result == .pass && !row.hint.isEmpty)
        fixture.configuration.admin = nil
        #expect(fixture.rows().contains { $0.action == "Admin API protected" && $0.verification.contains("off") })
    }

    @Test("An admin API with a token on a network address warns: plain HTTP")
    func adminOnNetworkWithToken() throws {
        let fixture = try AuditFixture()
        fixture.configuration.admin?.address = RelayEndpoint(host: "10.0.0.5", port: 8025)
        Self.expectOnlyFinding(fixture, .warn, naming: "admin.address")
    }
}
