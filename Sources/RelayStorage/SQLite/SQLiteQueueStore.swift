import Foundation
import GRDB
import Logging
import NIOCore
import RelayCore
import Synchronization

/// The embedded queue: envelopes and delivery state in SQLite (WAL, `synchronous=FULL`),
/// content in a spool directory beside it, one file per message.
///
/// A message is durable when its content file is synced, the spool directory
/// is synced (so the file's name survives a crash too), and its row is
/// committed. Concurrent commits share one transaction (see `GroupCommitter`).
/// A file without a row was never acknowledged and is removed when the store opens.
public final class SQLiteQueueStore: RelayQueueStore, Sendable {
    let database: DatabasePool
    let spool: SpoolDirectory
    /// How long content stays after a message finished (`trace.keep_bodies`); 0 removes it at once.
    let keepBodies: TimeInterval
    /// Threads for `fsync`, which must not block the cooperative pool.
    private let io: BlockingIOPool
    private let committer: GroupCommitter<PendingInsert>
    /// Attempts recorded by concurrent deliveries share one transaction too.
    private let attemptCommitter: GroupCommitter<PendingAttempt>

    struct PendingAttempt: Sendable {
        var id: RelayQueueID
        var owner: String
        var change: Change

        enum Change: Sendable {
            case attempt(RelayAttemptResult)
            case postpone(until: Date, route: String?)
        }
    }
    /// Content up to this size is committed into the database instead of a spool file.
    private let inlineContentLimit: Int

    /// A message on its way into the queue, with its content when it is small.
    struct PendingInsert: Sendable {
        var message: RelayQueuedMessage
        var inlineContent: ByteBuffer?
    }
    private let logger: Logger
    private let isClosed = Mutex(false)
    /// `flock` on `<path>.lock`, held while the store is open.
    private let lockDescriptor: Int32

    /// Opens (or creates) the queue database at `path`, migrates it, and removes
    /// spool files left by commits that never completed.
    /// - Parameter spoolDirectory: where content files live; `<directory of path>/spool` by default.
    /// - Parameter inlineContentLimit: messages up to this size are kept in the
    ///   database (64 KiB by default); 0 puts every message in a spool file.
    /// - Parameter keepBodies: how long a finished message's content is kept
    ///   (`trace.keep_bodies`); 0 removes it as soon as the message finishes.
    ///   `prune(before:bodiesBefore:batchSize:)` removes kept content later.
    /// - Parameter now: the clock of trace events the store writes itself (a reroute by `postpone`).
    public init(
        path: String, spoolDirectory: String? = nil, inlineContentLimit: Int = 64 * 1024, keepBodies: TimeInterval = 0,
        now: @escaping @Sendable () -> Date = Date.init, logger: Logger
    ) throws {
        self.inlineContentLimit = inlineContentLimit
        self.keepBodies = max(0, keepBodies)
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let database: DatabasePool
        let spool: SpoolDirectory
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw Self.storageError(error, "open queue")
        }
        // An embedded queue belongs to one process: a second relay on the same
        // file would deliver its messages twice.
        let lock = open(path + ".lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard lock >= 0, Self.lockExclusively(lock) else {
            if lock >= 0 { Glibc.close(lock) }
            throw RelayStorageError(.unreachable, "the queue \(path) is in use by another m365-relay process")
        }
        lockDescriptor = lock
        do {
            var configuration = Configuration()
            configuration.label = "m365-relay.queue"
            configuration.busyMode = .timeout(10)
            database = try DatabasePool(path: path, configuration: configuration)
            // GRDB sets synchronous=NORMAL when it enables WAL, which may lose the last
            // commits on power failure. The writer connection is the only one that commits.
            try database.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            try SQLiteQueueSchema.migrator.migrate(database)
            // This process holds the lock, so any lease in the file belongs to a
            // process that died mid-delivery: its messages are due again now.
            let released = try database.write { db in
                try db.execute(sql: "UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
                return db.changesCount
            }
            if released > 0 {
                logger.notice("Released leases of an earlier process", metadata: ["messages": "\(released)"])
            }
            spool = try SpoolDirectory(path: spoolDirectory ?? parent + "/spool")
        } catch {
            Glibc.close(lock)
            throw Self.storageError(error, "open queue")
        }
        let io = BlockingIOPool(threadCount: 8, name: "queue-fsync")
        self.database = database
        self.spool = spool
        self.io = io
        self.logger = logger
        self.committer = GroupCommitter { batch in
            await Self.insertBatch(batch, database: database, spool: spool, io: io)
        }
        let keepBodies = max(0, keepBodies)
        self.attemptCommitter = GroupCommitter { batch in
            await Self.applyAttemptBatch(batch, database: database, spool: spool, keepBodies: keepBodies, at: now())
        }
        do {
            try removeUnacknowledgedContent()
        } catch {
            // deinit closes what was opened.
            throw Self.storageError(error, "recover spool")
        }
    }

