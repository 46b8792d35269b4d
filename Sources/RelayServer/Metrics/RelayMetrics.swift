import CoreMetrics
import Foundation
import Prometheus
import RelayCore
import Synchronization

/// The relay's Prometheus metrics: counts operational events as they happen
/// and renders the text exposition for `/metrics`, with gauges set from the
/// queue and route snapshot the caller passes on each scrape.
///
/// Each instance owns its registry and makes its metrics through swift-metrics
/// with an explicit factory: `MetricsSystem.bootstrap` is process-wide, and
/// tests run many relays in one process.
public final class RelayMetrics: RelayEventObserver, Sendable {
    /// Bucket upper bounds of `m365relay_delivery_latency_seconds`: 0.1 s to a day.
    public static let deliveryLatencyBuckets: [Double] = [
        0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400,
    ]
    /// Bucket upper bounds of `m365relay_delivery_attempt_duration_seconds`: 50 ms to 2 min.
    public static let attemptDurationBuckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120]

    private let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    /// Metric objects by label set, so the hot path is one lock and one lookup.
    private let series = Mutex(SeriesCache())
    /// The scrape-time gauges of the last render; the lock also serialises renders.
    private let scrapeGauges = Mutex([SeriesKey: CoreMetrics.Gauge]())
    private let buildInfo: CoreMetrics.Gauge

    public init(version: String = "unknown") {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets = [
            RelayMetricName.deliveryLatency.rawValue: Self.deliveryLatencyBuckets,
            RelayMetricName.attemptDuration.rawValue: Self.attemptDurationBuckets,
        ]
        self.registry = registry
        self.factory = factory
        buildInfo = CoreMetrics.Gauge(
            label: RelayMetricName.buildInfo.rawValue, dimensions: [("version", LabelValues.clean(version))], factory: factory)
        buildInfo.record(1)
        // Unlabelled counters exist from the start, so a rate over them works before the first event.
        for metric in [RelayMetricName.messagesBounced, .authFailures, .lockouts] { counter(metric).increment(by: 0) }
    }

    // MARK: Events

    public func observe(_ event: RelayOperationalEvent) {
        switch event {
        case .messageReceived(let client, let route, _):
            counter(.messagesReceived, client, route).increment()
        case .messageRefused(let client, let reason):
            counter(.messagesRefused, client, reason).increment()
        case .sessionEnded(_, let tlsVersion):
            counter(.sessions, tlsVersion ?? "none").increment()
        case .authFailed:
            counter(.authFailures).increment()
        case .clientLockedOut:
            counter(.lockouts).increment()
        case .attemptFinished(let report):
            observeAttempt(report)
        case .throttled(let route, _, _, _):
            counter(.throttled, route).increment()
        case .routeHeld(let routes, let stopped, _, _):
            for route in routes { counter(.routeHolds, route, stopped ? "stopped" : "paused").increment() }
        case .routeRecovered:
            break
        case .bounced:
            counter(.messagesBounced).increment()
        }
    }

    private func observeAttempt(_ report: RelayAttemptReport) {
        counter(.deliveryAttempts, report.route, report.transport, report.outcome.rawValue).increment()
        histogram(.attemptDuration, report.route).record(Self.seconds(report.duration))
        switch report.outcome {
        case .delivered:
            counter(.messagesDelivered, report.client, report.route).increment()
            histogram(.deliveryLatency, report.route).record(Self.seconds(report.sinceReceived))
        case .deferred:
            counter(.messagesDeferred, report.client, report.route, report.replyClass).increment()
        case .failed:
            counter(.messagesFailed, report.client, report.route, report.replyClass).increment()
        }
    }

    /// Clock steps can make an interval negative; a histogram only takes time forward.
    private static func seconds(_ interval: TimeInterval) -> Double {
        interval.isFinite ? max(0, interval) : 0
    }

    private func counter(_ metric: RelayMetricName, _ values: String...) -> CoreMetrics.Counter {
        series.withLock { cache in
            let key = SeriesKey(metric, values)
            if let counter = cache.counters[key] { return counter }
            let admitted = cache.admit(key)
            let counter =
                cache.counters[admitted]
                ?? CoreMetrics.Counter(label: metric.rawValue, dimensions: admitted.dimensions, factory: factory)
            cache.remember(counter, for: key, admitted: admitted, in: \.counters)
            return counter
        }
    }

    private func histogram(_ metric: RelayMetricName, _ values: String...) -> CoreMetrics.Recorder {
        series.withLock { cache in
            let key = SeriesKey(metric, values)
            if let recorder = cache.histograms[key] { return recorder }
            let admitted = cache.admit(key)
            let recorder =
                cache.histograms[admitted]
                ?? CoreMetrics.Recorder(label: metric.rawValue, dimensions: admitted.dimensions, aggregate: true, factory: factory)
            cache.remember(recorder, for: key, admitted: admitted, in: \.histograms)
            return recorder
        }
    }

    // MARK: Scrape

    /// Sets the scrape-time gauges from the snapshot, drops those of routes,
    /// mailboxes and certificates no longer reported, and returns the text
    /// exposition (format 0.0.4).
    ///
    /// `certificates` takes the alerts' expiry list as it is: its certificates
    /// become `m365relay_certificate_expiry_seconds{name}`; client secrets and
    /// tokens are the routes' `credential_expiry` and `token_expiry` already.
    public func render(
        statistics: RelayQueueStatistics, routes: [RelayRouteStatus], certificates: [RelayCredentialExpiry], now: Date
    ) -> String {
        var values: [SeriesKey: Double] = [:]
        func set(_ metric: RelayMetricName, _ labelValues: [String], _ value: Double) {
            values[SeriesKey(metric, labelValues.map(LabelValues.clean))] = value
        }

        for status in RelayTraceStatus.allCases {
            set(.queueMessages, [status.rawValue], Double(statistics.counts[status] ?? 0))
        }
        set(.queueOldestMessageAge, [], statistics.oldestQueuedAt.map { max(0, now.timeIntervalSince($0)) } ?? 0)

        for route in routes {
            set(.routeUp, [route.name], route.health == .ok ? 1 : 0)
            if let expiry = route.tokenExpiresAt { set(.tokenExpiry, [route.name], expiry.timeIntervalSince(now)) }
            if let expiry = route.credentialExpiresAt { set(.credentialExpiry, [route.name], expiry.timeIntervalSince(now)) }
            for mailbox in route.mailboxes {
                let quotas = [
                    ("messages_per_minute", mailbox.messagesPerMinute), ("recipients_per_day", mailbox.recipientsPerDay),
                    ("connections", mailbox.connections),
                ]
                for (quota, use) in quotas {
                    set(.quotaUsed, [route.name, mailbox.mailbox, quota], Double(use.used))
                    if let limit = use.limit { set(.quotaLimit, [route.name, mailbox.mailbox, quota], Double(limit)) }
                }
            }
        }
        for certificate in certificates where certificate.what == .certificate {
            set(.certificateExpiry, [certificate.name], certificate.notAfter.timeIntervalSince(now))
        }

        return scrapeGauges.withLock { gauges in
            for (key, value) in values {
                let gauge =
                    gauges[key]
                    ?? CoreMetrics.Gauge(label: key.metric.rawValue, dimensions: key.dimensions, factory: factory)
                gauges[key] = gauge
                gauge.record(value)
            }
            for key in gauges.keys where values[key] == nil {
                gauges.removeValue(forKey: key)?.destroy()
            }
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Self.exposition(String(decoding: buffer, as: UTF8.self))
        }
    }

    /// The registry's text with each family's `# HELP` line added (the
    /// swift-metrics factory registers none) and families in name order, so
    /// two scrapes of the same state read the same.
    static func exposition(_ emitted: String) -> String {
        struct Family {
            var name: String
            var hasHelp = false
            var lines: [Substring] = []
        }
        var families: [Family] = []
        for line in emitted.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let name = String(line.dropFirst(7).prefix { $0 != " " })
                if families.last?.name != name { families.append(Family(name: name)) }
                if line.hasPrefix("# HELP ") { families[families.count - 1].hasHelp = true }
            }
            guard !families.isEmpty else { continue }
            families[families.count - 1].lines.append(line)
        }
        var text = ""
        for family in families.sorted(by: { $0.name < $1.name }) {
            if !family.hasHelp, let help = RelayMetricName(rawValue: family.name)?.help {
                text += "# HELP \(family.name) \(help)\n"
            }
            for line in family.lines { text += line + "\n" }
        }
        return text
    }
}

