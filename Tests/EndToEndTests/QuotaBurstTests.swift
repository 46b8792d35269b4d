import Foundation
import Logging
import M365Sandbox
import NIOPosix
import RelayCore
import RelayTestSupport
import Testing

/// Sends `count` messages over one SMTP session, as a busy application would.
private let pythonBurstScript = """
import smtplib, sys, json
args = json.loads(sys.argv[1])
s = smtplib.SMTP(args["host"], args["port"], timeout=60)
s.ehlo("burst.test")
for n in range(args["count"]):
    sender = args["senders"][n % len(args["senders"])]
    body = "From: %s\\r\\nTo: alice@contoso.com\\r\\nSubject: burst %d\\r\\nMessage-ID: <burst-%d@test>\\r\\n\\r\\nmessage %d\\r\\n" % (sender, n, n, n)
    s.sendmail(sender, ["alice@contoso.com"], body)
s.quit()
print(json.dumps({"ok": True}))
"""

@Suite("Quota governor against a strict sandbox")
struct QuotaBurstTests {
    /// 600 messages from one mailbox, a quota of 400 a minute that the sandbox
    /// enforces by refusing: the relay paces below it, so nothing is refused
    /// and every message goes on its first attempt. Takes a little over a minute,
    /// because the second part of the burst must wait for the window to slide.
    @Test("a burst of 600 messages from one mailbox drains with zero throttle rejections")
    func burstDrainsWithoutRejections() async throws {
        let directory = TemporaryDirectory("quota-burst")
        var configuration = M365SandboxConfiguration(dataDirectory: directory.file("sandbox"))
        SandboxApps.configure(&configuration)
        configuration.mailboxes.append(.init(address: "scanner@contoso.com"))
        configuration.messagesPerMinute = 400
        configuration.strictQuotas = true
        var logger = Logger(label: "sandbox")
        logger.logLevel = .warning
        let sandbox = try M365Sandbox(
            configuration: configuration, smtp: ("127.0.0.1", 0), connector: nil, http: ("127.0.0.1", 0),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        try await sandbox.start()
        let relay = try await RelayHarness { relayDirectory in
            _ = try relayDirectory.write("secret", SandboxApps.secret + "\n")
            return """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:0"
                  tls: none
            storage:
              url: "sqlite:\(relayDirectory.file("relay.sqlite"))"
            clients:
              - name: app
                networks: ["127.0.0.1/32"]
                auth: none
                route: tenant
            routes:
              - name: tenant
                mode: smtp
                smtp_endpoint: "127.0.0.1:\(sandbox.ports.smtp)"
                ca_file: \(sandbox.caFile)
                login_url: \(sandbox.httpBaseURL ?? "")
                tenant_id: sandbox.onmicrosoft.com
                client_id: \(SandboxApps.clientID)
                client_secret_file: \(relayDirectory.file("secret"))
                quotas: { messages_per_minute: 400, connections: 3 }
            delivery:
              retry: [1s]
            """
        }
        let arguments = String(decoding: try JSONSerialization.data(withJSONObject: [
            "host": "127.0.0.1", "port": relay.port, "count": 600, "senders": ["scanner@contoso.com"],
        ] as [String: Any]), as: UTF8.self)
        let sent = try await ExternalProcess.python(pythonBurstScript, [arguments], timeout: 120)
        #expect(sent.stdout.contains("\"ok\": true"), "\(sent.stdout) \(sent.stderr)")

        let store = sandbox.mailStore
        #expect(try await eventually(timeout: 120) { store.acceptances.count >= 600 }, "\(store.acceptances.count) accepted")
        #expect(sandbox.stats.throttleRejections == 0)
        let times = store.acceptances.map(\.acceptedAt).sorted()
        // The governor paced: no 60 s span holds more than the quota.
        var start = 0
        var busiest = 0
        for end in times.indices {
            while times[end].timeIntervalSince(times[start]) >= 60 { start += 1 }
            busiest = max(busiest, end - start + 1)
        }
        #expect(busiest <= 400, "\(busiest) messages in one minute")
        let queue = relay.application.store
        var delivered: [RelayQueuedMessage] = []
        for _ in 0..<600 {
            delivered = try await queue.list(state: .delivered, limit: 1000)
            if delivered.count == 600 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(delivered.count == 600)
        #expect(delivered.allSatisfy { $0.attempts == 1 }, "a message needed a retry")
        try await relay.stop()
        await sandbox.shutdown()
    }
}
