import Foundation
import RelayCore

/// What the delivery service needs to know of a route beyond its transport:
/// how Microsoft's replies read on it, its quotas, its tenant, its size limit
/// and its fallback.
public struct RelayDeliveryRoute: Sendable, Hashable {
    public var name: String
    public var transport: M365Transport
    /// The configured `mode` (`sandbox` reads replies like `smtp`), for the trace and metrics.
    public var mode: String
    /// Routes of one tenant stop together when Microsoft refuses the tenant.
    public var tenant: String?
    public var fallback: String?
    public var maxMessageSize: Int
    public var quotas: RelayConfiguration.Quotas
    public var quotaMargin: Double
    /// The mailbox every message is sent as; nil: the envelope sender.
    public var mailbox: String?

    public init(
        name: String, transport: M365Transport, tenant: String? = nil, fallback: String? = nil, maxMessageSize: Int = .max,
        quotas: RelayConfiguration.Quotas = .init(), quotaMargin: Double = 0.05, mailbox: String? = nil, mode: String? = nil
    ) {
        self.name = name
        self.transport = transport
        self.mode = mode ?? transport.rawValue
        self.tenant = tenant
        self.fallback = fallback
        self.maxMessageSize = maxMessageSize
        self.quotas = quotas
        self.quotaMargin = quotaMargin
        self.mailbox = mailbox
    }

    public init(_ route: RelayConfiguration.Route) {
        self.init(
            name: route.name, transport: M365Transport(route.mode), tenant: route.tenantID?.lowercased(), fallback: route.fallback,
            maxMessageSize: route.maxMessageSize, quotas: route.quotas, quotaMargin: route.quotaMargin, mailbox: route.mailbox,
            mode: route.mode.rawValue)
    }
}