/// One time series: a metric and its label values, in the metric's label order.
private struct SeriesKey: Hashable, Sendable {
    var metric: RelayMetricName
    var values: [String]

    init(_ metric: RelayMetricName, _ values: [String]) {
        precondition(values.count == metric.labelNames.count, "\(metric.rawValue) takes labels \(metric.labelNames)")
        self.metric = metric
        self.values = values
    }

    var dimensions: [(String, String)] { Array(zip(metric.labelNames, values)) }
}

/// Keyed by the label values as the event gave them, so a repeated series
/// costs one lookup; a value cleaned or budgeted into `other` is looked up
/// under its admitted form only, so junk values do not grow the cache.
private struct SeriesCache {
    var counters: [SeriesKey: CoreMetrics.Counter] = [:]
    var histograms: [SeriesKey: CoreMetrics.Recorder] = [:]
    var labelValues = LabelValues()

    mutating func admit(_ key: SeriesKey) -> SeriesKey {
        SeriesKey(key.metric, zip(key.metric.labelNames, key.values).map { labelValues.admit($1, for: $0) })
    }

    mutating func remember<Metric>(
        _ metric: Metric, for key: SeriesKey, admitted: SeriesKey, in table: WritableKeyPath<SeriesCache, [SeriesKey: Metric]>
    ) {
        self[keyPath: table][admitted] = metric
        if key != admitted, self[keyPath: table].count < Self.maximumAliases { self[keyPath: table][key] = metric }
    }

    /// Raw spellings kept beside the admitted ones, for values the cleaning
    /// changes (e.g. an empty client name); beyond this they take the slow path.
    static let maximumAliases = 4096
}

/// Keeps label cardinality bounded even if a caller passes something less
/// stable than a configured name: past a label's budget of distinct values,
/// new values count as `other`.
private struct LabelValues {
    static let maximumLength = 128
    static let budgets: [String: Int] = [
        "client": 256, "route": 256, "reason": 32, "reply_class": 32, "transport": 16, "tls_version": 16, "outcome": 8, "kind": 8,
    ]

    private var seen: [String: Set<String>] = [:]

    mutating func admit(_ value: String, for label: String) -> String {
        let value = Self.clean(value)
        if seen[label]?.contains(value) == true { return value }
        guard seen[label, default: []].count < Self.budgets[label, default: 64] else { return "other" }
        seen[label, default: []].insert(value)
        return value
    }

    static func clean(_ value: String) -> String {
        if value.isEmpty { return "unknown" }
        return value.count > maximumLength ? String(value.prefix(maximumLength)) : value
    }
}
