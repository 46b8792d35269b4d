import Foundation
import RelayCore
import RelayStorage
import RelayTestSupport
import Testing
@testable import RelayAdmin

/// The dashboard in a real browser: Debian's headless Chromium, driven by
/// selenium through Tests/Browser/dashboard_check.py, against a live admin
/// router over a real SQLite queue. Chromium missing is a failure, not a skip:
/// CI installs it (`apt-get install chromium chromium-driver`, `pip install selenium`).
///
/// With `M365_RELAY_SCREENSHOTS=docs/screenshots` the script also saves the
/// screenshots the docs show; the fixture then leaves out its hostile message
/// (markup as an address), which is for the escaping checks, not for readers.
@Suite("Dashboard in a browser")
struct DashboardBrowserTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = packageRoot.appendingPathComponent("Tests/Browser/dashboard_check.py").path

    @Test("Chromium finds the chart, the messages by sender and a timeline, and holds a queued message", .timeLimit(.minutes(5)))
    func browser() async throws {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            try #require(FileManager.default.isExecutableFile(atPath: program), "\(program) is missing: apt-get install chromium chromium-driver")
        }
        let screenshots = ProcessInfo.processInfo.environment["M365_RELAY_SCREENSHOTS"].map { path in
            path.hasPrefix("/") ? path : Self.packageRoot.appendingPathComponent(path).path
        }
        let fixture = try await DashboardFixture(hostile: screenshots == nil, history: true)
        let totals = fixture.expectedTotals
        let report = try await withDashboardServer(backend: fixture.backend) { port in
            var arguments = [
                Self.script, "--base-url", "http://127.0.0.1:\(port)",
                "--sender", DashboardFixture.deliveredSender, "--expect-messages", "\(fixture.delivered.count)",
                "--expect-delivered", "\(totals.delivered)", "--expect-deferred", "\(totals.deferred)", "--expect-failed", "\(totals.failed)",
                "--expect-event", "attempt", "--expect-event", "delivered",
                "--hold-sender", DashboardFixture.queuedSender, "--timeout", "45",
            ]
            if let screenshots { arguments += ["--screenshots", screenshots] }
            // The script waits on its own bounded steps; this bounds the whole run.
            return try await ExternalProcess.run(ExternalProcess.python, arguments, timeout: 150)
        }
        #expect(report.status == 0, "dashboard_check.py failed (\(report.status)): \(report.stderr)\n\(report.stdout)")
        let line = report.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "no JSON report: \(report.stdout)")
        #expect(result["ok"] as? Bool == true, "\(result["error"] ?? "")")
        #expect(Set(result["found"] as? [String] ?? []) == Set(fixture.delivered.map(\.rawValue)))
        #expect(result["held"] as? String == fixture.queued.rawValue)

        // The click reached the store: the message is held, by the admin API, from loopback.
        let held = try await fixture.store.message(id: fixture.queued)
        #expect(held?.state == .held)
        let events = try await fixture.store.timeline(id: fixture.queued)?.events ?? []
        let hold = events.first { $0.kind == .held }
        #expect(hold?.details["by"]?.hasPrefix("admin-api 127.0.0.1") == true, "hold event: \(String(describing: hold))")
    }
}
