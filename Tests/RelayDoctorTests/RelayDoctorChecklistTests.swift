import Foundation
import RelayCore
import RelayDoctor
import RelayTestSupport
import Testing

/// The checklist against the sandbox and a test DNS zone: examples/sandbox.yaml
/// passes every row, and each broken fixture fails exactly the row that checks
/// it, with the hint that fixes it.
@Suite("Doctor checklist")
struct RelayDoctorChecklistTests {
    /// Runs `body` with a started fixture, stopping it whatever happens.
    func withFixture(
        connectorNetworks: [String] = ["127.0.0.1/32"], zone: @escaping (String) -> String = { $0 },
        _ body: (DoctorSandboxFixture) async throws -> Void
    ) async throws {
        let fixture = try await DoctorSandboxFixture.start(connectorNetworks: connectorNetworks, zone: zone)
        do {
            try await body(fixture)
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }

    /// The one failed row, or a test failure listing what else went wrong.
    func onlyFailure(_ rows: [RelayDoctorRow], sourceLocation: SourceLocation = #_sourceLocation) throws -> RelayDoctorRow {
        #expect(rows.failures.count == 1, "expected exactly one failed row:\n\(rows.problems)", sourceLocation: sourceLocation)
        #expect(RelayDoctor.exitStatus(of: rows) == 1, sourceLocation: sourceLocation)
        return try #require(rows.failures.first, sourceLocation: sourceLocation)
    }

    @Test func theSandboxExamplePassesEveryRowIncludingATestMessage() async throws {
        try await withFixture { fixture in
            let rows = await fixture.run(try fixture.configurationFile(), sendTest: "someone@contoso.example")
            #expect(rows.allSatisfy { $0.result == .pass || $0.result == .info }, "\(rows.problems)")
            #expect(RelayDoctor.exitStatus(of: rows) == 0)
            // Each step of the checklist is there, in order.
            let steps = rows.map(\.step).reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
            #expect(steps == ["Configuration", "DNS", "Connectivity", "Authentication", "Connector", "Test message", "Local"])
            let message = try #require(rows.row("Test message", "someone@contoso.example"))
            #expect(message.result == .pass)
            #expect(message.verification.contains("250"), "Microsoft's reply: \(message.verification)")
            #expect(message.verification.contains("Message-ID <doctor."))
            #expect(fixture.sandbox.stats.messagesStored == 1, "only the test message is sent; the checks stop before DATA")
            // Signed as delivery signs: dkimpy verifies it against the key the example zone publishes.
            #expect(message.verification.contains("DKIM-signed d=contoso.example s=relay2026"), "\(message.verification)")
            let stored = try #require(try fixture.sandbox.mailStore.messages().first)
            let content = try fixture.sandbox.mailStore.content(of: stored)
            let name = "relay2026._domainkey.contoso.example"
            let verification = try await DKIMVerification.verify(Array(content), records: [name: try SandboxExample.zoneTXT(name)])
            #expect(verification.allVerified, "\(verification.signatures) \(verification.log)")
            // No secret reaches the rows.
            let text = rows.map { "\($0.action) \($0.verification) \($0.hint)" }.joined()
            #expect(!text.contains(DoctorSandboxFixture.secret))
        }
    }

    @Test func aWrongClientSecretFailsTheTokenRowWithTheAADSTSMeaning() async throws {
        try await withFixture { fixture in
            let wrong = try fixture.directory.write("wrong.secret", "not-the-secret\n", mode: 0o600)
            let file = try fixture.configurationFile { text in
                // Only the graph route gets the wrong secret: its token row alone fails.
                let parts = text.components(separatedBy: "  - name: tenant-graph")
                return parts[0] + "  - name: tenant-graph" + parts[1].replacingOccurrences(
                    of: "client_secret_file: \(fixture.directory.file("app.secret"))", with: "client_secret_file: \(wrong)")
            }
            let rows = await fixture.run(file)
            let failure = try onlyFailure(rows)
            #expect(failure.step == "Authentication")
            #expect(failure.action.hasPrefix("Token for route tenant-graph"))
            #expect(failure.verification.contains("AADSTS7000215"))
            #expect(failure.hint.contains("Invalid client secret"), "\(failure.hint)")
            #expect(rows.row("Authentication", "Graph permission of route tenant-graph")?.result == .skip)
            #expect(rows.row("Authentication", "Graph permission of route tenant-graph")?.hint.contains("Token for route tenant-graph") == true)
        }
    }

    @Test func aConnectorThatDoesNotMatchFailsWithTenantAttribution() async throws {
        try await withFixture(connectorNetworks: ["198.51.100.0/24"]) { fixture in
            let rows = await fixture.run(try fixture.configurationFile())
            let failure = try onlyFailure(rows)
            #expect(failure.step == "Connector")
            #expect(failure.verification.contains("550 5.7.64"), "\(failure.verification)")
            #expect(failure.hint.contains("TenantAttribution"))
            #expect(failure.hint.contains("sender IP addresses must include"))
            #expect(failure.hint.contains("127.0.0.1"))
        }
    }

    @Test func anEndpointThatIsDownFailsConnectivityAndSkipsWhatNeedsIt() async throws {
        try await withFixture { fixture in
            let closed = freeLoopbackPort()
            let file = try fixture.configurationFile { text in
                text.replacingOccurrences(of: "smtp_endpoint: 127.0.0.1:\(fixture.sandbox.ports.smtp)", with: "smtp_endpoint: 127.0.0.1:\(closed)")
            }
            let rows = await fixture.run(file)
            let failure = try onlyFailure(rows)
            #expect(failure.step == "Connectivity")
            #expect(failure.action.contains("TCP to SMTP endpoint 127.0.0.1:\(closed)"))
            #expect(failure.verification.contains("refused"), "\(failure.verification)")
            #expect(failure.hint.contains("Allow outbound TCP \(closed)"))
            let auth = try #require(rows.row("Authentication", "AUTH XOAUTH2 on 127.0.0.1:\(closed)"))
            #expect(auth.result == .skip)
            #expect(auth.hint.contains(failure.action))
        }
    }

    @Test func anEndpointCertificateOutsideTheTrustedCAsFailsWithTheCAFileHint() async throws {
        try await withFixture { fixture in
            // Without ca_file the connector route trusts only the system's roots, which do not know the sandbox CA:
            // what a TLS-inspecting proxy looks like.
            let file = try fixture.configurationFile { text in
                let parts = text.components(separatedBy: "  - name: tenant-connector")
                return parts[0] + "  - name: tenant-connector" + parts[1].replacingOccurrences(of: "    ca_file: \(fixture.sandbox.caFile)\n", with: "")
            }
            let rows = await fixture.run(file)
            let failure = try onlyFailure(rows)
            let mx = "127.0.0.1:\(fixture.sandbox.ports.connector ?? 0)"
            #expect(failure.step == "Connectivity")
            #expect(failure.action == "Certificate of \(mx)")
            #expect(failure.verification.contains("does not verify"), "\(failure.verification)")
            #expect(failure.verification.contains("issued by CN=m365-relay sandbox CA"))
            #expect(failure.hint.contains("ca_file"))
            // The handshake itself worked: only the certificate is wrong.
            #expect(rows.row("Connectivity", "STARTTLS on \(mx)")?.result == .pass)
            #expect(rows.row("Connector", "route tenant-connector")?.result == .skip)
        }
    }

    @Test func aListenerPortInUseWarnsThatTheRelayMayBeRunning() async throws {
        try await withFixture { fixture in
            let file = try fixture.configurationFile()
            let holder = try ServerSocket(port: fixture.listenerPort)
            defer { holder.close() }
            let rows = await fixture.run(file)
            #expect(rows.failures.isEmpty, "\(rows.problems)")
            let row = try #require(rows.row("Local", "127.0.0.1:\(fixture.listenerPort) can be bound"))
            #expect(row.result == .warn)
            #expect(row.verification == "in use (the relay is running?)")
        }
    }

    @Test func aWorldReadableKeyFailsLocalWithChmod() async throws {
        try await withFixture { fixture in
            let file = try fixture.configurationFile()
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: fixture.directory.file("dkim.key"))
            let rows = await fixture.run(file)
            let failure = try onlyFailure(rows)
            #expect(failure.step == "Local")
            #expect(failure.action.contains("dkim.key"))
            #expect(failure.verification.contains("644"))
            #expect(failure.hint == "chmod 600 \(fixture.directory.file("dkim.key"))")
        }
    }

