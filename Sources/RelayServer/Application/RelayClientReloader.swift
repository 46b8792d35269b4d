import Foundation
import Logging
import RelayCore

/// Applies a changed configuration file's `clients` to the running relay
/// (SIGHUP, ``RelayApplication/reloadConfiguration()``).
///
/// Only `clients` apply live: they decide which route new mail takes, which
/// is what a phased rollout changes. Routes, listeners and storage own
/// connections, ports and files, so their changes wait for a restart, and
/// the reload says which sections those are.
public struct RelayClientReloader: Sendable {
    public struct Outcome: Sendable, Hashable {
        /// Clients whose rule changed, was added or removed, by name.
        public var changedClients: [String]
        /// Sections that differ from the running configuration and need a restart.
        public var needsRestart: [String]
    }

    /// The configuration the relay started with (its routes are the ones it has).
    let running: RelayConfiguration
    let path: String?
    let security: RelayIngressSecurity?
    let logger: Logger

    func reload() throws(RelayStartupError) -> Outcome {
        guard let path, let security else {
            throw RelayStartupError("configuration reload: the relay was not started from a configuration file")
        }
        let new: RelayConfiguration
        do {
            new = try RelayConfiguration.load(path: path)
        } catch {
            throw RelayStartupError("configuration reload: \(path) is not valid; the running configuration stays:\n\(error)")
        }
        let routes = Set(running.routes.map(\.name))
        let unknown = new.clients.filter { !routes.contains($0.route) }
        guard unknown.isEmpty else {
            let names = unknown.map { "\($0.name) → \($0.route)" }.joined(separator: ", ")
            throw RelayStartupError("configuration reload: clients use routes the running relay does not have (\(names)); new routes need a restart")
        }
        let current = security.configuration
        var applied = current
        applied.clients = new.clients
        let before = Dictionary(current.clients.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new.clients.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let changed = Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted()
        security.reload(configuration: applied)
        return Outcome(changedClients: changed, needsRestart: Self.sectionsDiffering(running, new))
    }

    /// For the signal handler: the outcome or the error is logged, there is no one to throw to.
    func reloadLogging() {
        guard path != nil else { return }
        do {
            let outcome = try reload()
            logger.notice("Configuration reloaded: client rules applied to new sessions", metadata: [
                "clients_changed": "\(outcome.changedClients.isEmpty ? "none" : outcome.changedClients.joined(separator: ","))",
            ])
            if !outcome.needsRestart.isEmpty {
                logger.warning("Configuration sections changed that apply only after a restart", metadata: [
                    "sections": "\(outcome.needsRestart.joined(separator: ","))",
                ])
            }
        } catch {
            logger.error("Configuration reload refused", metadata: ["error": "\(error)"])
        }
    }

    static func sectionsDiffering(_ running: RelayConfiguration, _ new: RelayConfiguration) -> [String] {
        var sections: [String] = []
        if running.server != new.server { sections.append("server") }
        if running.storage != new.storage { sections.append("storage") }
        if running.routes != new.routes { sections.append("routes") }
        if running.delivery != new.delivery { sections.append("delivery") }
        if running.dkim != new.dkim { sections.append("dkim") }
        if running.admin != new.admin { sections.append("admin") }
        if running.alerts != new.alerts { sections.append("alerts") }
        if running.trace != new.trace { sections.append("trace") }
        if running.logging != new.logging { sections.append("logging") }
        if running.dns != new.dns { sections.append("dns") }
        return sections
    }
}
