import AsyncHTTPClient
import Foundation
import M365Sandbox
import NIOCore
import RelayCore
import RelayServer
import RelayTestSupport
import Testing

/// Issue 5's "done when", with the whole relay: a message sent through the
/// sandbox is found by sender in `m365-relay trace`, in the API and on the
/// dashboard (a real headless browser) with its timeline; `/metrics` passes
/// `promtool check metrics`; and an alert reaches a local webhook when the
/// sandbox throttles.
@Suite("Trace, API, metrics, alerts and dashboard, end to end")
struct ObservabilityEndToEndTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let sender = "scanner@contoso.com"

    @Test func aMessageIsTracedEverywhereAndMicrosoftRefusalsRaiseAlerts() async throws {
        let webhook = RelayAlertTests.WebhookReceiver()
        try await webhook.start()
        defer { Task { await webhook.stop() } }
        let relay = try await RelayHarness { directory in
            RelayHarness.sandboxYAML(directory) + """

            delivery:
              route_pause: 2s
            admin:
              address: "127.0.0.1:0"
            alerts:
              webhook_url: "\(webhook.url)"
            """
        }
        let admin = try #require(relay.application.adminAddress)
        let base = "http://127.0.0.1:\(admin.port)"

        // 1. Mail in, delivered to the sandbox, found by sender in the API with its timeline.
        let first = try await sendWithPython(port: relay.port, from: Self.sender, to: ["desk@contoso.com"], content: Self.message(subject: "scan 1"))
        #expect(first["ok"] as? Bool == true, "\(first)")
        let delivered = try await Self.waitForJSON(base + "/api/v1/messages?sender=\(Self.sender)&status=delivered") { page in
            ((page["messages"] as? [[String: Any]]) ?? []).count == 1
        }
        let summary = try #require((delivered["messages"] as? [[String: Any]])?.first)
        let id = try #require(summary["id"] as? String)
        let timeline = try await Self.getJSON(base + "/api/v1/messages/\(id)")
        let events = try #require(timeline["events"] as? [[String: Any]])
        let kinds = events.compactMap { $0["kind"] as? String }
        #expect(kinds.first == "received")
        #expect(kinds.contains("attempt") && kinds.last == "delivered", "\(kinds)")
        let attempt = try #require(events.first { $0["kind"] as? String == "attempt" })
        let details = try #require(attempt["details"] as? [String: String])
        #expect(details["route"] == "sandbox" && details["transport"] == "sandbox", "\(details)")
        #expect(details["reply"]?.hasPrefix("250") == true, "\(details)")

        // 2. The same message through `m365-relay trace`, against the running relay's API.
        let cliConfiguration = try relay.directory.write("cli.yaml", RelayHarness.sandboxYAML(relay.directory) + """

            admin:
              address: "127.0.0.1:\(admin.port)"
            """)
        let trace = try await ExternalProcess.run(
            try RelayChildProcess.binary(), ["trace", "--config", cliConfiguration, "--from", Self.sender, "--json"], timeout: 60)
        #expect(trace.status == 0, "\(trace.stderr)")
        let traced = try #require(try JSONSerialization.jsonObject(with: Data(trace.stdout.utf8)) as? [[String: Any]], "\(trace.stdout)")
        #expect(traced.compactMap { $0["id"] as? String } == [id])

        // 3. /metrics scrapes cleanly and counts the delivery.
        let metrics = try await Self.get(base + "/metrics")
        #expect(metrics.status == 200)
        let promtool = try await ExternalProcess.run("/usr/bin/promtool", ["check", "metrics"], stdin: metrics.body, timeout: 60)
        #expect(promtool.status == 0 && promtool.stdout.isEmpty && promtool.stderr.isEmpty, "promtool: \(promtool.stdout)\(promtool.stderr)")
        let deliveredLine = metrics.body.split(separator: "\n").first {
            $0.hasPrefix("m365relay_messages_delivered_total{") && $0.contains("route=\"sandbox\"") && $0.contains("client=\"local\"")
        }
        #expect(deliveredLine?.hasSuffix(" 1") == true, "\(deliveredLine.map(String.init) ?? "no delivered counter")")

        // 4. The sandbox throttles the next message: the webhook hears of it, and the message is delivered on retry.
        try relay.sandbox.inject(.smtpReply("432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", at: .mail))
        let second = try await sendWithPython(port: relay.port, from: Self.sender, to: ["desk@contoso.com"], content: Self.message(subject: "scan 2"))
        #expect(second["ok"] as? Bool == true, "\(second)")
        let alerted = await eventually(timeout: 60) {
            webhook.received.contains { post in
                let object = (try? JSONSerialization.jsonObject(with: Data(post.body.utf8))) as? [String: Any]
                return (object?["alert"] as? String)?.hasPrefix("throttled") == true && object?["status"] as? String == "firing"
            }
        }
        #expect(alerted, "no throttle alert; the webhook received: \(webhook.received.map(\.body))")
        _ = try await Self.waitForJSON(base + "/api/v1/messages?sender=\(Self.sender)&status=delivered", timeout: 90) { page in
            ((page["messages"] as? [[String: Any]]) ?? []).count == 2
        }

        // 5. The dashboard in headless Chromium: both messages by sender, the chart, a timeline.
        let script = Self.packageRoot.appendingPathComponent("Tests/Browser/dashboard_check.py").path
        let browser = try await ExternalProcess.run(ExternalProcess.python, [
            script, "--base-url", base, "--sender", Self.sender, "--expect-messages", "2",
            "--expect-delivered", "2", "--expect-deferred", "1", "--expect-failed", "0",
            "--expect-event", "received", "--expect-event", "delivered", "--timeout", "45",
        ], timeout: 150)
        #expect(browser.status == 0, "dashboard_check.py: \(browser.stderr)\n\(browser.stdout)")

        // 6. Microsoft refuses the route's set-up: the route pauses and the webhook hears it;
        //    when the pause ends and the message goes out, the recovery is announced.
        try relay.sandbox.inject(.smtpReply("530 5.7.57 Client not authenticated to send mail", at: .mail))
        let third = try await sendWithPython(port: relay.port, from: Self.sender, to: ["desk@contoso.com"], content: Self.message(subject: "scan 3"))
        #expect(third["ok"] as? Bool == true, "\(third)")
        func alert(_ key: String, _ status: String) -> Bool {
            webhook.received.contains { post in
                let object = (try? JSONSerialization.jsonObject(with: Data(post.body.utf8))) as? [String: Any]
                return object?["alert"] as? String == key && object?["status"] as? String == status
            }
        }
        #expect(await eventually(timeout: 60) { alert("route-paused:sandbox", "firing") }, "\(webhook.received.map(\.body))")
        #expect(await eventually(timeout: 60) { alert("route-paused:sandbox", "resolved") }, "\(webhook.received.map(\.body))")
        _ = try await Self.waitForJSON(base + "/api/v1/messages?sender=\(Self.sender)&status=delivered", timeout: 60) { page in
            ((page["messages"] as? [[String: Any]]) ?? []).count == 3
        }

        try await relay.stop()
    }

    static func message(subject: String) -> [UInt8] {
        Array("From: \(sender)\r\nTo: desk@contoso.com\r\nSubject: \(subject)\r\n\r\nA scanned page.\r\n".utf8)
    }

    static func get(_ url: String) async throws -> (status: Int, body: String) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 8 << 20)
        return (Int(response.status.code), String(buffer: body))
    }

    static func getJSON(_ url: String) async throws -> [String: Any] {
        let response = try await get(url)
        #expect(response.status == 200, "GET \(url): \(response.status) \(response.body)")
        return try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any], "\(response.body)")
    }

    /// Polls `url` until `condition` holds for its JSON; fails with the last answer after `timeout` seconds.
    static func waitForJSON(_ url: String, timeout: TimeInterval = 60, _ condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [String: Any] = [:]
        while Date() < deadline {
            last = try await getJSON(url)
            if condition(last) { return last }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("timed out waiting on \(url); last answer: \(last)")
        return last
    }
}
