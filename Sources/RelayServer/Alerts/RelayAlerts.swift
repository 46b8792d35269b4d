import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOSSL
import RelayCore
import ServiceLifecycle
import Synchronization

/// Webhook alerts (`alerts` in the configuration): AUTH failure bursts and
/// lockouts, Microsoft throttling, paused routes and stopped tenants, queue
/// depth and age, and expiring certificates, secrets and static tokens.
///
/// Three tasks under ``run()``, joined by bounded buffers so that nothing
/// upstream ever waits on the webhook:
/// - ``observe(_:)`` (called on the mail path) only hands the events alerts
///   care about to a buffer that keeps the newest 1000;
/// - one task turns events, and a check every `check_interval`, into alerts
///   (``RelayAlertBook`` decides what fires, repeats and resolves);
/// - one task POSTs them one by one (10 s timeout, one retry), from an outbox
///   that keeps the newest 100; an alert that still fails is logged and dropped.
///
/// The webhook URL's path and query are a capability (Teams and Slack put the
/// key there): logs show `scheme://host/<redacted>` only.
public final class RelayAlerts: RelayEventObserver, Service {
    private let configuration: RelayConfiguration.Alerts
    private let webhookURL: String
    private let hostname: String
    private let queueStatistics: @Sendable () async throws -> RelayQueueStatistics
    private let credentialExpiries: @Sendable () async -> [RelayCredentialExpiry]
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let retryDelay: Duration
    private let client: HTTPClient
    private let book: Mutex<RelayAlertBook>
    /// Events with the time they happened: the AUTH window counts real time, not when the buffer was drained.
    private let events: (stream: AsyncStream<(RelayOperationalEvent, Date)>, continuation: AsyncStream<(RelayOperationalEvent, Date)>.Continuation)
    private let outbox: (stream: AsyncStream<RelayAlert>, continuation: AsyncStream<RelayAlert>.Continuation)
    /// Whether the last queue statistics read failed, so that a broken store is logged once, not every check.
    private let statisticsFailing = Mutex(false)
    /// Routes Microsoft has throttled (at most the configured routes): only their deliveries matter here.
    private let throttledRoutes = Mutex(Set<String>())
    private let clientShutDown = Mutex(false)

    /// Timeout of one POST, unless the initialiser is given another.
    public static let defaultRequestTimeout: TimeAmount = .seconds(10)
    private let requestTimeout: TimeAmount

