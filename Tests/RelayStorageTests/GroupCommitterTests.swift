import Synchronization
import Testing
@testable import RelayStorage

@Suite("Group commit")
struct GroupCommitterTests {
    private struct RejectedItem: Error {}

    @Test("commits arriving during a flush share the next one, and each gets its own result", .timeLimit(.minutes(5)))
    func arrivalsDuringAFlushShareTheNextOne() async throws {
        let (gate, openGate) = AsyncStream<Void>.makeStream()
        let batches = Mutex<[[Int]]>([])
        let committer = GroupCommitter<Int> { batch in
            batches.withLock { $0.append(batch) }
            if batch == [0] {
                // Hold the first flush until every other item is waiting.
                for await _ in gate {}
            }
            return batch.map { $0 == 13 ? .failure(RejectedItem()) : .success(()) }
        }

        let first = Task { try await committer.submit(0) }
        while batches.withLock({ $0.isEmpty }) { await Task.yield() }

        let outcomes = await withTaskGroup(of: (Int, Bool).self) { group in
            for item in 1...49 {
                group.addTask { (item, (try? await committer.submit(item)) != nil) }
            }
            while committer.pendingCount < 49 { await Task.yield() }
            openGate.finish()
            return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        try await first.value

        let flushed = batches.withLock { $0 }
        #expect(flushed.count == 2)
        #expect(flushed.first == [0])
        #expect(flushed.last?.sorted() == Array(1...49))
        #expect(outcomes.count == 49)
        #expect(outcomes.filter { !$0.value }.map(\.key) == [13])
    }

    @Test("a lone commit is flushed alone, and a later one starts a new flush")
    func sequentialCommitsFlushSeparately() async throws {
        let batches = Mutex<[[Int]]>([])
        let committer = GroupCommitter<Int> { batch in
            batches.withLock { $0.append(batch) }
            return batch.map { _ in .success(()) }
        }
        try await committer.submit(1)
        try await committer.submit(2)
        #expect(batches.withLock { $0 } == [[1], [2]])
        #expect(committer.pendingCount == 0)
    }
}
