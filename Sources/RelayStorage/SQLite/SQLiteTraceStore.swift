import Foundation
import GRDB
import RelayCore

// The message trace, read from the queue's own rows: the arrival from the
// message row and its envelope, each attempt from `attempts`, and only what
// has no row of its own (holds, releases, retries, deletions, bounces,
// reroutes by postponement) from `events`. So a commit writes nothing extra.

extension SQLiteQueueStore: RelayTraceStore {
    // MARK: Search

    public func searchTrace(_ query: RelayTraceQuery) async throws -> RelayTracePage {
        let limit = min(max(query.limit, 1), RelayTraceQuery.maximumLimit)
        let cursor = try query.cursor.map(TraceCursor.init(encoded:))
        var conditions: [String] = []
        var arguments = StatementArguments()
        // SQLite's own lower() and LIKE fold ASCII only; addresses may be UTF-8 (SMTPUTF8).
        if let sender = query.sender, !sender.isEmpty {
            conditions.append("instr(swiftLowercaseString(m.sender), ?) > 0")
            arguments += [sender.lowercased()]
        }
        if let recipient = query.recipient, !recipient.isEmpty {
            conditions.append("""
                EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND instr(swiftLowercaseString(r.address), ?) > 0)
                """)
            arguments += [recipient.lowercased()]
        }
        if let status = query.status {
            conditions.append(Self.condition(for: status))
        }
        if let since = query.since {
            conditions.append("m.received_at >= ?")
            arguments += [since.timeIntervalSince1970]
        }
        if let until = query.until {
            conditions.append("m.received_at < ?")
            arguments += [until.timeIntervalSince1970]
        }
        if let client = query.client {
            conditions.append("m.client_name = ?")
            arguments += [client]
        }
        if let route = query.route {
            conditions.append("m.route = ?")
            arguments += [route]
        }
        if let messageID = query.messageID {
            // Stored as the header has it, normally `<local@domain>`; either spelling finds it.
            let bare = Self.withoutAngleBrackets(messageID.trimmingCharacters(in: .whitespaces))
            conditions.append("m.header_message_id IN (?, ?)")
            arguments += [bare, "<\(bare)>"]
        }
        if let queueID = query.queueID {
            conditions.append("m.id = ?")
            arguments += [queueID]
        }
        if let cursor {
            conditions.append("(m.received_at, m.id) < (?, ?)")
            arguments += [cursor.receivedAt, cursor.id]
        }
        var sql = Self.selectTraceSummaries
        if !conditions.isEmpty {
            sql += " WHERE " + conditions.joined(separator: " AND ")
        }
        // One more than a page tells whether another page follows.
        sql += " ORDER BY m.received_at DESC, m.id DESC LIMIT ?"
        arguments += [limit + 1]
        let finalSQL = sql
        let finalArguments = arguments
        return try await withStorageErrors("search trace") {
            try await database.read { db in
                let rows = try Row.fetchAll(db, sql: finalSQL, arguments: finalArguments)
                let page = Array(rows.prefix(limit))
                let summaries = try Self.traceSummaries(page, db)
                var nextCursor: String?
                if rows.count > limit, let last = page.last {
                    nextCursor = try TraceCursor(receivedAt: last["received_at"], id: last["id"]).encoded()
                }
                return RelayTracePage(messages: summaries, nextCursor: nextCursor)
            }
        }
    }

    // MARK: Timeline