    /// - Parameters:
    ///   - configuration: the `alerts` section; `webhook_url` is required.
    ///   - hostname: `server.hostname`, named in every alert.
    ///   - queueStatistics: the queue at a glance (the trace store's statistics).
    ///   - credentialExpiries: what expires when; ``RelayCredentialExpiry/expiries(in:)``
    ///     gives the configured certificates, secrets and static tokens.
    ///   - now: the wall clock; tests move it to cross `repeat_interval`.
    ///   - retryDelay: the pause before the one retry of a failed POST.
    ///   - requestTimeout: how long one POST may take (tests on a loaded machine give more).
    /// - Throws: ``RelayStartupError`` when the URL is missing or `ca_file` is unusable.
    public init(
        configuration: RelayConfiguration.Alerts,
        hostname: String,
        queueStatistics: @escaping @Sendable () async throws -> RelayQueueStatistics,
        credentialExpiries: @escaping @Sendable () async -> [RelayCredentialExpiry],
        logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() },
        retryDelay: Duration = .seconds(2),
        requestTimeout: TimeAmount = RelayAlerts.defaultRequestTimeout
    ) throws(RelayStartupError) {
        guard let webhookURL = configuration.webhookURL else { throw RelayStartupError("alerts.webhook_url is required") }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caFile = configuration.caFile {
            do {
                _ = try NIOSSLCertificate.fromPEMFile(caFile)
            } catch {
                throw RelayStartupError("alerts.ca_file: cannot read certificates from \(caFile): \(error)")
            }
            tls.additionalTrustRoots = [.file(caFile)]
        }
        var httpConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
        httpConfiguration.timeout = .init(connect: requestTimeout, read: requestTimeout)
        // A redirect would carry the alert somewhere the operator did not configure.
        httpConfiguration.redirectConfiguration = .disallow
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        self.configuration = configuration
        self.webhookURL = webhookURL
        self.hostname = hostname
        self.queueStatistics = queueStatistics
        self.credentialExpiries = credentialExpiries
        self.logger = logger
        self.now = now
        self.retryDelay = retryDelay
        self.requestTimeout = requestTimeout
        self.book = Mutex(RelayAlertBook(rules: .init(configuration)))
        self.events = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1000))
        self.outbox = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100))
    }

    /// `scheme://host/<redacted>`: what logs may show of the webhook.
    public var redactedWebhookURL: String { RelayConfiguration.redactedWebhookURL(webhookURL) }

    /// The alert keys firing now (for tests and diagnostics).
    public var firingKeys: Set<String> { book.withLock { $0.firingKeys } }

    // MARK: Observer

    /// Returns at once: only hands the event over. Events alerts do not use
    /// are not even buffered, so that a flood of them cannot push out one that matters.
    public func observe(_ event: RelayOperationalEvent) {
        switch event {
        case .throttled(let route, _, _, _):
            throttledRoutes.withLock { _ = $0.insert(route) }
            events.continuation.yield((event, now()))
        case .authFailed, .clientLockedOut, .routeHeld, .routeRecovered:
            events.continuation.yield((event, now()))
        case .attemptFinished(let report) where report.outcome == .delivered:
            // Tells a throttled route's recovery; other routes' deliveries would only fill the buffer.
            if throttledRoutes.withLock({ $0.contains(report.route) }) {
                events.continuation.yield((event, now()))
            }
        default:
            break
        }
    }

    // MARK: Service

    /// Until graceful shutdown: consumes events, checks every `check_interval`
    /// (first at once), sends alerts. Shuts the HTTP client down when it ends.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.consumeEvents() }
                group.addTask { await self.checkPeriodically() }
                group.addTask { await self.sendAlerts() }
            }
        }
        await shutdown()
    }

    /// Shuts the HTTP client down; ``run()`` does it when it ends. Idempotent.
    public func shutdown() async {
        events.continuation.finish()
        outbox.continuation.finish()
        let first = clientShutDown.withLock { done in
            defer { done = true }
            return !done
        }
        if first { try? await client.shutdown() }
    }

    /// Runs the periodic checks once, now (also called every `check_interval` by ``run()``).
    public func checkNow() async {
        var statistics: RelayQueueStatistics?
        do {
            statistics = try await queueStatistics()
            statisticsFailing.withLock { $0 = false }
        } catch {
            let first = statisticsFailing.withLock { failing in
                defer { failing = true }
                return !failing
            }
            if first { logger.warning("Alerts cannot read the queue statistics; queue alerts wait", metadata: ["error": "\(error)"]) }
        }
        let expiries = await credentialExpiries()
        let time = now()
        let alerts = book.withLock { $0.checked(statistics: statistics, expiries: expiries, now: time) }
        for alert in alerts { enqueue(alert) }
    }

    private func consumeEvents() async {
        for await (event, time) in events.stream {
            let alerts = book.withLock { $0.observe(event, now: time) }
            for alert in alerts { enqueue(alert) }
        }
    }

    private func checkPeriodically() async {
        let interval = Duration.milliseconds(Int64((max(configuration.checkInterval, 0.01) * 1000).rounded()))
        while !Task.isCancelled {
            await checkNow()
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }

    private func enqueue(_ alert: RelayAlert) {
        logger.notice(alert.status == .firing ? "Alert firing" : "Alert resolved", metadata: [
            "alert": "\(alert.key)", "severity": "\(alert.severity.rawValue)", "title": "\(alert.title)",
        ])
        if case .dropped(let old) = outbox.continuation.yield(alert) {
            logger.warning("Alert dropped: the webhook is too far behind", metadata: ["alert": "\(old.key)", "webhook": "\(redactedWebhookURL)"])
        }
    }

    // MARK: Delivery

    private func sendAlerts() async {
        for await alert in outbox.stream {
            await send(alert)
        }
    }

    /// POSTs one alert: two attempts, then a warning. Never throws.
    private func send(_ alert: RelayAlert) async {
        let body = alert.payload(format: configuration.format, relay: hostname)
        var failure = ""
        for attempt in 1...2 {
            if attempt > 1 {
                do { try await Task.sleep(for: retryDelay) } catch { return }
            }
            var request = HTTPClientRequest(url: webhookURL)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "m365-relay")
            request.body = .bytes(ByteBuffer(bytes: body))
            do {
                let response = try await client.execute(request, timeout: requestTimeout)
                // Read the (small) answer so that the connection can be reused; its content does not matter.
                _ = try? await response.body.collect(upTo: 64 * 1024)
                if (200..<300).contains(response.status.code) {
                    logger.debug("Alert sent", metadata: ["alert": "\(alert.key)", "status": "\(alert.status.rawValue)"])
                    return
                }
                failure = "HTTP \(response.status.code)"
            } catch {
                if Task.isCancelled { return }
                failure = redacting("\(error)")
            }
        }
        logger.warning("Alert webhook failed twice; alert dropped", metadata: [
            "alert": "\(alert.key)", "status": "\(alert.status.rawValue)", "webhook": "\(redactedWebhookURL)", "error": "\(failure)",
        ])
    }

    /// An error text with the URL's path and query (the capability) taken out,
    /// should a library ever include the URL.
    func redacting(_ text: String) -> String {
        guard let separator = webhookURL.range(of: "://") else { return text }
        let afterScheme = webhookURL[separator.upperBound...]
        guard let pathStart = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) else { return text }
        let secret = String(afterScheme[pathStart...])
        guard secret.count > 1 else { return text }
        return text.replacingOccurrences(of: webhookURL, with: redactedWebhookURL)
            .replacingOccurrences(of: secret, with: "/" + "<redacted>")
            .replacingOccurrences(of: String(secret.dropFirst()), with: "<redacted>")
    }
}
