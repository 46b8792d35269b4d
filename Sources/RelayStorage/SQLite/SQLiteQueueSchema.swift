import GRDB

/// The queue's tables. Dates are stored as seconds since 1970 (REAL) throughout.
enum SQLiteQueueSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: messages, recipients, attempts") { db in
            try db.execute(sql: """
                CREATE TABLE messages (
                    id              TEXT PRIMARY KEY NOT NULL,
                    state           TEXT NOT NULL,
                    sender          TEXT NOT NULL,
                    route           TEXT NOT NULL,      -- copied out of the envelope for lease filtering
                    envelope        TEXT NOT NULL,      -- RelayEnvelope as JSON
                    size            INTEGER NOT NULL,
                    received_at     REAL NOT NULL,
                    next_attempt_at REAL NOT NULL,
                    attempts        INTEGER NOT NULL DEFAULT 0,
                    last_error      TEXT,
                    lease_owner     TEXT,
                    lease_until     REAL
                ) WITHOUT ROWID;

                -- lease() and nextDueDate(): queued messages by due time.
                CREATE INDEX messages_by_state_due ON messages(state, next_attempt_at);
                -- list(): newest first, optionally by state.
                CREATE INDEX messages_by_state_received ON messages(state, received_at);
                CREATE INDEX messages_by_received ON messages(received_at);

                CREATE TABLE recipients (
                    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
                    position   INTEGER NOT NULL,
                    address    TEXT NOT NULL,
                    status     TEXT NOT NULL,
                    last_reply TEXT,
                    PRIMARY KEY (message_id, position)
                ) WITHOUT ROWID;

                CREATE TABLE attempts (
                    id          INTEGER PRIMARY KEY,
                    message_id  TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
                    started_at  REAL NOT NULL,
                    finished_at REAL NOT NULL,
                    route       TEXT NOT NULL,
                    summary     TEXT NOT NULL
                );
                CREATE INDEX attempts_by_message ON attempts(message_id, started_at);
                """)
        }
        migrator.registerMigration("v2: inline content of small messages") { db in
            try db.execute(sql: """
                CREATE TABLE contents (
                    message_id TEXT PRIMARY KEY NOT NULL,
                    data BLOB NOT NULL
                )
                """)
        }
        migrator.registerMigration("v3: message trace") { db in
            try db.execute(sql: """
                -- Copied out of the envelope at commit so that trace filters need no JSON.
                ALTER TABLE messages ADD COLUMN client_name TEXT NOT NULL DEFAULT '';
                ALTER TABLE messages ADD COLUMN client_address TEXT NOT NULL DEFAULT '';
                -- The Message-ID: header as the envelope gives it (usually with angle brackets).
                ALTER TABLE messages ADD COLUMN header_message_id TEXT;
                -- When it was delivered, failed or deleted; NULL while it is not finished.
                ALTER TABLE messages ADD COLUMN finished_at REAL;
                -- Set when trace.keep_bodies kept the content past the finish; NULL otherwise.
                ALTER TABLE messages ADD COLUMN content_kept_until REAL;
                -- A delivery status notification was queued for it.
                ALTER TABLE messages ADD COLUMN bounced INTEGER NOT NULL DEFAULT 0;

                -- delivered | deferred | failed | rerouted
                ALTER TABLE attempts ADD COLUMN outcome TEXT NOT NULL DEFAULT 'deferred';
                -- RelayAttemptDetail as JSON.
                ALTER TABLE attempts ADD COLUMN detail TEXT;
                -- The deferral's due time, and the fallback route of a rerouting attempt, for the timeline.
                ALTER TABLE attempts ADD COLUMN next_attempt_at REAL;
                ALTER TABLE attempts ADD COLUMN rerouted_to TEXT;

                -- Timeline entries that are not attempts and not the arrival (both are
                -- derived from their own rows): held, released, retried, deleted, bounced, rerouted.
                CREATE TABLE events (
                    id         INTEGER PRIMARY KEY,
                    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
                    at         REAL NOT NULL,
                    kind       TEXT NOT NULL,
                    summary    TEXT NOT NULL,
                    details    TEXT NOT NULL DEFAULT '{}'
                );
                CREATE INDEX events_by_message ON events(message_id, at);

                -- prune(): partial, so a commit (finished_at still NULL) adds no index entry.
                CREATE INDEX messages_by_finished ON messages(finished_at) WHERE finished_at IS NOT NULL;
                -- flow(): attempts by the hour they ended in.
                CREATE INDEX attempts_by_finished ON attempts(finished_at, outcome);

                -- Messages queued before this version.
                UPDATE messages SET
                    client_name = COALESCE(json_extract(envelope, '$.clientName'), ''),
                    client_address = COALESCE(json_extract(envelope, '$.clientAddress'), ''),
                    header_message_id = json_extract(envelope, '$.messageID');
                UPDATE messages SET finished_at = COALESCE(
                        (SELECT MAX(attempts.finished_at) FROM attempts WHERE attempts.message_id = messages.id), received_at)
                    WHERE state IN ('delivered', 'failed');
                -- The last attempt of a finished message decided it; earlier ones deferred it.
                UPDATE attempts SET outcome = (SELECT messages.state FROM messages WHERE messages.id = attempts.message_id)
                    WHERE id IN (SELECT MAX(attempts.id) FROM attempts JOIN messages ON messages.id = attempts.message_id
                                 WHERE messages.state IN ('delivered', 'failed') GROUP BY attempts.message_id);
                """)
        }
        return migrator
    }
}
