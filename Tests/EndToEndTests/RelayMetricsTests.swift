import Foundation
import RelayCore
import RelayServer
import RelayTestSupport
import Testing

/// The `/metrics` text: valid for Prometheus's own checker and parser, with
/// the counts, buckets and gauges the events and snapshot imply.
@Suite struct RelayMetricsTests {
    private static let now = Date(timeIntervalSince1970: 1_750_000_000)

    @Test func expositionPassesPromtoolAndCarriesTheCountsAndGauges() async throws {
        let metrics = RelayMetrics(version: "1.2.3-test")
        for event in Self.realisticDay() { metrics.observe(event) }
        let text = metrics.render(
            statistics: Self.statistics, routes: Self.routes(), certificates: Self.certificates, now: Self.now)

        try await expectPromtoolAccepts(text)
        let scrape = try await PrometheusScrape(text)

        // Every family documents itself and has the type its name promises.
        #expect(!scrape.families.isEmpty)
        for family in scrape.families {
            #expect(!family.help.isEmpty, "\(family.name) has no HELP")
        }
        #expect(scrape.type(of: "m365relay_delivery_latency_seconds") == "histogram")
        #expect(scrape.type(of: "m365relay_delivery_attempt_duration_seconds") == "histogram")
        #expect(scrape.type(of: "m365relay_messages_received") == "counter")
        #expect(scrape.type(of: "m365relay_queue_messages") == "gauge")

        // Counters, by label.
        #expect(scrape["m365relay_messages_received_total", ["client": "app", "route": "smtp-main"]] == 4)
        #expect(scrape["m365relay_messages_received_total", ["client": "printer", "route": "graph-backup"]] == 2)
        #expect(scrape["m365relay_messages_refused_total", ["client": "printer", "reason": "sender_not_allowed"]] == 2)
        #expect(scrape["m365relay_messages_refused_total", ["client": "app", "reason": "too_large"]] == 1)
        #expect(scrape["m365relay_messages_delivered_total", ["client": "app", "route": "smtp-main"]] == 2)
        #expect(scrape["m365relay_messages_delivered_total", ["client": "printer", "route": "graph-backup"]] == 1)
        #expect(scrape["m365relay_messages_deferred_total", ["client": "app", "route": "smtp-main", "reply_class": "throttled"]] == 2)
        #expect(scrape["m365relay_messages_failed_total", ["client": "app", "route": "smtp-main", "reply_class": "permanent"]] == 1)
        #expect(scrape["m365relay_messages_bounced_total", [:]] == 1)
        #expect(scrape["m365relay_delivery_attempts_total", ["route": "smtp-main", "transport": "smtp", "outcome": "delivered"]] == 2)
        #expect(scrape["m365relay_delivery_attempts_total", ["route": "smtp-main", "transport": "smtp", "outcome": "deferred"]] == 2)
        #expect(scrape["m365relay_delivery_attempts_total", ["route": "smtp-main", "transport": "smtp", "outcome": "failed"]] == 1)
        #expect(scrape["m365relay_delivery_attempts_total", ["route": "graph-backup", "transport": "graph", "outcome": "delivered"]] == 1)
        #expect(scrape["m365relay_auth_failures_total", [:]] == 3)
        #expect(scrape["m365relay_lockouts_total", [:]] == 1)
        #expect(scrape["m365relay_sessions_total", ["tls_version": "TLSv1.3"]] == 3)
        #expect(scrape["m365relay_sessions_total", ["tls_version": "none"]] == 2)
        #expect(scrape["m365relay_throttled_total", ["route": "smtp-main"]] == 2)
        #expect(scrape["m365relay_route_holds_total", ["route": "smtp-main", "kind": "stopped"]] == 1)
        #expect(scrape["m365relay_route_holds_total", ["route": "graph-backup", "kind": "stopped"]] == 1)
        #expect(scrape["m365relay_route_holds_total", ["route": "graph-backup", "kind": "paused"]] == 1)
        #expect(scrape["m365relay_build_info", ["version": "1.2.3-test"]] == 1)

        // Never labelled by address, sender, recipient or mailbox.
        #expect(!text.contains("192.0.2."))
        #expect(!text.contains("sender@example.com"))
        #expect(!scrape.samples.contains { $0.name.hasPrefix("m365relay_throttled") && $0.labels["mailbox"] != nil })

        // Histograms: cumulative buckets, count and sum. smtp-main delivered after 0.3 s and 45 s.
        let latency = "m365relay_delivery_latency_seconds"
        #expect(scrape.bucket(latency, ["route": "smtp-main"], le: 0.1) == 0)
        #expect(scrape.bucket(latency, ["route": "smtp-main"], le: 0.5) == 1)
        #expect(scrape.bucket(latency, ["route": "smtp-main"], le: 30) == 1)
        #expect(scrape.bucket(latency, ["route": "smtp-main"], le: 60) == 2)
        #expect(scrape.bucket(latency, ["route": "smtp-main"], le: 86400) == 2)
        #expect(scrape.bucket(latency, ["route": "smtp-main"], le: .infinity) == 2)
        #expect(scrape["\(latency)_count", ["route": "smtp-main"]] == 2)
        #expect(abs((scrape["\(latency)_sum", ["route": "smtp-main"]] ?? 0) - 45.3) < 1e-9)
        // A bucket's bound is inclusive: exactly two hours lands in le="7200".
        #expect(scrape.bucket(latency, ["route": "graph-backup"], le: 3600) == 0)
        #expect(scrape.bucket(latency, ["route": "graph-backup"], le: 7200) == 1)
        let bounds = scrape.bucketBounds(latency, ["route": "smtp-main"])
        #expect(bounds.first == 0.1 && bounds.dropLast().last == 86400, "latency buckets \(bounds)")

        let duration = "m365relay_delivery_attempt_duration_seconds"
        #expect(scrape.bucket(duration, ["route": "smtp-main"], le: 0.05) == 0)
        #expect(scrape.bucket(duration, ["route": "smtp-main"], le: 0.1) == 2)
        #expect(scrape.bucket(duration, ["route": "smtp-main"], le: 0.25) == 3)
        #expect(scrape.bucket(duration, ["route": "smtp-main"], le: 2.5) == 4)
        #expect(scrape.bucket(duration, ["route": "smtp-main"], le: 120) == 4)
        #expect(scrape.bucket(duration, ["route": "smtp-main"], le: .infinity) == 5)
        #expect(scrape["\(duration)_count", ["route": "smtp-main"]] == 5)
        let durationBounds = scrape.bucketBounds(duration, ["route": "smtp-main"])
        #expect(durationBounds.first == 0.05 && durationBounds.dropLast().last == 120, "attempt buckets \(durationBounds)")

        // Scrape-time gauges.
        for status in RelayTraceStatus.allCases {
            #expect(scrape["m365relay_queue_messages", ["status": status.rawValue]] == Double(Self.statistics.counts[status] ?? 0))
        }
        #expect(scrape["m365relay_queue_messages", ["status": "held"]] == 0)
        #expect(scrape["m365relay_queue_oldest_message_age_seconds", [:]] == 754)
        #expect(scrape["m365relay_route_up", ["route": "smtp-main"]] == 1)
        #expect(scrape["m365relay_route_up", ["route": "graph-backup"]] == 0)
        let mailbox = ["route": "smtp-main", "mailbox": "relay@contoso.example"]
        #expect(scrape["m365relay_quota_used", mailbox.merging(["quota": "messages_per_minute"]) { $1 }] == 12)
        #expect(scrape["m365relay_quota_limit", mailbox.merging(["quota": "messages_per_minute"]) { $1 }] == 30)
        #expect(scrape["m365relay_quota_used", mailbox.merging(["quota": "recipients_per_day"]) { $1 }] == 2400)
        #expect(scrape["m365relay_quota_limit", mailbox.merging(["quota": "recipients_per_day"]) { $1 }] == 10000)
        #expect(scrape["m365relay_quota_used", mailbox.merging(["quota": "connections"]) { $1 }] == 2)
        #expect(scrape["m365relay_quota_limit", mailbox.merging(["quota": "connections"]) { $1 }] == 3)
        // No limit, no limit series.
        let graphMailbox = ["route": "graph-backup", "mailbox": "backup@contoso.example", "quota": "connections"]
        #expect(scrape["m365relay_quota_used", graphMailbox] == 0)
        #expect(scrape["m365relay_quota_limit", graphMailbox] == nil)
        #expect(scrape["m365relay_token_expiry_seconds", ["route": "smtp-main"]] == 1800)
        #expect(scrape["m365relay_token_expiry_seconds", ["route": "graph-backup"]] == nil)
        #expect(scrape["m365relay_credential_expiry_seconds", ["route": "smtp-main"]] == Double(30 * 86400))
        #expect(scrape["m365relay_credential_expiry_seconds", ["route": "graph-backup"]] == -3600)
        #expect(scrape["m365relay_certificate_expiry_seconds", ["name": "server certificate /etc/m365-relay/relay.crt"]] == Double(90 * 86400))
        #expect(scrape.samples.filter { $0.name == "m365relay_certificate_expiry_seconds" }.count == 1)
    }

