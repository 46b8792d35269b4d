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
        return migrator
    }
}
