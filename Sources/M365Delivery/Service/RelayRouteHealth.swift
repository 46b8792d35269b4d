import Foundation
import NIOConcurrencyHelpers
import RelayCore

/// Which routes may send now. A route is paused when Microsoft says it is
/// misconfigured (authentication, connector attribution, a block-listed IP)
/// and stopped with every route of its tenant when Microsoft refuses the
/// tenant's traffic (`5.7.705`, `5.7.708`). A hold ends on its own after its
/// interval so that the route is probed again once the administrator has
/// fixed it; messages meanwhile wait in the queue, or go to a fallback route.
public final class RelayRouteHealth: Sendable {
    public struct Hold: Sendable, Hashable {
        public enum Kind: String, Sendable, Hashable {
            /// This route alone.
            case routePaused = "route-paused"
            /// Every route of the tenant (circuit breaker).
            case tenantStopped = "tenant-stopped"
        }

        public var kind: Kind
        public var until: Date
        /// Microsoft's reply and what it means, for the log and the API.
        public var reason: String
    }

    private let holds = NIOLockedValueBox([String: Hold]())
    /// Route names by tenant: a stopped tenant stops all of them.
    private let tenants: [String: String]

    /// - Parameter tenants: each route's tenant id (routes without one are their own tenant).
    public init(tenants: [String: String]) {
        self.tenants = tenants
    }

    /// The hold on `route` at `now`, if any; an expired one is forgotten.
    public func hold(on route: String, now: Date) -> Hold? {
        holds.withLockedValue { holds in
            guard let hold = holds[route] else { return nil }
            if hold.until <= now {
                holds[route] = nil
                return nil
            }
            return hold
        }
    }

    /// Pauses `route` until `until` (never shortens a longer hold). Returns the routes held.
    @discardableResult
    public func pause(route: String, until: Date, reason: String) -> [String] {
        place(Hold(kind: .routePaused, until: until, reason: reason), on: [route])
    }

    /// Stops every route of `route`'s tenant until `until`. Returns the routes held.
    @discardableResult
    public func stopTenant(of route: String, until: Date, reason: String) -> [String] {
        let names: [String]
        if let tenant = tenants[route] {
            names = tenants.filter { $0.value == tenant }.map(\.key).sorted()
        } else {
            names = [route]
        }
        return place(Hold(kind: .tenantStopped, until: until, reason: reason), on: names)
    }

    /// Ends any hold on `route` (an operator's resume, or a later success).
    public func resume(route: String) {
        holds.withLockedValue { _ = $0.removeValue(forKey: route) }
    }

    /// Every hold in force, by route.
    public func current(now: Date) -> [String: Hold] {
        holds.withLockedValue { holds in
            holds = holds.filter { $0.value.until > now }
            return holds
        }
    }

    private func place(_ hold: Hold, on routes: [String]) -> [String] {
        holds.withLockedValue { holds in
            for route in routes where (holds[route]?.until ?? .distantPast) < hold.until {
                holds[route] = hold
            }
        }
        return routes
    }
}
