import Foundation
import Hummingbird
import Logging
import M365Sandbox
import NIOCore
import RelayCore
import RelayServer
import RelayTestSupport
import ServiceLifecycle
import Synchronization
import Testing

/// Webhook alerts against a real HTTP receiver on 127.0.0.1.
@Suite("Webhook alerts")
struct RelayAlertTests {
    // MARK: Fixtures

    /// A webhook on 127.0.0.1 (Hummingbird) that records every POST and answers with a settable status.
    final class WebhookReceiver: Sendable {
        struct Post: Sendable {
            var contentType: String?
            var body: String
        }

        private let posts = Mutex<[Post]>([])
        let status = Mutex<Int>(200)
        private let running = Mutex<(services: ServiceGroup, task: Task<Void, Never>)?>(nil)
        private let boundPort = Mutex<Int>(0)

        /// The secret-looking parts tests check never reach a log.
        static let secretPath = "SECRETPATH42"
        static let secretQuery = "SECRETQUERY42"

        var url: String { "http://127.0.0.1:\(boundPort.withLock { $0 })/hook/T0001/\(Self.secretPath)?sig=\(Self.secretQuery)" }
        var received: [Post] { posts.withLock { $0 } }

        func start() async throws {
            let router = Router()
            router.post("hook/:team/:key") { [self] request, _ -> Response in
                let body = try await request.body.collect(upTo: 1 << 20)
                posts.withLock { $0.append(Post(contentType: request.headers[.contentType], body: String(buffer: body))) }
                return Response(status: .init(code: status.withLock { $0 }))
            }
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            var logger = Logger(label: "webhook")
            logger.logLevel = .error
            let app = Application(
                router: router,
                configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: { channel in
                    continuation.yield(channel.localAddress?.port ?? 0)
                    continuation.finish()
                },
                logger: logger)
            let services = ServiceGroup(configuration: .init(services: [app], logger: logger))
            let task = Task {
                try? await services.run()
                continuation.finish()
            }
            running.withLock { $0 = (services, task) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            boundPort.withLock { $0 = port }
        }

        func stop() async {
            guard let (services, task) = running.withLock({ $0 }) else { return }
            await services.triggerGracefulShutdown()
            await task.value
        }
    }

    /// A wall clock the test moves.
    final class TestClock: Sendable {
        private let time = Mutex(Date(timeIntervalSince1970: 1_780_000_000))
        var now: Date { time.withLock { $0 } }
        func advance(_ seconds: TimeInterval) { time.withLock { $0 += seconds } }
    }

    /// Log lines, with their metadata, as text.
    final class LogRecorder: Sendable {
        struct Handler: LogHandler {
            let recorder: LogRecorder
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .debug
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }

            func log(event: LogEvent) {
                let all = metadata.merging(event.metadata ?? [:]) { $1 }
                let text = "\(event.level) \(event.message) " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                recorder.lines.withLock { $0.append(text) }
            }
        }

        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
        var logger: Logger { Logger(label: "alerts") { _ in Handler(recorder: self) } }
    }

    /// What every format carries: the key, firing or resolved, the title.
    struct Received: Hashable {
        var key: String
        var status: String
        var title: String
    }