    @Test func gaugesOfRoutesMailboxesAndCertificatesNoLongerReportedDisappear() async throws {
        let metrics = RelayMetrics()
        for event in Self.realisticDay() { metrics.observe(event) }
        _ = metrics.render(statistics: Self.statistics, routes: Self.routes(), certificates: Self.certificates, now: Self.now)

        // graph-backup is gone from the configuration; smtp-main lost its token and mailbox.
        var routes = Self.routes().filter { $0.name == "smtp-main" }
        routes[0].mailboxes = []
        routes[0].tokenExpiresAt = nil
        let later = Self.now.addingTimeInterval(60)
        let text = metrics.render(statistics: Self.statistics, routes: routes, certificates: [], now: later)
        try await expectPromtoolAccepts(text)
        let scrape = try await PrometheusScrape(text)

        #expect(scrape["m365relay_route_up", ["route": "smtp-main"]] == 1)
        #expect(scrape["m365relay_credential_expiry_seconds", ["route": "smtp-main"]] == Double(30 * 86400 - 60))
        #expect(scrape["m365relay_queue_oldest_message_age_seconds", [:]] == 814)
        for gone in ["m365relay_quota_used", "m365relay_quota_limit", "m365relay_token_expiry_seconds", "m365relay_certificate_expiry_seconds"] {
            #expect(!scrape.samples.contains { $0.name == gone }, "\(gone) still exported")
        }
        #expect(!scrape.samples.contains { $0.name == "m365relay_route_up" && $0.labels["route"] == "graph-backup" })
        // Counters are history, not state: they stay.
        #expect(scrape["m365relay_messages_received_total", ["client": "printer", "route": "graph-backup"]] == 2)

        // And they come back when reported again.
        let again = try await PrometheusScrape(
            metrics.render(statistics: Self.statistics, routes: Self.routes(), certificates: Self.certificates, now: Self.now))
        #expect(again["m365relay_route_up", ["route": "graph-backup"]] == 0)
        #expect(again["m365relay_token_expiry_seconds", ["route": "smtp-main"]] == 1800)
    }

