import Foundation
import M365Delivery
import RelayCore

/// Each configured route as the admin API, the dashboard and metrics show it:
/// health from the delivery service's holds, quota use from its governors,
/// token expiry from the route's token provider.
struct RelayRouteStatusReport: Sendable {
    let configuration: RelayConfiguration
    let delivery: RelayDeliveryService
    let tokenProviders: [String: M365TokenProvider]
    /// Each route's credential expiry (client certificate, or the configured secret expiry).
    let credentialExpiry: @Sendable (String) -> Date?

    func routes(now: Date) async -> [RelayRouteStatus] {
        let holds = delivery.health.current(now: now)
        var result: [RelayRouteStatus] = []
        for route in configuration.routes {
            var status = RelayRouteStatus(name: route.name, mode: route.mode.rawValue, tenantID: route.tenantID, fallback: route.fallback)
            if let hold = holds[route.name] {
                status.health = hold.kind == .tenantStopped ? .stopped : .paused
                status.heldUntil = hold.until
                status.reason = hold.reason
            }
            status.mailboxes = delivery.quotaUsage(route: route.name).map { entry in
                RelayMailboxQuota(
                    mailbox: entry.mailbox,
                    messagesPerMinute: .init(used: entry.usage.messagesPerMinute.used, limit: entry.usage.messagesPerMinute.limit),
                    recipientsPerDay: .init(used: entry.usage.recipientsPerDay.used, limit: entry.usage.recipientsPerDay.limit),
                    connections: .init(used: entry.usage.concurrency.used, limit: entry.usage.concurrency.limit),
                    pausedUntil: entry.usage.pausedUntil)
            }
            status.tokenExpiresAt = await tokenProviders[route.name]?.earliestExpiry()
            status.credentialExpiresAt = credentialExpiry(route.name)
            result.append(status)
        }
        return result
    }
}

extension RelayRouteStatusReport {
    /// Each route's credential expiry from the configuration (client
    /// certificate's notAfter, or `client_secret_expires`), read once at start.
    static func credentialExpiries(of configuration: RelayConfiguration) -> @Sendable (String) -> Date? {
        var byRoute: [String: Date] = [:]
        for route in configuration.routes {
            let single = RelayConfiguration(routes: [route])
            if let earliest = RelayCredentialExpiry.expiries(in: single).filter({ $0.what != .token }).map(\.notAfter).min() {
                byRoute[route.name] = earliest
            }
        }
        return { [byRoute] in byRoute[$0] }
    }
}