    deinit {
        close()
    }

    /// `flock` without waiting, tried a few times over half a second: a child
    /// process forked meanwhile holds a copy of a just-closed lock until it
    /// execs (O_CLOEXEC closes it only then), which must not look like a
    /// second relay. A relay that really runs holds it throughout.
    private static func lockExclusively(_ descriptor: Int32) -> Bool {
        for attempt in 0..<10 {
            if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return true }
            guard errno == EWOULDBLOCK || errno == EINTR, attempt < 9 else { return false }
            usleep(50_000)
        }
        return false
    }

    /// Stops the I/O threads and closes the database. Calls after this fail.
    public func close() {
        let wasOpen = isClosed.withLock { isClosed in
            defer { isClosed = true }
            return !isClosed
        }
        guard wasOpen else { return }
        io.shutdown()
        do {
            try database.close()
        } catch {
            logger.warning("queue database still in use at close", metadata: ["error": "\(error)"])
        }
        Glibc.close(lockDescriptor)
    }

    // MARK: Ingress

    public func makeWriter(id: RelayQueueID) throws -> any RelayMessageWriter {
        try spool.makeWriter(id: id, inlineLimit: inlineContentLimit)
    }

    public func commit(_ writer: any RelayMessageWriter, envelope: RelayEnvelope, now: Date) async throws -> RelayQueuedMessage {
        guard let writer = writer as? SpoolWriter, writer.directory == spool.path else {
            throw RelayStorageError(.io, "the writer does not belong to this store")
        }
        let (content, size) = try writer.handOver()
        let message = RelayQueuedMessage(
            id: writer.id, envelope: envelope,
            recipients: envelope.recipients.map { RelayRecipient(address: $0) },
            state: .queued, size: size, receivedAt: now, nextAttemptAt: now, attempts: 0, lastError: nil)
        do {
            switch content {
            case .file(let descriptor):
                try await synchronizeAndClose(descriptor)
                try await committer.submit(PendingInsert(message: message, inlineContent: nil))
            case .inline(let bytes):
                try await committer.submit(PendingInsert(message: message, inlineContent: bytes))
            }
            return message
        } catch {
            // Not acknowledged, so nothing may remain: the row was not written, remove the file.
            spool.remove(id: message.id)
            logger.error("queue commit failed; message discarded", metadata: ["queue_id": "\(message.id)", "error": "\(error)"])
            throw Self.storageError(error, "commit")
        }
    }

    public func enqueue(id: RelayQueueID, content: ByteBuffer, envelope: RelayEnvelope, now: Date) async throws -> RelayQueuedMessage {
        let writer = try makeWriter(id: id)
        do {
            try writer.write(content)
        } catch {
            writer.abort()
            throw error
        }
        return try await commit(writer, envelope: envelope, now: now)
    }

    // MARK: Delivery

    public func lease(owner: String, now: Date, limit: Int, leaseDuration: TimeInterval, routes: Set<String>?) async throws -> [RelayQueuedMessage] {
        guard limit > 0 else { return [] }
        if let routes, routes.isEmpty { return [] }
        let now = now.timeIntervalSince1970
        let leaseUntil = now + leaseDuration
        return try await withStorageErrors("lease") {
            try await database.write { db in
                var sql = """
                    \(Self.selectMessages)
                    WHERE state = 'queued' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
                    """
                var arguments: StatementArguments = [now, now]
                if let routes {
                    sql += " AND route IN (\(databaseQuestionMarks(count: routes.count)))"
                    arguments += StatementArguments(routes.sorted())
                }
                sql += " ORDER BY next_attempt_at, id LIMIT ?"
                arguments += [limit]
                // Cached: the text is the same for the same set of routes, and this runs for every batch.
                let rows = try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
                let takeLease = try db.cachedStatement(sql: "UPDATE messages SET lease_owner = ?, lease_until = ? WHERE id = ?")
                for row in rows {
                    try takeLease.execute(arguments: [owner, leaseUntil, row["id"] as String])
                }
                return try Self.decodeMessages(rows, db)
            }
        }
    }

    public func openContent(id: RelayQueueID) throws -> any RelayContentReader {
        let inline = try Self.withStorageErrorsSync("read content") {
            try database.read { db in
                try Data.fetchOne(db, sql: "SELECT data FROM contents WHERE message_id = ?", arguments: [id.rawValue])
            }
        }
        if let inline { return InlineContentReader(ByteBuffer(bytes: inline)) }
        return try spool.openReader(id: id)
    }

    public func recordAttempt(id: RelayQueueID, owner: String, result: RelayAttemptResult) async throws {
        try await withStorageErrors("record attempt") {
            try await attemptCommitter.submit(PendingAttempt(id: id, owner: owner, change: .attempt(result)))
        }
    }

    public func postpone(id: RelayQueueID, owner: String, until: Date, route: String?) async throws {
        try await withStorageErrors("postpone") {
            try await attemptCommitter.submit(PendingAttempt(id: id, owner: owner, change: .postpone(until: until, route: route)))
        }
    }

    /// One transaction for every attempt recorded meanwhile; each in its own
    /// savepoint, so that one lost lease does not undo the others.
    private static func applyAttemptBatch(
        _ batch: [PendingAttempt], database: DatabasePool, spool: SpoolDirectory, keepBodies: TimeInterval, at now: Date
    ) async -> [Result<Void, any Error>] {
        // Each success tells whether the message's content is to be removed.
        let outcomes: [Result<Bool, any Error>]
        do {
            outcomes = try await database.write { db in
                batch.map { pending in
                    var removesContent = false
                    do {
                        try inCachedSavepoint(db) {
                            switch pending.change {
                            case .attempt(let result):
                                let finished = try applyAttempt(id: pending.id, owner: pending.owner, result: result, keepBodies: keepBodies, db)
                                removesContent = finished && keepBodies == 0
                            case .postpone(let until, let route):
                                try applyPostponement(id: pending.id, owner: pending.owner, until: until, route: route, at: now, db)
                            }
                            if removesContent {
                                try db.cachedStatement(sql: "DELETE FROM contents WHERE message_id = ?").execute(arguments: [pending.id.rawValue])
                            }
                        }
                        return .success(removesContent)
                    } catch {
                        return .failure(error)
                    }
                }
            }
        } catch {
            return batch.map { _ in .failure(error) }
        }
        // After the commit: a crash before this leaves a file that the next open removes.
        for (pending, outcome) in zip(batch, outcomes) {
            if case .success(true) = outcome { spool.remove(id: pending.id) }
        }
        return outcomes.map { $0.map { _ in () } }
    }

    /// `body` inside a savepoint, undone if it throws. GRDB's `inSavepoint`
    /// compiles its SQL on every call, which showed in profiles once per attempt.
    private static func inCachedSavepoint(_ db: Database, _ body: () throws -> Void) throws {
        try db.cachedStatement(sql: "SAVEPOINT attempt").execute()
        do {
            try body()
        } catch {
            try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT attempt").execute()
            try db.cachedStatement(sql: "RELEASE SAVEPOINT attempt").execute()
            throw error
        }
        try db.cachedStatement(sql: "RELEASE SAVEPOINT attempt").execute()
    }

    public func nextDueDate() async throws -> Date? {
        try await withStorageErrors("next due date") {
            try await database.read { db in
                // A leased message is not due again before its lease expires.
                try Double.fetchOne(db, sql: """
                    SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, next_attempt_at)))
                    FROM messages WHERE state = 'queued'
                    """)
            }
        }.map(Date.init(timeIntervalSince1970:))
    }

    // MARK: Inspection

    public func message(id: RelayQueueID) async throws -> RelayQueuedMessage? {
        try await withStorageErrors("read message") {
            try await database.read { db in
                let rows = try Row.fetchAll(db, sql: "\(Self.selectMessages) WHERE id = ?", arguments: [id.rawValue])
                return try Self.decodeMessages(rows, db).first
            }
        }
    }

    /// Number of messages in each state; every state is present, zero if empty.
    public func counts() async throws -> [RelayMessageState: Int] {
        let stored = try await withStorageErrors("count messages") {
            try await database.read { db in
                try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS count FROM messages GROUP BY state")
                    .map { (state: $0["state"] as String, count: $0["count"] as Int) }
            }
        }
        var counts = Dictionary(uniqueKeysWithValues: RelayMessageState.allCases.map { ($0, 0) })
        for entry in stored {
            guard let state = RelayMessageState(rawValue: entry.state) else { continue }
            counts[state] = entry.count
        }
        return counts
    }

    /// The most recently received messages, optionally only those in `state`.
    public func list(state: RelayMessageState?, limit: Int) async throws -> [RelayQueuedMessage] {
        guard limit > 0 else { return [] }
        return try await withStorageErrors("list messages") {
            try await database.read { db in
                let rows: [Row]
                if let state {
                    rows = try Row.fetchAll(
                        db, sql: "\(Self.selectMessages) WHERE state = ? ORDER BY received_at DESC, id DESC LIMIT ?",
                        arguments: [state.rawValue, limit])
                } else {
                    rows = try Row.fetchAll(
                        db, sql: "\(Self.selectMessages) ORDER BY received_at DESC, id DESC LIMIT ?",
                        arguments: [limit])
                }
                return try Self.decodeMessages(rows, db)
            }
        }
    }

    /// The writer connection's `PRAGMA synchronous` (2 is FULL), so tests can pin durability.
    func writerSynchronousSetting() async throws -> Int {
        try await database.writeWithoutTransaction { db in
            try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
        }
    }

    // MARK: Commit internals

    private func synchronizeAndClose(_ descriptor: Int32) async throws {
        do {
            try await io.run {
                defer { POSIXFile.close(descriptor) }
                try POSIXFile.synchronize(descriptor, what: "spool file")
            }
        } catch is BlockingIOPool.ShutDownError {
            // The job never ran, so the descriptor is still open.
            POSIXFile.close(descriptor)
            throw RelayStorageError(.io, "the store is closed")
        }
    }

    /// One group commit: sync the spool directory once for every file in the
    /// batch, then insert every row in one transaction.
    private static func insertBatch(
        _ batch: [PendingInsert], database: DatabasePool, spool: SpoolDirectory, io: BlockingIOPool
    ) async -> [Result<Void, any Error>] {
        // Only files need their directory entries synced; inline content rides in the transaction.
        if batch.contains(where: { $0.inlineContent == nil }) {
            do {
                try await io.run { try spool.synchronize() }
            } catch {
                return batch.map { _ in .failure(error is BlockingIOPool.ShutDownError ? RelayStorageError(.io, "the store is closed") : error) }
            }
        }
        do {
            try await database.write { db in
                for message in batch { try insert(message, db) }
            }
            return batch.map { _ in .success(()) }
        } catch {
            guard batch.count > 1 else { return [.failure(error)] }
            // One bad row (say, a reused id) must not fail its neighbours: retry each alone.
            var results: [Result<Void, any Error>] = []
            for message in batch {
                do {
                    try await database.write { db in try insert(message, db) }
                    results.append(.success(()))
                } catch {
                    results.append(.failure(error))
                }
            }
            return results
        }
    }

    private static func insert(_ pending: PendingInsert, _ db: Database) throws {
        let message = pending.message
        if let content = pending.inlineContent {
            try db.cachedStatement(sql: "INSERT INTO contents (message_id, data) VALUES (?, ?)")
                .execute(arguments: [message.id.rawValue, Data(content.readableBytesView)])
        }
        let envelope = String(decoding: try JSONEncoder.queue.encode(message.envelope), as: UTF8.self)
        try db.cachedStatement(sql: """
            INSERT INTO messages (
                id, state, sender, route, envelope, size, received_at, next_attempt_at, attempts,
                client_name, client_address, header_message_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
            """).execute(arguments: [
                message.id.rawValue, message.state.rawValue, message.envelope.sender, message.envelope.route, envelope,
                message.size, message.receivedAt.timeIntervalSince1970, message.nextAttemptAt.timeIntervalSince1970,
                message.envelope.clientName, message.envelope.clientAddress, message.envelope.messageID,
            ])
        let insertRecipient = try db.cachedStatement(sql: """
            INSERT INTO recipients (message_id, position, address, status) VALUES (?, ?, ?, ?)
            """)
        for (position, recipient) in message.recipients.enumerated() {
            try insertRecipient.execute(arguments: [message.id.rawValue, position, recipient.address, recipient.status.rawValue])
        }
    }

    // MARK: Attempt internals

    private static func applyPostponement(id: RelayQueueID, owner: String, until: Date, route: String?, at now: Date, _ db: Database) throws {
        // Cached statements, as in applyAttempt: a busy mailbox postpones every message again at each recheck.
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT lease_owner, route FROM messages WHERE id = ?"), arguments: [id.rawValue]) else {
            throw RelayStorageError(.notFound, "no message \(id)")
        }
        guard (row["lease_owner"] as String?) == owner else {
            throw RelayStorageError(.leaseLost, "message \(id) is no longer leased by this worker")
        }
        if let route {
            try moveRoute(id: id, to: route, db)
            let previous: String = row["route"]
            try insertEvent(
                RelayTraceEvent(
                    at: now, kind: .rerouted,
                    summary: "Moved from route \(previous) to \(route); next attempt at \(traceTimestamp(until))",
                    details: ["from_route": previous, "route": route, "next_attempt_at": traceTimestamp(until)]),
                for: id, db)
        }
        try db.cachedStatement(sql: "UPDATE messages SET next_attempt_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?")
            .execute(arguments: [until.timeIntervalSince1970, id.rawValue])
    }

    /// The message's route, in its row and in its stored envelope.
    private static func moveRoute(id: RelayQueueID, to route: String, _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE messages SET route = ?, envelope = json_set(envelope, '$.route', ?) WHERE id = ?")
            .execute(arguments: [route, route, id.rawValue])
    }

    /// Applies one attempt inside the caller's transaction; returns whether the message is finished.
    private static func applyAttempt(
        id: RelayQueueID, owner: String, result: RelayAttemptResult, keepBodies: TimeInterval, _ db: Database
    ) throws -> Bool {
        // Cached statements: this runs once per delivery attempt, and compiling SQL showed in profiles.
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT state, lease_owner FROM messages WHERE id = ?"), arguments: [id.rawValue]) else {
            throw RelayStorageError(.notFound, "no message \(id)")
        }
        // An expired lease still counts as held until another owner takes it.
        guard (row["lease_owner"] as String?) == owner else {
            throw RelayStorageError(.leaseLost, "message \(id) is no longer leased by this worker")
        }

        // Only pending recipients change status: delivered and failed are final,
        // so a late or repeated update can never make a recipient pending again.
        let updateRecipient = try db.cachedStatement(sql: """
            UPDATE recipients SET status = ?, last_reply = COALESCE(?, last_reply)
            WHERE message_id = ? AND address = ? AND status = 'pending'
            """)
        for update in result.recipientUpdates {
            try updateRecipient.execute(arguments: [update.status.rawValue, update.lastReply, id.rawValue, update.address])
        }

        var pending = try recipientCount(id: id, status: .pending, db)
        let isFinished: Bool
        switch result.disposition {
        case .finished:
            isFinished = true
        case .deferred:
            // Nothing left to try: deferring would only lease it again for nothing.
            isFinished = pending == 0
        }
        if isFinished && pending > 0 {
            // Finished with recipients undecided: they will never be tried again.
            try db.cachedStatement(sql: """
                UPDATE recipients SET status = 'failed', last_reply = COALESCE(last_reply, ?)
                WHERE message_id = ? AND status = 'pending'
                """).execute(arguments: [result.summary, id.rawValue])
            pending = 0
        }
        let failed = try recipientCount(id: id, status: .failed, db)

        let state: RelayMessageState
        var nextAttemptAt: Double?
        if isFinished {
            state = failed == 0 ? .delivered : .failed
        } else {
            // Held by an administrator while this attempt ran: it waits for a release, not for the retry time.
            state = (row["state"] as String) == RelayMessageState.held.rawValue ? .held : .queued
            if case .deferred(let until) = result.disposition { nextAttemptAt = until.timeIntervalSince1970 }
        }
        let reroute = isFinished ? nil : result.reroute
        let outcome = isFinished ? state.rawValue : (reroute == nil ? "deferred" : "rerouted")
        let detail = try result.detail.map { String(decoding: try JSONEncoder.queue.encode($0), as: UTF8.self) }
        try db.cachedStatement(sql: """
            INSERT INTO attempts (message_id, started_at, finished_at, route, summary, outcome, detail, next_attempt_at, rerouted_to)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                id.rawValue, result.startedAt.timeIntervalSince1970, result.finishedAt.timeIntervalSince1970,
                result.route, result.summary, outcome, detail, nextAttemptAt, reroute,
            ])

        let finishedAt = isFinished ? result.finishedAt.timeIntervalSince1970 : nil
        let contentKeptUntil = finishedAt.flatMap { keepBodies > 0 ? $0 + keepBodies : nil }
        try db.cachedStatement(sql: """
            UPDATE messages SET state = ?, next_attempt_at = COALESCE(?, next_attempt_at),
                attempts = attempts + 1, last_error = ?, lease_owner = NULL, lease_until = NULL,
                finished_at = ?, content_kept_until = ?
            WHERE id = ?
            """).execute(arguments: [
                state.rawValue, nextAttemptAt, pending + failed > 0 ? result.summary : nil, finishedAt, contentKeptUntil, id.rawValue,
            ])
        if let route = reroute {
            let delivered = try recipientCount(id: id, status: .delivered, db)
            guard delivered == 0 else {
                throw RelayStorageError(.io, "message \(id) has delivered recipients and cannot change route")
            }
            try moveRoute(id: id, to: route, db)
        }
        return isFinished
    }

    private static func recipientCount(id: RelayQueueID, status: RelayRecipientStatus, _ db: Database) throws -> Int {
        try Int.fetchOne(
            db.cachedStatement(sql: "SELECT COUNT(*) FROM recipients WHERE message_id = ? AND status = ?"),
            arguments: [id.rawValue, status.rawValue]) ?? 0
    }

    // MARK: Recovery

    /// Removes content that no queued message owns: files from commits that
    /// crashed before their row (never acknowledged), and files of finished
    /// messages whose removal a crash interrupted. Content kept by
    /// `trace.keep_bodies` is owned until pruning removes it. Rows and leases
    /// are left alone; expired leases simply let the messages be leased again.
    private func removeUnacknowledgedContent() throws {
        let stored = try spool.storedIDs()
        let owned = try database.read { db in
            try String.fetchSet(db, sql: "SELECT id FROM messages WHERE state IN ('queued', 'held')")
        }
        let candidates = stored.filter { !owned.contains($0.rawValue) }
        // Looked up by id rather than scanning every finished message.
        let kept = try database.read { db in
            var kept: Set<String> = []
            for chunk in candidates.map(\.rawValue).chunked(by: Self.maximumArgumentsPerStatement) {
                kept.formUnion(try String.fetchSet(
                    db, sql: "SELECT id FROM messages WHERE id IN (\(databaseQuestionMarks(count: chunk.count))) AND content_kept_until IS NOT NULL",
                    arguments: StatementArguments(chunk)))
            }
            return kept
        }
        var removed = 0
        for id in candidates where !kept.contains(id.rawValue) {
            if spool.remove(id: id) { removed += 1 }
        }
        if removed > 0 {
            logger.notice("removed spool files of unacknowledged or finished messages", metadata: ["count": "\(removed)"])
        }
        let missing = owned.subtracting(stored.map(\.rawValue)).count
        if missing > 0 {
            logger.error("queued messages have no content file", metadata: ["count": "\(missing)"])
        }
    }

    // MARK: Rows

    static let selectMessages = """
        SELECT id, state, envelope, size, received_at, next_attempt_at, attempts, last_error FROM messages
        """

    /// SQLite allows 32766 parameters per statement; stay far below.
    static let maximumArgumentsPerStatement = 500

    /// Turns message rows into messages, with their recipients in envelope order.
    static func decodeMessages(_ rows: [Row], _ db: Database) throws -> [RelayQueuedMessage] {
        guard !rows.isEmpty else { return [] }
        let recipients = try recipients(of: rows.map { $0["id"] as String }, db)
        let decoder = JSONDecoder()
        return try rows.map { row in
            let id: String = row["id"]
            let stateText: String = row["state"]
            guard let state = RelayMessageState(rawValue: stateText) else {
                throw RelayStorageError(.io, "unknown message state \(stateText)")
            }
            let envelopeJSON: String = row["envelope"]
            return RelayQueuedMessage(
                id: RelayQueueID(rawValue: id),
                envelope: try decoder.decode(RelayEnvelope.self, from: Data(envelopeJSON.utf8)),
                recipients: recipients[id] ?? [],
                state: state,
                size: row["size"],
                receivedAt: Date(timeIntervalSince1970: row["received_at"]),
                nextAttemptAt: Date(timeIntervalSince1970: row["next_attempt_at"]),
                attempts: row["attempts"],
                lastError: row["last_error"])
        }
    }

    /// The recipients of each message in `ids`, in envelope order.
    static func recipients(of ids: [String], _ db: Database) throws -> [String: [RelayRecipient]] {
        var recipients: [String: [RelayRecipient]] = [:]
        for chunk in ids.chunked(by: maximumArgumentsPerStatement) {
            let recipientRows = try Row.fetchAll(
                db,
                sql: """
                    SELECT message_id, address, status, last_reply FROM recipients
                    WHERE message_id IN (\(databaseQuestionMarks(count: chunk.count)))
                    ORDER BY message_id, position
                    """,
                arguments: StatementArguments(chunk))
            for row in recipientRows {
                let status: String = row["status"]
                guard let status = RelayRecipientStatus(rawValue: status) else {
                    throw RelayStorageError(.io, "unknown recipient status \(status)")
                }
                recipients[row["message_id"], default: []].append(
                    RelayRecipient(address: row["address"], status: status, lastReply: row["last_reply"]))
            }
        }
        return recipients
    }

    // MARK: Errors

    func withStorageErrors<Result>(_ operation: String, _ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch {
            throw Self.storageError(error, operation)
        }
    }

    private static func withStorageErrorsSync<Result>(_ operation: String, _ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch {
            throw storageError(error, operation)
        }
    }

    /// Storage errors pass through; anything else (SQLite, file system) becomes `.io`.
    /// GRDB's descriptions name the SQL but not its arguments, so no addresses leak.
    static func storageError(_ error: any Error, _ operation: String) -> RelayStorageError {
        if let error = error as? RelayStorageError { return error }
        return RelayStorageError(.io, "\(operation): \(error)")
    }
}

extension JSONEncoder {
    /// Sorted keys keep stored envelopes byte-stable, which makes them easy to diff and inspect.
    /// One instance: it is used per commit, attempt and event, and encoding does not change it.
    static let queue: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
}

extension Array {
    func chunked(by size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
