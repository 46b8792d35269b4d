import Foundation
import RelayCore
import RelayStorage

/// What the admin server and the dashboard read and act on. The running relay
/// implements it (RelayServer); so can a test, with a real store.
public protocol RelayAdminBackend: Sendable {
    var trace: any RelayTraceStore { get }
    /// Every configured route with its health, quota use and expiries.
    func routes(now: Date) async -> [RelayRouteStatus]
    /// `/readyz`: nil when ready, else why not (storage unreachable, no usable route).
    func notReadyReason() async -> String?
    /// `/metrics`: the Prometheus text exposition.
    func metricsText() async -> String
}