    /// Reads one POST body in `format` back into ``Received``, checking the format's shape.
    static func decode(_ post: WebhookReceiver.Post, format: RelayConfiguration.Alerts.Format) throws -> Received {
        #expect(post.contentType == "application/json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(post.body.utf8)) as? [String: Any])
        switch format {
        case .json:
            #expect(Set(object.keys) == ["alert", "status", "severity", "title", "text", "relay", "at", "details"])
            #expect(object["relay"] as? String == "relay.test")
            #expect(["warning", "critical"].contains(object["severity"] as? String))
            #expect(ISO8601DateFormatter().date(from: object["at"] as? String ?? "") != nil)
            #expect(object["details"] is [String: String])
            return Received(key: try #require(object["alert"] as? String), status: try #require(object["status"] as? String), title: try #require(object["title"] as? String))
        case .slack:
            #expect(Set(object.keys) == ["text"])
            let text = try #require(object["text"] as? String)
            let firstLine = try #require(text.split(separator: "\n").first)
            let headline = try #require(firstLine.firstRange(of: "*[").map { firstLine[$0.upperBound...] })
            let status = String(headline.prefix { $0 != "]" })
            let title = String(headline.dropFirst(status.count + 2).prefix { $0 != "*" })
            let keyLine = try #require(text.split(separator: "\n").last { $0.hasPrefix("alert `") })
            let key = String(keyLine.dropFirst("alert `".count).prefix { $0 != "`" })
            #expect(firstLine.contains("relay.test"))
            return Received(key: key, status: status.lowercased(), title: title.replacingOccurrences(of: "&amp;", with: "&"))
        case .teams:
            #expect(object["type"] as? String == "message")
            let attachments = try #require(object["attachments"] as? [[String: Any]])
            #expect(attachments.count == 1)
            #expect(attachments[0]["contentType"] as? String == "application/vnd.microsoft.card.adaptive")
            let card = try #require(attachments[0]["content"] as? [String: Any])
            #expect(card["type"] as? String == "AdaptiveCard")
            #expect(card["version"] as? String == "1.4")
            let body = try #require(card["body"] as? [[String: Any]])
            let headline = try #require(body.first?["text"] as? String)
            let facts = try #require(body.last?["facts"] as? [[String: String]])
            let key = try #require(facts.first { $0["title"] == "alert" }?["value"])
            #expect(facts.contains { $0["title"] == "relay" && $0["value"] == "relay.test" })
            let status = String(headline.dropFirst().prefix { $0 != "]" })
            return Received(key: key, status: status.lowercased(), title: String(headline.dropFirst(status.count + 3)))
        }
    }

    /// Queue statistics the test sets.
    final class QueueState: Sendable {
        let statistics = Mutex(RelayQueueStatistics(counts: [:], oldestQueuedAt: nil))
        let expiries = Mutex<[RelayCredentialExpiry]>([])
    }

    static func makeAlerts(
        url: String, format: RelayConfiguration.Alerts.Format = .json, clock: TestClock, queue: QueueState, logger: Logger,
        requestTimeout: TimeAmount = .seconds(120),
        configure: (inout RelayConfiguration.Alerts) -> Void = { _ in }
    ) throws -> RelayAlerts {
        var configuration = RelayConfiguration.Alerts(webhookURL: url)
        configuration.format = format
        configuration.authFailures = 3
        configuration.queueSize = 3
        // Checks run when the test says so (checkNow), besides the one at start.
        configuration.checkInterval = 3600
        configure(&configuration)
        return try RelayAlerts(
            configuration: configuration, hostname: "relay.test",
            queueStatistics: { queue.statistics.withLock { $0 } },
            credentialExpiries: { queue.expiries.withLock { $0 } },
            // A POST that takes over 10 s on a loaded machine would be retried and arrive twice.
            logger: logger, now: { clock.now }, retryDelay: .milliseconds(100), requestTimeout: requestTimeout)
    }

    /// Runs `body` with the alerts' service running, then stops it.
    static func running(_ alerts: RelayAlerts, _ body: () async throws -> Void) async throws {
        let task = Task { try await alerts.run() }
        do {
            try await body()
        } catch {
            task.cancel()
            _ = await task.result
            throw error
        }
        task.cancel()
        _ = await task.result
    }

    // MARK: Tests

    @Test(arguments: [RelayConfiguration.Alerts.Format.json, .slack, .teams])
    func everyKindFiresOnceAndRecoveryIsAnnounced(format: RelayConfiguration.Alerts.Format) async throws {
        let receiver = WebhookReceiver()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let clock = TestClock(), queue = QueueState(), log = LogRecorder()
        let alerts = try Self.makeAlerts(url: receiver.url, format: format, clock: clock, queue: queue, logger: log.logger)
        func received() throws -> [Received] { try receiver.received.map { try Self.decode($0, format: format) } }
        func waitFor(_ count: Int) async throws {
            let arrived = await eventually(timeout: 120) { receiver.received.count >= count }
            #expect(arrived, "\(receiver.received.count) of \(count) alerts arrived")
            try #require(arrived)
        }

        try await Self.running(alerts) {
            // AUTH burst: more than 3 failures, from all addresses together; then more of the same is one incident.
            for index in 0..<8 {
                alerts.observe(.authFailed(clientAddress: "192.0.2.\(index % 2)", username: "scanner"))
            }
            alerts.observe(.clientLockedOut(clientAddress: "192.0.2.1", until: clock.now.addingTimeInterval(900)))
            alerts.observe(.throttled(route: "tenant", mailbox: "scanner@contoso.com", retryAfter: 60, reply: "450 4.7.0 throttled"))
            alerts.observe(.routeHeld(routes: ["tenant"], stopped: false, until: clock.now.addingTimeInterval(600), reason: "535 5.7.139 Authentication unsuccessful"))
            alerts.observe(.routeHeld(routes: ["a", "b"], stopped: true, until: clock.now.addingTimeInterval(3600), reason: "550 5.7.705 tenant blocked"))
            try await waitFor(6)

            queue.statistics.withLock {
                $0 = RelayQueueStatistics(counts: [.queued: 3, .deferred: 2, .held: 50], oldestQueuedAt: clock.now.addingTimeInterval(-7200))
            }
            queue.expiries.withLock { $0 = [RelayCredentialExpiry(what: .certificate, name: "server certificate /etc/relay.crt", notAfter: clock.now.addingTimeInterval(3 * 86_400))] }
            await alerts.checkNow()
            try await waitFor(9)

            let firing = try received()
            #expect(firing.allSatisfy { $0.status == "firing" })
            #expect(firing.map(\.key).sorted() == [
                "auth-burst", "auth-lockout", "expiry:certificate:server certificate /etc/relay.crt", "queue-age", "queue-depth",
                "route-paused:tenant", "route-stopped:a", "route-stopped:b", "throttled:tenant",
            ])
            let titles = Dictionary(firing.map { ($0.key, $0.title) }, uniquingKeysWith: { $1 })
            #expect(titles["auth-burst"] == "AUTH failures burst: more than 3 in 5m")
            #expect(titles["route-paused:tenant"] == "Route tenant paused")
            #expect(titles["throttled:tenant"] == "Microsoft throttles route tenant")
            #expect(titles["queue-depth"] == "5 messages waiting", "held messages do not count")
            #expect(titles["queue-age"] == "Oldest queued message waits for 2h")
            #expect(titles["expiry:certificate:server certificate /etc/relay.crt"] == "Certificate expires in 3 days: server certificate /etc/relay.crt")

            // Recovery: each once.
            alerts.observe(.routeRecovered(route: "tenant"))
            alerts.observe(.routeRecovered(route: "tenant"))
            queue.statistics.withLock { $0 = RelayQueueStatistics(counts: [.queued: 1], oldestQueuedAt: clock.now) }
            queue.expiries.withLock { $0 = [] }
            clock.advance(1000)  // past the AUTH window, the lockout and the throttle's quiet period
            await alerts.checkNow()
            await alerts.checkNow()
            // A throttled route recovers once it delivers after a quiet period.
            alerts.observe(.attemptFinished(.init(
                queueID: "q1", client: "local", route: "tenant", transport: "smtp", sendingMailbox: "scanner@contoso.com",
                outcome: .delivered, replyClass: "ok", duration: 1, sinceReceived: 2)))
            try await waitFor(16)
            let resolved = try received().dropFirst(9)
            #expect(resolved.allSatisfy { $0.status == "resolved" })
            #expect(Set(resolved.map(\.key)) == [
                "route-paused:tenant", "queue-depth", "queue-age", "expiry:certificate:server certificate /etc/relay.crt",
                "auth-burst", "auth-lockout", "throttled:tenant",
            ])
            #expect(resolved.count == 7, "each recovery once: \(resolved.map(\.key))")
            #expect(alerts.firingKeys == ["route-stopped:a", "route-stopped:b"])
        }
        #expect(!log.all.contains { $0.contains(WebhookReceiver.secretPath) || $0.contains(WebhookReceiver.secretQuery) })
    }

    @Test func repeatsAreSuppressedWithinTheRepeatInterval() async throws {
        let receiver = WebhookReceiver()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let clock = TestClock(), queue = QueueState(), log = LogRecorder()
        let alerts = try Self.makeAlerts(url: receiver.url, clock: clock, queue: queue, logger: log.logger) { $0.repeatInterval = 900 }
        func keys() throws -> [String] { try receiver.received.map { try Self.decode($0, format: .json) }.map { "\($0.status) \($0.key)" } }
        /// A distinct alert whose arrival proves everything observed before it was handled.
        var markers = 0
        func sync() async throws {
            markers += 1
            alerts.observe(.throttled(route: "marker\(markers)", mailbox: nil, retryAfter: nil, reply: "421 4.3.2"))
            let expected = "firing throttled:marker\(markers)"
            let arrived = await eventually(timeout: 120) { (try? keys().contains(expected)) == true }
            let seen = (try? keys()) ?? []
            try #require(arrived, "\(seen)")
        }
        let held = RelayOperationalEvent.routeHeld(routes: ["tenant"], stopped: false, until: clock.now.addingTimeInterval(600), reason: "535 5.7.139")

        try await Self.running(alerts) {
            alerts.observe(held)
            clock.advance(60)
            alerts.observe(held)
            clock.advance(800)
            alerts.observe(held)
            try await sync()
            #expect(try keys().filter { $0.hasSuffix("route-paused:tenant") } == ["firing route-paused:tenant"])

            clock.advance(100)  // 960 s after the first: past repeat_interval.
            alerts.observe(held)
            alerts.observe(held)
            try await sync()
            #expect(try keys().filter { $0.hasSuffix("route-paused:tenant") } == ["firing route-paused:tenant", "firing route-paused:tenant"])

            // A threshold alert: fired by the check, repeated after the interval, resolved once.
            queue.statistics.withLock { $0 = RelayQueueStatistics(counts: [.queued: 10], oldestQueuedAt: nil) }
            await alerts.checkNow()
            clock.advance(60)
            await alerts.checkNow()
            try await sync()
            #expect(try keys().filter { $0.hasSuffix("queue-depth") } == ["firing queue-depth"])
            clock.advance(900)
            await alerts.checkNow()
            queue.statistics.withLock { $0 = RelayQueueStatistics(counts: [.queued: 0], oldestQueuedAt: nil) }
            await alerts.checkNow()
            await alerts.checkNow()
            try await sync()
            #expect(try keys().filter { $0.hasSuffix("queue-depth") } == ["firing queue-depth", "firing queue-depth", "resolved queue-depth"])

            alerts.observe(.routeRecovered(route: "tenant"))
            alerts.observe(.routeRecovered(route: "tenant"))
            try await sync()
            #expect(try keys().filter { $0.hasSuffix("route-paused:tenant") }.last == "resolved route-paused:tenant")
            #expect(try keys().filter { $0 == "resolved route-paused:tenant" }.count == 1)
        }
    }

    /// A webhook that fails (500) or does not listen never holds up `observe`,
    /// and the warning names the host, not the URL's path or query.
    @Test(arguments: [true, false])
    func failingWebhookNeverBlocksObserve(listening: Bool) async throws {
        let receiver = WebhookReceiver()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        receiver.status.withLock { $0 = 500 }
        let url = listening
            ? receiver.url
            : "http://127.0.0.1:\(freeLoopbackPort())/hook/T0001/\(WebhookReceiver.secretPath)?sig=\(WebhookReceiver.secretQuery)"
        let clock = TestClock(), queue = QueueState(), log = LogRecorder()
        // Nothing listening: the product's timeout, since the HTTP client keeps trying a refused
        // connection until it ends. Listening: room for a loaded machine to answer its 500.
        let alerts = try Self.makeAlerts(
            url: url, clock: clock, queue: queue, logger: log.logger,
            requestTimeout: listening ? .seconds(120) : RelayAlerts.defaultRequestTimeout)

        try await Self.running(alerts) {
            let started = ContinuousClock.now
            for index in 0..<10_000 {
                alerts.observe(.authFailed(clientAddress: "198.51.100.\(index % 200)", username: nil))
                if index % 100 == 0 {
                    alerts.observe(.throttled(route: "route\(index / 100)", mailbox: nil, retryAfter: nil, reply: "432 4.3.2"))
                }
            }
            let elapsed = ContinuousClock.now - started
            // Handing 10,100 events over takes milliseconds; one webhook round trip would be 10 s.
            #expect(elapsed < .seconds(5), "observe took \(elapsed)")

            let warned = await eventually(timeout: 60) { log.all.contains { $0.contains("Alert webhook failed twice") } }
            #expect(warned)
            let warning = try #require(log.all.first { $0.contains("Alert webhook failed twice") })
            let port = url.split(separator: ":")[2].prefix { $0 != "/" }
            #expect(warning.contains("webhook=http://127.0.0.1:\(port)/<redacted>"), "\(warning)")
            #expect(warning.contains(listening ? "error=HTTP 500" : "error="), "\(warning)")
            if listening {
                // Two attempts per alert: the first alert's POST and its one retry.
                #expect(await eventually(timeout: 120) { receiver.received.count >= 2 })
            }
        }
        #expect(!log.all.contains { $0.contains(WebhookReceiver.secretPath) || $0.contains(WebhookReceiver.secretQuery) }, "\(log.all.filter { $0.contains("SECRET") })")
    }

    @Test func certificateSecretAndTokenExpiryFromTheConfiguration() async throws {
        let receiver = WebhookReceiver()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let directory = TemporaryDirectory("alerts")
        let authority = try SandboxCertificateAuthority(commonName: "alerts test CA")
        // The leaf expires in 3 days; its CA, later in the same file, in 825.
        let soon = try authority.issueServerCertificate(validity: 3 * 86_400)
        let serverCertificate = try directory.write("relay.crt", soon.chainPEM, mode: 0o644)
        let later = try authority.issueClientCertificate(commonName: "app", validity: 90 * 86_400)
        let clientCertificate = try directory.write("app.crt", later.certificatePEM, mode: 0o644)
        // A static token (a JWT) that expired an hour ago.
        func base64URL(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let exp = Int(Date().timeIntervalSince1970) - 3600
        let token = base64URL(#"{"alg":"none"}"#) + "." + base64URL(#"{"aud":"https://outlook.office365.com","exp":\#(exp)}"#) + ".c2ln"
        let tokenFile = try directory.write("token", token + "\n")

        var configuration = RelayConfiguration()
        configuration.server.tls = .init(certificateFile: serverCertificate, privateKey: .file(directory.file("relay.key")))
        var tenant = RelayConfiguration.Route(name: "tenant", mode: .graph)
        tenant.clientCertificateFile = clientCertificate
        var secretRoute = RelayConfiguration.Route(name: "legacy", mode: .graph)
        secretRoute.clientSecret = .file(directory.file("secret"))
        secretRoute.clientSecretExpires = Date().addingTimeInterval(5 * 86_400)
        var tokenRoute = RelayConfiguration.Route(name: "static", mode: .smtp)
        tokenRoute.token = .file(tokenFile)
        configuration.routes = [tenant, secretRoute, tokenRoute]

        let expiries = RelayCredentialExpiry.expiries(in: configuration)
        #expect(expiries.map(\.name) == [
            "server certificate \(serverCertificate)", "route tenant client certificate \(clientCertificate)",
            "route legacy client secret", "route static token (file \(tokenFile))",
        ])
        let leafExpiry = try #require(expiries.first?.notAfter)
        #expect(abs(leafExpiry.timeIntervalSinceNow - 3 * 86_400) < 600, "the leaf, not the CA")
        #expect(abs(expiries[3].notAfter.timeIntervalSince1970 - Double(exp)) < 1)

        let log = LogRecorder()
        let fixed = configuration
        var alertsConfiguration = RelayConfiguration.Alerts(webhookURL: receiver.url)
        alertsConfiguration.checkInterval = 0.2
        let alerts = try RelayAlerts(
            configuration: alertsConfiguration, hostname: "relay.test",
            queueStatistics: { RelayQueueStatistics(counts: [:], oldestQueuedAt: nil) },
            credentialExpiries: { RelayCredentialExpiry.expiries(in: fixed) },
            logger: log.logger, requestTimeout: .seconds(120))
        func received() throws -> [Received] { try receiver.received.map { try Self.decode($0, format: .json) } }

        try await Self.running(alerts) {
            try #require(await eventually(timeout: 120) { receiver.received.count >= 3 })
            let firing = try received()
            #expect(Set(firing.map(\.title)) == [
                "Certificate expires in 3 days: server certificate \(serverCertificate)",
                "Secret expires in 5 days: route legacy client secret",
                "Token expired: route static token (file \(tokenFile))",
            ])
            let tokenPost = try #require(receiver.received.first { $0.body.contains("Token expired") })
            let tokenAlert = try #require(try JSONSerialization.jsonObject(with: Data(tokenPost.body.utf8)) as? [String: Any])
            #expect(tokenAlert["severity"] as? String == "critical")
            #expect((tokenAlert["details"] as? [String: String])?["kind"] == "token")
            #expect(!receiver.received.contains { $0.body.contains(token) }, "the token itself is never sent")

            // Renewed: a 90-day certificate in place of the 3-day one; the periodic check announces it, once.
            _ = try directory.write("relay.crt", later.certificatePEM, mode: 0o644)
            try #require(await eventually(timeout: 120) { (try? received().contains { $0.status == "resolved" }) == true })
            try await Task.sleep(for: .milliseconds(600))
            let resolved = try received().filter { $0.status == "resolved" }
            #expect(resolved.map(\.key) == ["expiry:certificate:server certificate \(serverCertificate)"])
            #expect(try received().count == 4, "no repeats within repeat_interval")
        }
    }
}