    @Test func anExpiredClientSecretFailsLocal() async throws {
        try await withFixture { fixture in
            let file = try fixture.configurationFile { text in
                let parts = text.components(separatedBy: "  - name: tenant-graph")
                return parts[0] + "  - name: tenant-graph" + parts[1].replacingOccurrences(
                    of: "client_secret_expires: \"2099-12-31\"", with: "client_secret_expires: \"2020-01-31\"")
            }
            let rows = await fixture.run(file)
            let failure = try onlyFailure(rows)
            #expect(failure.step == "Local")
            #expect(failure.action == "route tenant-graph client secret expiry")
            #expect(failure.verification == "expired on 2020-01-31")
            #expect(failure.hint.contains("Create a new client secret"))
        }
    }

    @Test func aWrongMXRecordFailsThatRowOnly() async throws {
        try await withFixture(zone: { zone in
            zone.replacingOccurrences(of: "IN MX    0 contoso-example.mail.protection.outlook.com.", with: "IN MX    10 mail.contoso.example.")
        }) { fixture in
            let rows = await fixture.run(try fixture.configurationFile())
            let failure = try onlyFailure(rows)
            #expect(failure.step == "DNS")
            #expect(failure.action == "MX of contoso.example points at Microsoft 365")
            #expect(failure.verification.contains("mail.contoso.example"))
            #expect(failure.hint.contains("contoso-example.mail.protection.outlook.com"))
        }
    }

