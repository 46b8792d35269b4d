import Foundation
import Synchronization

/// A few dedicated threads for blocking file-system calls (`fsync`).
///
/// An `fsync` blocks its thread for a disk flush. Run on Swift's cooperative
/// pool, a handful of them would stall every task in the process, so they run
/// here instead. This mirrors `NIOThreadPool` without making RelayStorage
/// depend on NIOPosix.
final class BlockingIOPool: Sendable {
    private struct State {
        var work: [@Sendable () -> Void] = []
        var isRunning = true
    }

    private let state = Mutex(State())
    /// One signal per queued work item, plus one per thread at shutdown.
    private let available = DispatchSemaphore(value: 0)
    private let threadCount: Int

    init(threadCount: Int, name: String) {
        precondition(threadCount > 0)
        self.threadCount = threadCount
        for index in 0..<threadCount {
            let thread = Thread { [self] in self.runWorker() }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
    }

    /// Thrown by `run` after `shutdown()`: the body was not run.
    struct ShutDownError: Error {}

    /// Runs `body` on one of the pool's threads; once accepted, it runs even if the pool shuts down.
    func run<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = state.withLock { state in
                guard state.isRunning else { return false }
                state.work.append { continuation.resume(with: Swift.Result { try body() }) }
                return true
            }
            if accepted {
                available.signal()
            } else {
                continuation.resume(throwing: ShutDownError())
            }
        }
    }

    /// Lets queued work finish, then ends the threads. Later `run` calls throw.
    func shutdown() {
        let wasRunning = state.withLock { state in
            defer { state.isRunning = false }
            return state.isRunning
        }
        guard wasRunning else { return }
        for _ in 0..<threadCount { available.signal() }
    }

    private func runWorker() {
        while true {
            available.wait()
            // Work is taken in FIFO order; a signal that finds the list empty is
            // one of the shutdown signals, and each thread consumes exactly one.
            let item = state.withLock { state in state.work.isEmpty ? nil : state.work.removeFirst() }
            guard let item else { return }
            item()
        }
    }
}
