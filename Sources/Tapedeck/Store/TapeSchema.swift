import GRDB

/// The tables of a tape and the migrations that build them, one per format version.
///
/// Every migration is named `v<N>`. A tape whose applied migrations include a name this build does not know was
/// written by a newer Tapedeck, and is refused rather than misread. See `docs/tape-format.md`.
enum TapeSchema {
    /// The format version this build writes.
    static let currentVersion = 1

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE tape_meta (
                        key TEXT PRIMARY KEY NOT NULL,
                        value TEXT NOT NULL
                    );
                    CREATE TABLE runs (
                        id INTEGER PRIMARY KEY,
                        started_at INTEGER NOT NULL,
                        ended_at INTEGER,
                        tool_version TEXT NOT NULL,
                        mode TEXT NOT NULL,
                        label TEXT
                    );
                    CREATE TABLE routes (
                        id INTEGER PRIMARY KEY,
                        run_id INTEGER NOT NULL REFERENCES runs(id),
                        name TEXT NOT NULL,
                        listen TEXT NOT NULL,
                        upstream TEXT NOT NULL
                    );
                    CREATE TABLE sessions (
                        id INTEGER PRIMARY KEY,
                        run_id INTEGER NOT NULL REFERENCES runs(id),
                        route_id INTEGER NOT NULL REFERENCES routes(id),
                        route TEXT NOT NULL,
                        client_address TEXT NOT NULL,
                        upstream_address TEXT NOT NULL,
                        started_at INTEGER NOT NULL,
                        ended_at INTEGER,
                        duration_ns INTEGER,
                        outcome TEXT NOT NULL DEFAULT 'incomplete',
                        client_bytes INTEGER NOT NULL DEFAULT 0,
                        upstream_bytes INTEGER NOT NULL DEFAULT 0,
                        event_count INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE INDEX sessions_by_route ON sessions(route, id);
                    CREATE INDEX sessions_by_start ON sessions(started_at);
                    CREATE TABLE events (
                        id INTEGER PRIMARY KEY,
                        session_id INTEGER NOT NULL REFERENCES sessions(id),
                        seq INTEGER NOT NULL,
                        offset_ns INTEGER NOT NULL,
                        direction TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        payload BLOB
                    );
                    CREATE UNIQUE INDEX events_by_session ON events(session_id, seq);
                    """
            )
            try db.execute(
                sql: "INSERT INTO tape_meta(key, value) VALUES ('format_version', ?), ('created_by', ?)",
                arguments: ["1", "tapedeck \(tapedeckVersion)"]
            )
        }
        return migrator
    }
}
