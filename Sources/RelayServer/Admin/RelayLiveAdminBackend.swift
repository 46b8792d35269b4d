import Foundation
import RelayAdmin
import RelayCore
import RelayStorage
import Synchronization

/// The running relay as the admin server sees it: its queue and trace, its
/// routes, its metrics.
final class RelayLiveAdminBackend: RelayAdminBackend {
    let trace: any RelayTraceStore
    private let routeReport: RelayRouteStatusReport
    private let metrics: RelayMetrics
    private let configuration: RelayConfiguration
    /// Credential expiries read from files; re-read at most every `expiryRefresh` (files change on renewal, rarely).
    private let expiryCache = Mutex<(at: Date, values: [RelayCredentialExpiry])?>(nil)
    private let expiryRefresh: TimeInterval = 300
    private let now: @Sendable () -> Date

    init(
        trace: any RelayTraceStore, routeReport: RelayRouteStatusReport, metrics: RelayMetrics, configuration: RelayConfiguration,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.now = now
        self.trace = trace
        self.routeReport = routeReport
        self.metrics = metrics
        self.configuration = configuration
    }

    func routes(now: Date) async -> [RelayRouteStatus] {
        await routeReport.routes(now: now)
    }

    /// Ready when the queue answers and at least one route may send now.
    func notReadyReason() async -> String? {
        do {
            _ = try await trace.queueStatistics()
        } catch {
            return "storage is not reachable: \(error)"
        }
        let routes = await routeReport.routes(now: now())
        if !routes.isEmpty && routes.allSatisfy({ $0.health != .ok }) {
            let held = routes.map { "\($0.name) \($0.health.rawValue) until \($0.heldUntil.map { "\($0)" } ?? "?")" }
            return "no route can send: \(held.joined(separator: "; "))"
        }
        return nil
    }

    func metricsText() async -> String {
        let now = self.now()
        let statistics: RelayQueueStatistics
        do {
            statistics = try await trace.queueStatistics()
        } catch {
            // The scrape still answers with the counters; /readyz reports the storage failure.
            statistics = RelayQueueStatistics(counts: [:], oldestQueuedAt: nil)
        }
        return metrics.render(statistics: statistics, routes: await routeReport.routes(now: now), certificates: credentialExpiries(now: now), now: now)
    }

    func credentialExpiries(now: Date) -> [RelayCredentialExpiry] {
        expiryCache.withLock { cache in
            if let cache, now.timeIntervalSince(cache.at) < expiryRefresh { return cache.values }
            let values = RelayCredentialExpiry.expiries(in: configuration)
            cache = (now, values)
            return values
        }
    }
}
