import Synchronization

/// Gathers concurrent commits so that they share one database transaction.
///
/// With `synchronous=FULL` every SQLite transaction costs a WAL `fsync`. When
/// many sessions finish DATA at once, each one waiting for its own
/// transaction would serialise those flushes; instead, whoever arrives while
/// a flush is running joins the next batch, and the batch's single
/// transaction acknowledges all of them.
final class GroupCommitter<Item: Sendable>: Sendable {
    /// Writes one batch; returns one result per item, in order.
    typealias Flush = @Sendable ([Item]) async -> [Result<Void, any Error>]

    private struct Waiter: Sendable {
        var item: Item
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State: Sendable {
        var pending: [Waiter] = []
        var isDraining = false
    }

    private let state = Mutex(State())
    private let flush: Flush

    init(flush: @escaping Flush) {
        self.flush = flush
    }

    /// Returns once the batch holding `item` is written, or throws its error.
    func submit(_ item: Item) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let startsDrain = state.withLock { state in
                state.pending.append(Waiter(item: item, continuation: continuation))
                guard !state.isDraining else { return false }
                state.isDraining = true
                return true
            }
            if startsDrain {
                Task { await self.drain() }
            }
        }
    }

    /// Items waiting for the next batch (for tests).
    var pendingCount: Int {
        state.withLock { $0.pending.count }
    }

    private func drain() async {
        while true {
            // Taking the batch and giving up the drain happen under one lock, so
            // an item submitted concurrently is either in this batch or starts a new drain.
            let batch = state.withLock { state in
                let batch = state.pending
                state.pending = []
                if batch.isEmpty { state.isDraining = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let results = await flush(batch.map(\.item))
            precondition(results.count == batch.count, "flush must return one result per item")
            for (waiter, result) in zip(batch, results) {
                waiter.continuation.resume(with: result)
            }
        }
    }
}
