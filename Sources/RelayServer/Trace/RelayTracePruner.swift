import Foundation
import Logging
import RelayCore
import RelayStorage
import ServiceLifecycle

/// Keeps the trace within `trace.retention` and kept bodies within
/// `trace.keep_bodies`: prunes shortly after start, then every `interval`.
/// The store prunes in small batches, so delivery and ingress keep writing meanwhile.
struct RelayTracePruner: Service {
    let store: any RelayTraceStore
    let settings: RelayConfiguration.Trace
    let logger: Logger
    var firstRun: Duration = .seconds(60)
    var interval: Duration = .seconds(3600)
    var batchSize = 500
    var now: @Sendable () -> Date = Date.init

    func run() async throws {
        var wait = firstRun
        while true {
            // The sleep is cancelled on graceful shutdown, which ends the loop.
            let duration = wait
            let slept: Void? = try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
            guard slept != nil, !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
            await pruneOnce()
            wait = interval
        }
    }

    /// One pass; errors are logged, never fatal: the trace growing is not a reason to stop mail.
    @discardableResult
    func pruneOnce() async -> Int {
        let at = now()
        do {
            let removed = try await store.prune(
                before: at.addingTimeInterval(-settings.retention), bodiesBefore: at.addingTimeInterval(-settings.keepBodies),
                batchSize: batchSize)
            if removed > 0 {
                logger.info("Trace pruned", metadata: ["messages": "\(removed)", "retention": "\(RelayConfigurationSyntax.formatDuration(settings.retention))"])
            }
            return removed
        } catch {
            logger.error("Could not prune the trace", metadata: ["error": "\(error)"])
            return 0
        }
    }
}