    @Test func twoInstancesInOneProcessKeepTheirOwnValues() async throws {
        let first = RelayMetrics(version: "first")
        let second = RelayMetrics(version: "second")
        for _ in 0..<3 { first.observe(.messageReceived(client: "app", route: "smtp-main", size: 100)) }
        second.observe(.messageReceived(client: "app", route: "smtp-main", size: 100))
        second.observe(.messageReceived(client: "scanner", route: "graph-backup", size: 100))
        first.observe(.authFailed(clientAddress: "192.0.2.7", username: nil))

        let empty = RelayQueueStatistics(counts: [:], oldestQueuedAt: nil)
        let firstScrape = try await PrometheusScrape(
            first.render(statistics: empty, routes: [RelayRouteStatus(name: "smtp-main", mode: "smtp")], certificates: [], now: Self.now))
        let secondScrape = try await PrometheusScrape(
            second.render(statistics: empty, routes: [RelayRouteStatus(name: "graph-backup", mode: "graph")], certificates: [], now: Self.now))

        #expect(firstScrape["m365relay_messages_received_total", ["client": "app", "route": "smtp-main"]] == 3)
        #expect(secondScrape["m365relay_messages_received_total", ["client": "app", "route": "smtp-main"]] == 1)
        #expect(firstScrape["m365relay_messages_received_total", ["client": "scanner", "route": "graph-backup"]] == nil)
        #expect(firstScrape["m365relay_auth_failures_total", [:]] == 1)
        #expect(secondScrape["m365relay_auth_failures_total", [:]] == 0)
        #expect(firstScrape["m365relay_route_up", ["route": "graph-backup"]] == nil)
        #expect(secondScrape["m365relay_route_up", ["route": "smtp-main"]] == nil)
        #expect(firstScrape["m365relay_build_info", ["version": "first"]] == 1)
        #expect(firstScrape["m365relay_build_info", ["version": "second"]] == nil)
    }

