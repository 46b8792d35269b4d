import Foundation
import NIOConcurrencyHelpers
import RelayCore

/// Ingress state that outlives a connection and is shared by every listener:
/// what the relay remembers about a client address or a client rule across
/// reconnects (AUTH failures and lockouts, message rates).
final class RelayIngressSecurity: Sendable {
    let configuration: RelayConfiguration
    private let now: @Sendable () -> Date

    init(configuration: RelayConfiguration, now: @escaping @Sendable () -> Date = Date.init) {
        self.configuration = configuration
        self.now = now
    }
}