    public func timeline(id: RelayQueueID) async throws -> RelayTraceTimeline? {
        try await withStorageErrors("read trace timeline") {
            try await database.read { db in
                guard
                    let row = try Row.fetchOne(
                        db, sql: "\(Self.selectTraceSummaries) WHERE m.id = ?", arguments: [id.rawValue])
                else { return nil }
                guard let summary = try Self.traceSummaries([row], db).first else { return nil }
                let envelopeJSON: String = row["envelope"]
                let envelope = try JSONDecoder().decode(RelayEnvelope.self, from: Data(envelopeJSON.utf8))

                // (time, order of appearance, event): ties keep the order below, so an
                // attempt comes before its outcome and the arrival before everything.
                var events: [(at: Date, order: Int, event: RelayTraceEvent)] = []
                func add(_ event: RelayTraceEvent) {
                    events.append((event.at, events.count, event))
                }
                add(Self.receivedEvent(summary: summary, envelope: envelope))
                let attempts = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT started_at, finished_at, route, summary, outcome, detail, next_attempt_at, rerouted_to
                        FROM attempts WHERE message_id = ? ORDER BY started_at, id
                        """,
                    arguments: [id.rawValue])
                for attempt in attempts {
                    for event in try Self.attemptEvents(attempt) { add(event) }
                }
                let stored = try Row.fetchAll(
                    db, sql: "SELECT at, kind, summary, details FROM events WHERE message_id = ? ORDER BY at, id",
                    arguments: [id.rawValue])
                for row in stored {
                    add(try Self.storedEvent(row))
                }
                events.sort { ($0.at, $0.order) < ($1.at, $1.order) }
                return RelayTraceTimeline(
                    message: summary, envelope: envelope, events: events.map(\.event),
                    hasContent: Self.hasContent(state: row["state"], contentKeptUntil: row["content_kept_until"]))
            }
        }
    }

    // MARK: Flow and statistics

    public func flow(since: Date, until: Date) async throws -> [RelayFlowHour] {
        let hour: Double = 3600
        // Hours starting at or after `since`: the first whole hour from there.
        let first = (since.timeIntervalSince1970 / hour).rounded(.up) * hour
        let end = until.timeIntervalSince1970
        guard first < end else { return [] }
        let hourCount = Int(((end - first) / hour).rounded(.up))
        guard hourCount <= Self.maximumFlowHours else {
            throw RelayStorageError(
                .invalidRequest, "mail flow covers at most \(Self.maximumFlowHours / 24) days; \(hourCount) hours were asked for")
        }
        let rows = try await withStorageErrors("read mail flow") {
            try await database.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT CAST((finished_at - ?) / 3600 AS INTEGER) AS bucket, outcome, COUNT(*) AS count
                        FROM attempts WHERE finished_at >= ? AND finished_at < ?
                        GROUP BY bucket, outcome
                        """,
                    arguments: [first, first, first + Double(hourCount) * hour])
            }
        }
        var hours = (0..<hourCount).map {
            RelayFlowHour(start: Date(timeIntervalSince1970: first + Double($0) * hour), delivered: 0, deferred: 0, failed: 0)
        }
        for row in rows {
            let bucket: Int = row["bucket"]
            let count: Int = row["count"]
            guard hours.indices.contains(bucket) else { continue }
            switch row["outcome"] as String {
            case "delivered": hours[bucket].delivered += count
            case "failed": hours[bucket].failed += count
            // A reroute is a deferral to another route.
            default: hours[bucket].deferred += count
            }
        }
        return hours
    }

    public func queueStatistics() async throws -> RelayQueueStatistics {
        try await withStorageErrors("read queue statistics") {
            try await database.read { db in
                var counts = Dictionary(uniqueKeysWithValues: RelayTraceStatus.allCases.map { ($0, 0) })
                // The state index answers this; only queued and failed rows need a closer look.
                for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS count FROM messages GROUP BY state") {
                    let state: String = row["state"]
                    if let status = RelayTraceStatus(rawValue: state) { counts[status] = row["count"] }
                }
                let deferred = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM messages WHERE state = 'queued' AND attempts > 0") ?? 0
                counts[.queued, default: 0] -= deferred
                counts[.deferred] = deferred
                let bounced = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM messages WHERE state = 'failed' AND bounced = 1") ?? 0
                counts[.failed, default: 0] -= bounced
                counts[.bounced] = bounced
                let oldest = try Double.fetchOne(db, sql: "SELECT MIN(received_at) FROM messages WHERE state = 'queued'")
                return RelayQueueStatistics(counts: counts, oldestQueuedAt: oldest.map(Date.init(timeIntervalSince1970:)))
            }
        }
    }

    // MARK: Actions

    public func apply(_ action: RelayQueueAction, to id: RelayQueueID, by: String, now: Date) async throws -> RelayTraceSummary {
        let summary: RelayTraceSummary
        do {
            summary = try await database.write { db in
                try Self.apply(action, to: id, by: by, now: now, db)
            }
        } catch let error as RelayQueueActionError {
            throw error
        } catch {
            throw Self.storageError(error, "\(action.rawValue) \(id)")
        }
        if action == .delete {
            // After the commit, like a finished message: a crash before this leaves a file the next open removes.
            spool.remove(id: id)
        }
        return summary
    }

    private static func apply(_ action: RelayQueueAction, to id: RelayQueueID, by: String, now: Date, _ db: Database) throws -> RelayTraceSummary {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT state, attempts, bounced, lease_owner, lease_until FROM messages WHERE id = ?", arguments: [id.rawValue])
        else {
            throw RelayQueueActionError.notFound("no message \(id) in the queue or the trace")
        }
        let status = try traceStatus(state: row["state"], attempts: row["attempts"], bounced: row["bounced"])
        let leaseUntil: Double? = row["lease_until"]
        let isBeingDelivered = (row["lease_owner"] as String?) != nil && (leaseUntil ?? 0) > now.timeIntervalSince1970
        let nowSeconds = now.timeIntervalSince1970
        let event: RelayTraceEvent
        switch action {
        case .retry:
            guard action.applicableStatuses.contains(status) else {
                throw RelayQueueActionError.notApplicable("message \(id) is \(status.rawValue); only a queued or deferred message can be retried")
            }
            try db.execute(sql: "UPDATE messages SET next_attempt_at = ? WHERE id = ?", arguments: [nowSeconds, id.rawValue])
            event = RelayTraceEvent(
                at: now, kind: .retried,
                summary: isBeingDelivered ? "Retry asked for by \(by); an attempt was already under way" : "Retry asked for by \(by)",
                details: ["by": by])
        case .hold:
            guard action.applicableStatuses.contains(status) else {
                throw RelayQueueActionError.notApplicable("message \(id) is \(status.rawValue); only a queued or deferred message can be held")
            }
            // While leased, the lease stays: the running attempt records as usual, and
            // recordAttempt leaves a held message held unless the attempt finishes it.
            try db.execute(sql: "UPDATE messages SET state = 'held' WHERE id = ?", arguments: [id.rawValue])
            event = RelayTraceEvent(
                at: now, kind: .held,
                summary: isBeingDelivered ? "Held by \(by), after the attempt under way" : "Held by \(by)",
                details: ["by": by])
        case .release:
            guard action.applicableStatuses.contains(status) else {
                throw RelayQueueActionError.notApplicable("message \(id) is \(status.rawValue); only a held message can be released")
            }
            try db.execute(
                sql: "UPDATE messages SET state = 'queued', next_attempt_at = ? WHERE id = ?", arguments: [nowSeconds, id.rawValue])
            event = RelayTraceEvent(at: now, kind: .released, summary: "Released by \(by)", details: ["by": by])
        case .delete:
            guard action.applicableStatuses.contains(status) else {
                throw RelayQueueActionError.notApplicable(
                    "message \(id) is \(status.rawValue); only a queued, deferred or held message can be deleted")
            }
            guard !isBeingDelivered else {
                throw RelayQueueActionError.busy("message \(id) is being delivered right now; try again when the attempt is over")
            }
            // An expired lease is cleared too, so a late attempt by its worker is refused as a lost lease.
            try db.execute(sql: "DELETE FROM contents WHERE message_id = ?", arguments: [id.rawValue])
            try db.execute(
                sql: """
                    UPDATE messages SET state = 'deleted', finished_at = ?, content_kept_until = NULL,
                        lease_owner = NULL, lease_until = NULL
                    WHERE id = ?
                    """,
                arguments: [nowSeconds, id.rawValue])
            event = RelayTraceEvent(at: now, kind: .deleted, summary: "Deleted by \(by)", details: ["by": by])
        }
        try insertEvent(event, for: id, db)
        let rows = try Row.fetchAll(db, sql: "\(selectTraceSummaries) WHERE m.id = ?", arguments: [id.rawValue])
        guard let summary = try traceSummaries(rows, db).first else {
            throw RelayStorageError(.notFound, "message \(id) vanished during \(action.rawValue)")
        }
        return summary
    }

    public func recordEvent(_ event: RelayTraceEvent, for id: RelayQueueID) async throws {
        try await withStorageErrors("record trace event") {
            try await database.write { db in
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM messages WHERE id = ?", arguments: [id.rawValue]) != nil else {
                    throw RelayStorageError(.notFound, "no message \(id) for a \(event.kind.rawValue) event")
                }
                try Self.insertEvent(event, for: id, db)
                if event.kind == .bounced {
                    try db.execute(sql: "UPDATE messages SET bounced = 1 WHERE id = ?", arguments: [id.rawValue])
                }
            }
        }
    }

    // MARK: Pruning

    public func prune(before: Date, bodiesBefore: Date, batchSize: Int) async throws -> Int {
        let batchSize = max(1, batchSize)
        var removed = 0
        // Messages first: their kept content goes with them.
        while true {
            let ids = try await withStorageErrors("prune trace") {
                try await database.write { db in
                    let ids = try String.fetchAll(
                        db,
                        // `+state`: walk the finished_at index, not every delivered message by state.
                        sql: """
                            SELECT id FROM messages
                            WHERE finished_at IS NOT NULL AND finished_at < ? AND +state IN ('delivered', 'failed', 'deleted')
                            LIMIT ?
                            """,
                        arguments: [before.timeIntervalSince1970, batchSize])
                    for chunk in ids.chunked(by: Self.maximumArgumentsPerStatement) {
                        let marks = databaseQuestionMarks(count: chunk.count)
                        try db.execute(sql: "DELETE FROM contents WHERE message_id IN (\(marks))", arguments: StatementArguments(chunk))
                        // Recipients, attempts and events go by ON DELETE CASCADE.
                        try db.execute(sql: "DELETE FROM messages WHERE id IN (\(marks))", arguments: StatementArguments(chunk))
                    }
                    return ids
                }
            }
            for id in ids { spool.remove(id: RelayQueueID(rawValue: id)) }
            removed += ids.count
            guard ids.count == batchSize else { break }
            // Lets commits and attempts waiting for the writer in between.
            await Task.yield()
        }
        while true {
            let ids = try await withStorageErrors("prune kept content") {
                try await database.write { db in
                    let ids = try String.fetchAll(
                        db,
                        sql: """
                            SELECT id FROM messages
                            WHERE finished_at IS NOT NULL AND finished_at < ? AND content_kept_until IS NOT NULL
                            LIMIT ?
                            """,
                        arguments: [bodiesBefore.timeIntervalSince1970, batchSize])
                    for chunk in ids.chunked(by: Self.maximumArgumentsPerStatement) {
                        let marks = databaseQuestionMarks(count: chunk.count)
                        try db.execute(sql: "DELETE FROM contents WHERE message_id IN (\(marks))", arguments: StatementArguments(chunk))
                        try db.execute(
                            sql: "UPDATE messages SET content_kept_until = NULL WHERE id IN (\(marks))", arguments: StatementArguments(chunk))
                    }
                    return ids
                }
            }
            for id in ids { spool.remove(id: RelayQueueID(rawValue: id)) }
            guard ids.count == batchSize else { break }
            await Task.yield()
        }
        return removed
    }

    // MARK: Rows

    /// About 400 days of hours: more is a mistake, not a chart.
    static let maximumFlowHours = 24 * 400

    static let selectTraceSummaries = """
        SELECT m.id, m.state, m.sender, m.route, m.envelope, m.size, m.received_at, m.next_attempt_at, m.attempts,
            m.client_name, m.client_address, m.header_message_id, m.finished_at, m.bounced, m.content_kept_until,
            (SELECT a.summary FROM attempts a WHERE a.message_id = m.id ORDER BY a.started_at DESC, a.id DESC LIMIT 1) AS last_reply
        FROM messages m
        """

    /// The SQL condition of a derived status (see ``RelayTraceStatus``).
    static func condition(for status: RelayTraceStatus) -> String {
        switch status {
        case .queued: "m.state = 'queued' AND m.attempts = 0"
        case .deferred: "m.state = 'queued' AND m.attempts > 0"
        case .failed: "m.state = 'failed' AND m.bounced = 0"
        case .bounced: "m.state = 'failed' AND m.bounced = 1"
        case .delivered: "m.state = 'delivered'"
        case .held: "m.state = 'held'"
        case .deleted: "m.state = 'deleted'"
        }
    }

    static func traceStatus(state: String, attempts: Int, bounced: Bool) throws -> RelayTraceStatus {
        guard let state = RelayMessageState(rawValue: state) else {
            throw RelayStorageError(.io, "unknown message state \(state)")
        }
        switch state {
        case .queued: return attempts == 0 ? .queued : .deferred
        case .delivered: return .delivered
        case .failed: return bounced ? .bounced : .failed
        case .held: return .held
        case .deleted: return .deleted
        }
    }

    static func hasContent(state: String, contentKeptUntil: Double?) -> Bool {
        state == RelayMessageState.queued.rawValue || state == RelayMessageState.held.rawValue || contentKeptUntil != nil
    }

    static func traceSummaries(_ rows: [Row], _ db: Database) throws -> [RelayTraceSummary] {
        guard !rows.isEmpty else { return [] }
        let recipients = try recipients(of: rows.map { $0["id"] as String }, db)
        return try rows.map { row in
            let id: String = row["id"]
            let state: String = row["state"]
            let finishedAt: Double? = row["finished_at"]
            return RelayTraceSummary(
                id: id,
                status: try traceStatus(state: state, attempts: row["attempts"], bounced: row["bounced"]),
                sender: row["sender"],
                recipients: recipients[id] ?? [],
                client: row["client_name"],
                clientAddress: row["client_address"],
                route: row["route"],
                size: row["size"],
                messageID: row["header_message_id"],
                receivedAt: Date(timeIntervalSince1970: row["received_at"]),
                finishedAt: finishedAt.map(Date.init(timeIntervalSince1970:)),
                // Only a message waiting in the queue has a next attempt.
                nextAttemptAt: state == RelayMessageState.queued.rawValue ? Date(timeIntervalSince1970: row["next_attempt_at"]) : nil,
                attempts: row["attempts"],
                lastReply: row["last_reply"])
        }
    }

    static func insertEvent(_ event: RelayTraceEvent, for id: RelayQueueID, _ db: Database) throws {
        let details = String(decoding: try JSONEncoder.queue.encode(event.details), as: UTF8.self)
        try db.cachedStatement(sql: "INSERT INTO events (message_id, at, kind, summary, details) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [id.rawValue, event.at.timeIntervalSince1970, event.kind.rawValue, event.summary, details])
    }

    private static func storedEvent(_ row: Row) throws -> RelayTraceEvent {
        let kindText: String = row["kind"]
        guard let kind = RelayTraceEvent.Kind(rawValue: kindText) else {
            throw RelayStorageError(.io, "unknown trace event kind \(kindText)")
        }
        let detailsJSON: String = row["details"]
        return RelayTraceEvent(
            at: Date(timeIntervalSince1970: row["at"]), kind: kind, summary: row["summary"],
            details: try JSONDecoder().decode([String: String].self, from: Data(detailsJSON.utf8)))
    }

    private static func receivedEvent(summary: RelayTraceSummary, envelope: RelayEnvelope) -> RelayTraceEvent {
        var details: [String: String] = [
            "client": envelope.clientName,
            "client_address": envelope.clientAddress,
            "helo": envelope.heloName,
            "sender": envelope.sender,
            "recipient_count": "\(envelope.recipients.count)",
            "recipients": envelope.recipients.joined(separator: ", "),
            "size": "\(summary.size)",
        ]
        details["tls"] = envelope.tlsVersion
        details["auth_identity"] = envelope.authenticatedAs
        details["original_sender"] = envelope.originalSender
        details["message_id"] = envelope.messageID
        if let notes = envelope.policyNotes, !notes.isEmpty {
            details["policy"] = notes.joined(separator: "; ")
        }
        var line = "Received from \(envelope.clientName) [\(envelope.clientAddress)]"
        var session: [String] = []
        if let tls = envelope.tlsVersion { session.append(tls) }
        if let identity = envelope.authenticatedAs { session.append("as \(identity)") }
        if !session.isEmpty { line += " (\(session.joined(separator: ", ")))" }
        let count = envelope.recipients.count
        line += ": <\(envelope.sender)> to \(count) recipient\(count == 1 ? "" : "s"), \(summary.size) bytes"
        return RelayTraceEvent(at: summary.receivedAt, kind: .received, summary: line, details: details)
    }

    /// An attempt and its outcome, as two events.
    private static func attemptEvents(_ row: Row) throws -> [RelayTraceEvent] {
        let startedAt = Date(timeIntervalSince1970: row["started_at"])
        let finishedAt = Date(timeIntervalSince1970: row["finished_at"])
        let route: String = row["route"]
        let reply: String = row["summary"]
        let outcome: String = row["outcome"]
        let detail = try (row["detail"] as String?).map {
            try JSONDecoder().decode(RelayAttemptDetail.self, from: Data($0.utf8))
        }
        var details: [String: String] = [
            "route": route,
            "reply": reply,
            "outcome": outcome,
            "duration_ms": "\(Int((finishedAt.timeIntervalSince(startedAt) * 1000).rounded()))",
        ]
        details["transport"] = detail?.transport
        details["mailbox"] = detail?.sendingMailbox
        details["upstream_id"] = detail?.upstreamID
        details["reply_class"] = detail?.replyClass
        var line = "Route \(route)"
        if let transport = detail?.transport { line += " via \(transport)" }
        if let mailbox = detail?.sendingMailbox { line += " as \(mailbox)" }
        line += ": \(reply)"
        let attempt = RelayTraceEvent(at: startedAt, kind: .attempt, summary: line, details: details)

        let nextAttemptAt = (row["next_attempt_at"] as Double?).map { traceTimestamp(Date(timeIntervalSince1970: $0)) }
        var outcomeDetails: [String: String] = ["route": route]
        outcomeDetails["next_attempt_at"] = nextAttemptAt
        outcomeDetails["upstream_id"] = detail?.upstreamID
        let result: RelayTraceEvent
        switch outcome {
        case "delivered":
            let upstream = detail?.upstreamID.map { " (upstream id \($0))" } ?? ""
            result = RelayTraceEvent(at: finishedAt, kind: .delivered, summary: "Delivered by route \(route)\(upstream)", details: outcomeDetails)
        case "failed":
            result = RelayTraceEvent(at: finishedAt, kind: .failed, summary: "Failed for good: \(reply)", details: outcomeDetails)
        case "rerouted":
            let target: String = row["rerouted_to"] ?? "another route"
            outcomeDetails["from_route"] = route
            outcomeDetails["route"] = target
            let when = nextAttemptAt.map { "; next attempt at \($0)" } ?? ""
            result = RelayTraceEvent(
                at: finishedAt, kind: .rerouted, summary: "Moved from route \(route) to \(target)\(when)", details: outcomeDetails)
        default:
            let when = nextAttemptAt.map { "next attempt at \($0)" } ?? "next attempt when due"
            result = RelayTraceEvent(at: finishedAt, kind: .deferred, summary: "Deferred; \(when)", details: outcomeDetails)
        }
        return [attempt, result]
    }

    private static func withoutAngleBrackets(_ text: String) -> String {
        guard text.hasPrefix("<"), text.hasSuffix(">"), text.count >= 2 else { return text }
        return String(text.dropFirst().dropLast())
    }
}

/// Timestamps in trace texts: ISO 8601 in UTC, like the API's dates.
func traceTimestamp(_ date: Date) -> String {
    date.ISO8601Format()
}

/// Where a page of the trace ended: the last message's arrival and id, the
/// keys of the newest-first order. Opaque to callers (base64url of JSON).
struct TraceCursor: Codable, Hashable {
    var receivedAt: Double
    var id: String

    init(receivedAt: Double, id: String) {
        self.receivedAt = receivedAt
        self.id = id
    }

    init(encoded: String) throws {
        var base64 = encoded.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard
            let data = Data(base64Encoded: base64),
            let cursor = try? JSONDecoder().decode(TraceCursor.self, from: data),
            cursor.receivedAt.isFinite, RelayQueueID(validating: cursor.id) != nil
        else {
            throw RelayStorageError(.invalidRequest, "malformed trace cursor: pass the next_cursor of the previous page unchanged")
        }
        self = cursor
    }

    func encoded() throws -> String {
        try JSONEncoder.queue.encode(self).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