    @Test func concurrentObserversLoseNoCount() async throws {
        let metrics = RelayMetrics()
        let tasks = 16
        let eventsPerTask = 500
        let routes = ["smtp-main", "graph-backup", "connector", "direct"]
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    for index in 0..<eventsPerTask {
                        let route = routes[(task + index) % routes.count]
                        metrics.observe(.messageReceived(client: "app", route: route, size: 1000))
                        metrics.observe(
                            .attemptFinished(
                                RelayAttemptReport(
                                    queueID: "q\(task)-\(index)", client: "app", route: route, transport: "smtp", sendingMailbox: nil,
                                    outcome: .delivered, replyClass: "ok", duration: 0.2, sinceReceived: 1.5)))
                        if index % 10 == 0 { metrics.observe(.authFailed(clientAddress: "192.0.2.1", username: "u")) }
                    }
                }
            }
            // Scrapes while events arrive must neither block them nor crash.
            group.addTask {
                for _ in 0..<20 {
                    _ = metrics.render(
                        statistics: RelayQueueStatistics(counts: [:], oldestQueuedAt: nil), routes: [], certificates: [], now: Date())
                    await Task.yield()
                }
            }
        }

        let scrape = try await PrometheusScrape(
            metrics.render(statistics: RelayQueueStatistics(counts: [:], oldestQueuedAt: nil), routes: [], certificates: [], now: Date()))
        let perRoute = Double(tasks * eventsPerTask / routes.count)
        for route in routes {
            #expect(scrape["m365relay_messages_received_total", ["client": "app", "route": route]] == perRoute)
            #expect(scrape["m365relay_messages_delivered_total", ["client": "app", "route": route]] == perRoute)
            #expect(scrape["m365relay_delivery_latency_seconds_count", ["route": route]] == perRoute)
            #expect(scrape.bucket("m365relay_delivery_latency_seconds", ["route": route], le: 2.5) == perRoute)
            #expect(scrape.bucket("m365relay_delivery_latency_seconds", ["route": route], le: 1) == 0)
        }
        #expect(scrape.samples.filter { $0.name == "m365relay_messages_received_total" }.map(\.value).reduce(0, +) == Double(tasks * eventsPerTask))
        #expect(scrape["m365relay_auth_failures_total", [:]] == Double(tasks * eventsPerTask / 10))
    }

    @Test func labelValuesBeyondALabelsBudgetCountAsOther() async throws {
        let metrics = RelayMetrics()
        // A caller passing free text as the refusal reason must not grow the series without bound.
        for index in 0..<200 { metrics.observe(.messageRefused(client: "app", reason: "reason-\(index)")) }
        let text = metrics.render(statistics: RelayQueueStatistics(counts: [:], oldestQueuedAt: nil), routes: [], certificates: [], now: Self.now)
        try await expectPromtoolAccepts(text)
        let scrape = try await PrometheusScrape(text)
        let refusals = scrape.samples.filter { $0.name == "m365relay_messages_refused_total" }
        #expect(refusals.count == 33)
        #expect(refusals.map(\.value).reduce(0, +) == 200)
        #expect(scrape["m365relay_messages_refused_total", ["client": "app", "reason": "other"]] == Double(200 - 32))
        #expect(scrape["m365relay_messages_refused_total", ["client": "app", "reason": "reason-0"]] == 1)
    }

    // MARK: Fixtures

    private static let statistics = RelayQueueStatistics(
        counts: [.queued: 5, .deferred: 2, .delivered: 1234, .failed: 3, .bounced: 1, .deleted: 4],
        oldestQueuedAt: now.addingTimeInterval(-754))

    private static let certificates = [
        RelayCredentialExpiry(what: .certificate, name: "server certificate /etc/m365-relay/relay.crt", notAfter: now.addingTimeInterval(90 * 86400)),
        // The route gauges carry secrets and tokens; the certificate gauge must not.
        RelayCredentialExpiry(what: .secret, name: "route smtp-main client secret", notAfter: now.addingTimeInterval(30 * 86400)),
    ]

    private static func routes() -> [RelayRouteStatus] {
        [
            RelayRouteStatus(
                name: "smtp-main", mode: "smtp", tenantID: "tenant-1", health: .ok,
                mailboxes: [
                    RelayMailboxQuota(
                        mailbox: "relay@contoso.example", messagesPerMinute: .init(used: 12, limit: 30),
                        recipientsPerDay: .init(used: 2400, limit: 10000), connections: .init(used: 2, limit: 3))
                ],
                tokenExpiresAt: now.addingTimeInterval(1800), credentialExpiresAt: now.addingTimeInterval(30 * 86400)),
            RelayRouteStatus(
                name: "graph-backup", mode: "graph", tenantID: "tenant-1", health: .paused, heldUntil: now.addingTimeInterval(900),
                reason: "535 5.7.139", mailboxes: [
                    RelayMailboxQuota(
                        mailbox: "backup@contoso.example", messagesPerMinute: .init(used: 0, limit: 30),
                        recipientsPerDay: .init(used: 10, limit: 10000), connections: .init(used: 0, limit: nil))
                ],
                credentialExpiresAt: now.addingTimeInterval(-3600)),
        ]
    }

    private static func attempt(
        _ route: String, _ transport: String, client: String = "app", _ outcome: RelayAttemptReport.Outcome, _ replyClass: String,
        duration: TimeInterval, sinceReceived: TimeInterval
    ) -> RelayOperationalEvent {
        .attemptFinished(
            RelayAttemptReport(
                queueID: UUID().uuidString, client: client, route: route, transport: transport, sendingMailbox: "relay@contoso.example",
                outcome: outcome, replyClass: replyClass, duration: duration, sinceReceived: sinceReceived))
    }

    private static func realisticDay() -> [RelayOperationalEvent] {
        var events: [RelayOperationalEvent] = []
        for _ in 0..<3 { events.append(.sessionEnded(client: "app", tlsVersion: "TLSv1.3")) }
        for _ in 0..<2 { events.append(.sessionEnded(client: "printer", tlsVersion: nil)) }
        for _ in 0..<4 { events.append(.messageReceived(client: "app", route: "smtp-main", size: 20_000)) }
        for _ in 0..<2 { events.append(.messageReceived(client: "printer", route: "graph-backup", size: 300_000)) }
        for _ in 0..<2 { events.append(.messageRefused(client: "printer", reason: "sender_not_allowed")) }
        events.append(.messageRefused(client: "app", reason: "too_large"))
        for _ in 0..<3 { events.append(.authFailed(clientAddress: "192.0.2.9", username: "sender@example.com")) }
        events.append(.clientLockedOut(clientAddress: "192.0.2.9", until: now.addingTimeInterval(900)))
        events += [
            attempt("smtp-main", "smtp", .deferred, "throttled", duration: 0.07, sinceReceived: 0.07),
            attempt("smtp-main", "smtp", .deferred, "throttled", duration: 0.1, sinceReceived: 60.2),
            attempt("smtp-main", "smtp", .delivered, "ok", duration: 0.2, sinceReceived: 0.3),
            attempt("smtp-main", "smtp", .delivered, "ok", duration: 1.5, sinceReceived: 45),
            attempt("smtp-main", "smtp", .failed, "permanent", duration: 130, sinceReceived: 200),
            attempt("graph-backup", "graph", client: "printer", .delivered, "ok", duration: 3, sinceReceived: 7200),
        ]
        for _ in 0..<2 {
            events.append(.throttled(route: "smtp-main", mailbox: "relay@contoso.example", retryAfter: 60, reply: "432 4.3.2 Concurrent connections limit exceeded"))
        }
        events.append(.routeHeld(routes: ["smtp-main", "graph-backup"], stopped: true, until: now.addingTimeInterval(3600), reason: "5.7.705"))
        events.append(.routeHeld(routes: ["graph-backup"], stopped: false, until: now.addingTimeInterval(900), reason: "5.7.139"))
        events.append(.routeRecovered(route: "smtp-main"))
        events.append(.bounced(queueID: "q1", dsnID: "d1"))
        return events
    }
}