    @Test func aRouteMissingItsMailboxFailsConfigurationAndSkipsItsChecks() async throws {
        try await withFixture { fixture in
            let file = try fixture.configurationFile { text in
                let parts = text.components(separatedBy: "  - name: tenant-graph")
                return parts[0] + "  - name: tenant-graph" + parts[1].replacingOccurrences(of: "    mailbox: relay@contoso.example\n", with: "")
            }
            let rows = await fixture.run(file)
            let failure = try onlyFailure(rows)
            #expect(failure.step == "Configuration")
            #expect(failure.action == "Route tenant-graph is complete for mode graph")
            #expect(failure.hint.contains("mailbox"))
            #expect(rows.row("Authentication", "route tenant-graph")?.result == .skip)
        }
    }

    @Test func aFileThatDoesNotLoadGivesOneRowPerProblemAndSkipsTheRest() async throws {
        let directory = TemporaryDirectory("doctor-invalid")
        let file = try directory.write("bad.yaml", """
            server:
              listeners: []
            routes:
              - name: r
                mode: graph
            """)
        let rows = await RelayDoctor().run(RelayDoctor.Options(configurationFile: file))
        let failures = rows.failures
        #expect(failures.count >= 2, "\(rows.problems)")
        #expect(failures.allSatisfy { $0.step == "Configuration" && $0.hint.contains("check-config") })
        #expect(failures.contains { $0.verification.hasPrefix("server.listeners:") })
        #expect(rows.filter { $0.step != "Configuration" }.allSatisfy { $0.result == .skip })
        #expect(RelayDoctor.exitStatus(of: rows) == 1)
    }
}

/// A listening TCP socket on 127.0.0.1, as a running relay would hold.
final class ServerSocket: @unchecked Sendable {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 1) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    func close() { _ = Glibc.close(fd) }
}
