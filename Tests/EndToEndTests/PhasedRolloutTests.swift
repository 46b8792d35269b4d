import Foundation
import Logging
import M365Sandbox
import NIOPosix
import RelayCore
import RelayServer
import RelayStorage
import RelayTestSupport
import Testing

/// Phased rollout (issue 6): a group of devices sends to a `sandbox` route (a
/// dry run: accepted and traced, not sent to Microsoft) until one changed
/// `route:` line and a reload move it to the tenant, without a restart.
@Suite("Phased rollout: clients move between routes on reload")
struct PhasedRolloutTests {
    /// The relay's configuration with the `scanners` group on `route`.
    static func yaml(_ directory: TemporaryDirectory, tenantPort: Int, caFile: String, route: String, extra: String = "") throws -> String {
        let token = try directory.write("token", "rollout-token\n")
        return """
        server:
          hostname: relay.test
          listeners:
            - address: "127.0.0.1:0"
              tls: none
        storage:
          url: "sqlite:\(directory.file("relay.sqlite"))"
        clients:
          - name: scanners
            networks: ["127.0.0.1/32"]
            auth: none
            route: \(route)
        routes:
          - name: dry-run
            mode: sandbox
          - name: tenant
            mode: smtp
            smtp_endpoint: "127.0.0.1:\(tenantPort)"
            ca_file: \(caFile)
            token_file: \(token)
        \(extra)
        """
    }

    @Test func aGroupMovesFromTheDryRunToTheTenantWithOneLineAndAReload() async throws {
        let directory = TemporaryDirectory("rollout")
        // "Microsoft": a sandbox of the test's own, outside the relay.
        var tenantConfiguration = M365SandboxConfiguration(dataDirectory: directory.file("tenant"))
        tenantConfiguration.anyMailboxToken = "rollout-token"
        let tenant = try M365Sandbox(configuration: tenantConfiguration, smtp: ("127.0.0.1", 0), group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "tenant"))
        let tenantPort = try await tenant.start()
        defer { Task { await tenant.shutdown() } }

        let path = directory.file("relay.yaml")
        try Self.yaml(directory, tenantPort: tenantPort, caFile: tenant.caFile, route: "dry-run").write(toFile: path, atomically: true, encoding: .utf8)
        var logger = Logger(label: "rollout")
        logger.logLevel = .warning
        let application = try await RelayApplication.start(
            configuration: try RelayConfiguration.load(path: path), configurationPath: path, logger: logger, handleSignals: false)
        let runner = Task { try await application.run() }

        // 1. The dry run: accepted, traced on route dry-run, nothing reaches the tenant.
        let first = try await Self.send(application, subject: "dry run")
        let dryRun = try await Self.waitUntilFinished(application, first)
        #expect(dryRun.message.route == "dry-run" && dryRun.message.status == .delivered, "\(dryRun.message)")
        #expect(try tenant.mailStore.messages().isEmpty, "a dry run must not reach the tenant")

        // 2. One line changes; a reload moves the group. Nothing else needs a restart.
        try Self.yaml(directory, tenantPort: tenantPort, caFile: tenant.caFile, route: "tenant").write(toFile: path, atomically: true, encoding: .utf8)
        let outcome = try application.reloadConfiguration()
        #expect(outcome.changedClients == ["scanners"])
        #expect(outcome.needsRestart.isEmpty, "\(outcome.needsRestart)")
        let second = try await Self.send(application, subject: "live")
        let live = try await Self.waitUntilFinished(application, second)
        #expect(live.message.route == "tenant" && live.message.status == .delivered, "\(live.message)")
        #expect(try tenant.mailStore.messages().map(\.messageID) == ["<live@rollout.test>"])

        // 3. A broken file changes nothing: the reload says why, mail keeps the last good rules.
        try "clients: [ {name: scanners, nonsense: 1} ]\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: RelayStartupError.self) { try application.reloadConfiguration() }
        // A client on a route the running relay does not have: refused, a restart is needed.
        try Self.yaml(directory, tenantPort: tenantPort, caFile: tenant.caFile, route: "graph-later", extra: """
              - name: graph-later
                mode: sandbox
            """).write(toFile: path, atomically: true, encoding: .utf8)
        do {
            try application.reloadConfiguration()
            Issue.record("a client on a new route must be refused")
        } catch {
            #expect(error.description.contains("graph-later") && error.description.contains("restart"), "\(error)")
        }
        let third = try await Self.send(application, subject: "still live")
        #expect(try await Self.waitUntilFinished(application, third).message.route == "tenant")

        await application.shutdown()
        try await runner.value
    }

    /// The same through the built binary and SIGHUP.
    @Test func sighupAppliesTheNewRouteToNewSessions() async throws {
        let directory = TemporaryDirectory("rollout-sighup")
        let port = freeLoopbackPort()
        func configuration(route: String) -> String {
            """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:\(port)"
                  tls: none
            storage:
              url: "sqlite:\(directory.file("data/relay.sqlite"))"
            clients:
              - name: scanners
                networks: ["127.0.0.1/32"]
                auth: none
                route: \(route)
            routes:
              - name: dry-run
                mode: sandbox
              - name: pilot
                mode: sandbox
            """
        }
        let path = try directory.write("relay.yaml", configuration(route: "dry-run"))
        let relay = try RelayChildProcess(configuration: path, log: directory.file("relay.log"))
        defer { relay.kill() }
        #expect(await eventually(timeout: 60) { relay.log.contains("m365-relay started") }, "\(relay.log)")
        let content = Array("From: scanner@contoso.com\r\nSubject: x\r\n\r\nx\r\n".utf8)
        _ = try await sendWithPython(port: port, from: "scanner@contoso.com", to: ["desk@contoso.com"], content: content)
        #expect(await eventually(timeout: 120) { relay.log.contains("route=dry-run") }, "\(relay.log)")

        _ = try directory.write("relay.yaml", configuration(route: "pilot"))
        relay.process.signal(SIGHUP)
        #expect(await eventually(timeout: 120) { relay.log.contains("Configuration reloaded") }, "\(relay.log)")
        _ = try await sendWithPython(port: port, from: "scanner@contoso.com", to: ["desk@contoso.com"], content: content)
        #expect(await eventually(timeout: 120) { relay.log.contains("route=pilot") }, "\(relay.log)")
        #expect(relay.terminate() == 0)
    }

    static func send(_ application: RelayApplication, subject: String) async throws -> String {
        let id = subject.replacingOccurrences(of: " ", with: "-")
        let content = Array("From: scanner@contoso.com\r\nTo: desk@contoso.com\r\nSubject: \(subject)\r\nMessage-ID: <\(id)@rollout.test>\r\n\r\nA scan.\r\n".utf8)
        let sent = try await sendWithPython(port: application.smtpPort, from: "scanner@contoso.com", to: ["desk@contoso.com"], content: content)
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        return "<\(id)@rollout.test>"
    }

    /// The trace of the message with `messageID` once it is delivered or failed.
    static func waitUntilFinished(_ application: RelayApplication, _ messageID: String) async throws -> RelayTraceTimeline {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let page = try await application.store.searchTrace(RelayTraceQuery(messageID: messageID))
            if let summary = page.messages.first, summary.status == .delivered || summary.status == .failed,
               let timeline = try await application.store.timeline(id: RelayQueueID(rawValue: summary.id)) {
                return timeline
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RelayStartupError("\(messageID) was not delivered within 60 s")
    }
}