// MARK: Prometheus's own tools

/// Runs `promtool check metrics` on the text; any finding, lint included, fails the test.
private func expectPromtoolAccepts(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let result = try await runTool("/usr/bin/promtool", ["check", "metrics"], input: text)
    #expect(result.status == 0 && result.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
        "promtool check metrics (exit \(result.status)):\n\(result.output)\n--- text ---\n\(text)", sourceLocation: sourceLocation)
}

/// One scrape as Python's prometheus_client parses it.
private struct PrometheusScrape {
    struct Sample: Decodable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct Family: Decodable {
        var name: String
        var type: String
        var help: String
        var samples: [Sample]
    }

    let families: [Family]
    var samples: [Sample] { families.flatMap(\.samples) }

    init(_ text: String) async throws {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            families = []
            for family in text_string_to_metric_families(sys.stdin.read()):
                samples = [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples]
                families.append({"name": family.name, "type": family.type, "help": family.documentation, "samples": samples})
            print(json.dumps(families))
            """
        let result = try await runTool("/usr/bin/env", ["python3", "-c", script], input: text)
        guard result.status == 0 else {
            Issue.record("prometheus_client could not parse the exposition (is it installed? pip install prometheus_client):\n\(result.output)")
            families = []
            return
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        families = try decoder.decode([Family].self, from: Data(result.stdout.utf8))
    }

    func type(of family: String) -> String? { families.first { $0.name == family }?.type }

    /// The value of the one sample with exactly these labels, nil when none.
    subscript(name: String, labels: [String: String]) -> Double? {
        let matches = samples.filter { $0.name == name && $0.labels == labels }
        if matches.count > 1 { Issue.record("\(matches.count) samples of \(name) with labels \(labels)") }
        return matches.first?.value
    }

    func bucket(_ histogram: String, _ labels: [String: String], le bound: Double) -> Double? {
        samples.first { sample in
            guard sample.name == histogram + "_bucket", let le = sample.labels["le"], let value = Double(le), value == bound else { return false }
            return sample.labels.filter { $0.key != "le" } == labels
        }?.value
    }

    func bucketBounds(_ histogram: String, _ labels: [String: String]) -> [Double] {
        samples.filter { $0.name == histogram + "_bucket" && $0.labels.filter { $0.key != "le" } == labels }
            .compactMap { $0.labels["le"].flatMap(Double.init) }.sorted()
    }
}

private struct ToolResult: Sendable {
    var status: Int32
    var stdout: String
    var output: String
}

/// Runs a tool with the text on stdin; blocking, so off the cooperative pool.
/// Files rather than pipes: no pipe buffer to fill and deadlock on.
private func runTool(_ executable: String, _ arguments: [String], input: String) async throws -> ToolResult {
    let directory = TemporaryDirectory("relay-metrics-tool")
    let inputPath = try directory.write("input", input)
    let stdoutPath = directory.file("stdout")
    let stderrPath = directory.file("stderr")
    return try await offCooperativePool {
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        // posix_spawn, not Foundation's Process (see SpawnedProcess in RelayTestSupport).
        let input = open(inputPath, O_RDONLY | O_CLOEXEC)
        let output = open(stdoutPath, O_WRONLY | O_CLOEXEC)
        let errors = open(stderrPath, O_WRONLY | O_CLOEXEC)
        defer { for descriptor in [input, output, errors] where descriptor >= 0 { close(descriptor) } }
        let process = try SpawnedProcess(executable, arguments, stdin: input, stdout: output, stderr: errors)
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.signal(SIGKILL)
            _ = process.waitUntilExit()
            throw ToolTimeout(executable: executable)
        }
        let stdout = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        return ToolResult(status: process.exitStatus ?? -1, stdout: stdout, output: stdout + stderr)
    }
}

private struct ToolTimeout: Error, CustomStringConvertible {
    var executable: String
    var description: String { "\(executable) did not finish within 60 s" }
}
