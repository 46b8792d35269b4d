import Foundation
import Logging
import M365Sandbox
import NIOPosix
import RelayTestSupport
import Testing

/// `m365-relay doctor --config examples/sandbox.yaml` as a user runs it: the
/// built binary against the sandbox and a test DNS zone, on free ports. The
/// fixtures that break one check at a time run in-process in
/// Tests/RelayDoctorTests/RelayDoctorChecklistTests.swift.
@Suite("doctor command")
struct DoctorCommandTests {
    /// The sandbox as examples/sandbox.yaml's header starts it, on free ports.
    static func startSandbox(data: TemporaryDirectory) async throws -> M365Sandbox {
        var configuration = M365SandboxConfiguration(dataDirectory: data.path)
        configuration.tenantID = "sandbox.onmicrosoft.com"
        configuration.apps = [.init(clientID: SandboxExample.clientID, secret: SandboxExample.secret)]
        configuration.connectors = [.init(name: "relay", senderNetworks: ["127.0.0.1/32"])]
        let sandbox = try M365Sandbox(
            configuration: configuration, smtp: ("127.0.0.1", 0), connector: ("127.0.0.1", 0), http: ("127.0.0.1", 0),
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "doctor-e2e", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await sandbox.start()
        return sandbox
    }

    static func rows(_ json: String) throws -> [[String: String]] {
        try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: String]], "not a JSON array: \(json.prefix(500))")
    }

    @Test func theSandboxExamplePassesEveryRowAndABrokenOneExitsOne() async throws {
        let data = TemporaryDirectory("doctor-e2e-sandbox")
        let directory = TemporaryDirectory("doctor-e2e")
        let sandbox = try await Self.startSandbox(data: data)
        let dns: TestDNSServer
        do { dns = try await TestDNSServer.start(zone: try SandboxExample.read("examples/sandbox/sandbox.zone")) } catch {
            await sandbox.shutdown()
            throw error
        }
        defer { dns.stop() }
        do {
            let file = try SandboxExample.configuration(in: directory, sandbox: sandbox, dnsPort: dns.port, listenerPort: freeLoopbackPort())
            let passing = try await CommandLineTests.run(["doctor", "--config", file, "--json", "--timeout", "60"])
            let rows = try Self.rows(passing.stdout)
            let problems = rows.filter { $0["result"] != "pass" && $0["result"] != "info" }
            #expect(problems.isEmpty, "\(problems)\nstderr: \(passing.stderr)")
            #expect(passing.status == 0)
            #expect(rows.allSatisfy { Set($0.keys) == ["step", "action", "verification", "result", "hint"] })
            // Every step proved something (the test message is only sent with --send-test).
            for step in ["Configuration", "DNS", "Connectivity", "Authentication", "Connector", "Local"] {
                #expect(rows.contains { $0["step"] == step && $0["result"] == "pass" }, "\(step)")
            }
            // The DNS rows came from the test server named in dns.server.
            #expect(dns.queries().contains { $0.name == "contoso.example" && $0.type == "MX" })

            // The human table: same rows, no colour when stdout is not a terminal.
            let table = try await CommandLineTests.run(["doctor", "--config", file, "--timeout", "60"])
            #expect(table.status == 0)
            #expect(table.stdout.hasPrefix("Step"))
            #expect(table.stdout.contains("no step failed"))
            #expect(!table.stdout.contains("\u{1B}["))

            // One thing broken: the secret file is readable by everyone.
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: directory.file("app.secret"))
            let broken = try await CommandLineTests.run(["doctor", "--config", file, "--json", "--timeout", "60"])
            let failed = try Self.rows(broken.stdout).filter { $0["result"] == "fail" }
            #expect(broken.status == 1)
            #expect(failed.count == 1, "\(failed)")
            #expect(failed.first?["hint"] == "chmod 600 \(directory.file("app.secret"))")
        } catch {
            await sandbox.shutdown()
            throw error
        }
        await sandbox.shutdown()
    }

    @Test func usageErrorsExitTwo() async throws {
        let badDNS = try await CommandLineTests.run(["doctor", "--dns-server", "not-an-endpoint"])
        #expect(badDNS.status == 2, "\(badDNS.stderr)")
        #expect(badDNS.stderr.contains("--dns-server"))
        let badAddress = try await CommandLineTests.run(["doctor", "--send-test", "nobody"])
        #expect(badAddress.status == 2, "\(badAddress.stderr)")
    }

    @Test func aMissingConfigurationFileFailsWithOneRowAndExitsOne() async throws {
        let result = try await CommandLineTests.run(["doctor", "--config", "/nonexistent/m365-relay.yaml", "--json"])
        #expect(result.status == 1)
        let rows = try Self.rows(result.stdout)
        #expect(rows.first?["result"] == "fail")
        #expect(rows.first?["verification"] == "(file): no such file")
    }

    /// `--audit --widest-network N` moves the bound on client networks.
    @Test func theAuditBoundOnClientNetworksIsAFlag() async throws {
        let directory = TemporaryDirectory("doctor-audit")
        let configuration = try directory.write("relay.yaml", """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:2599"
                  tls: none
            storage:
              url: "sqlite:\(directory.file("relay.sqlite"))"
            clients:
              - name: branch-offices
                networks: ["10.16.0.0/12"]
                auth: none
                route: dry-run
            routes:
              - name: dry-run
                mode: sandbox
            """)
        func networkRow(_ arguments: [String]) async throws -> [String: String]? {
            let result = try await CommandLineTests.run(["doctor", "--config", configuration, "--audit", "--json"] + arguments)
            // One row per offending network, or one pass row when none is too wide.
            return try Self.rows(result.stdout).first { ($0["action"] ?? "").hasPrefix("Client network") }
        }
        let strict = try #require(try await networkRow([]), "no row about the client network")
        #expect(strict["result"] == "fail", "\(strict)")
        let relaxed = try #require(try await networkRow(["--widest-network", "8"]), "no row about the client network")
        #expect(relaxed["result"] == "pass", "\(relaxed)")
        let bad = try await CommandLineTests.run(["doctor", "--audit", "--widest-network", "40"])
        #expect(bad.status == 2, "\(bad.stderr)")
    }
}
