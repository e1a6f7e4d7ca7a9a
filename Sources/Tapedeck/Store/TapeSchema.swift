import GRDB

/// The tables of a tape and the migrations that build them, one per format version.
///
/// Every migration is named `v<N>`. A tape whose applied migrations include a name this build does not know was
/// written by a newer Tapedeck, and is refused rather than misread. See `docs/tape-format.md`.
enum TapeSchema {
    /// The format version this build writes.
    static let currentVersion = 6

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
                    CREATE TABLE directions (
                        id INTEGER PRIMARY KEY,
                        name TEXT NOT NULL UNIQUE
                    );
                    INSERT INTO directions(id, name) VALUES (0, 'client_to_upstream'), (1, 'upstream_to_client');
                    CREATE TABLE event_kinds (
                        id INTEGER PRIMARY KEY,
                        name TEXT NOT NULL UNIQUE
                    );
                    INSERT INTO event_kinds(id, name) VALUES
                        (0, 'data'), (1, 'half_close'), (2, 'close'), (3, 'reset'), (4, 'connect_failed');
                    CREATE TABLE events (
                        session_id INTEGER NOT NULL REFERENCES sessions(id),
                        seq INTEGER NOT NULL,
                        offset_ns INTEGER NOT NULL,
                        direction INTEGER NOT NULL REFERENCES directions(id),
                        kind INTEGER NOT NULL REFERENCES event_kinds(id),
                        payload BLOB,
                        PRIMARY KEY (session_id, seq)
                    ) WITHOUT ROWID;
                    CREATE VIEW event_log AS
                        SELECT e.session_id, e.seq, e.offset_ns, d.name AS direction, k.name AS kind, e.payload
                        FROM events e
                        JOIN directions d ON d.id = e.direction
                        JOIN event_kinds k ON k.id = e.kind;
                    """
            )
            try db.execute(
                sql: "INSERT INTO tape_meta(key, value) VALUES ('format_version', ?), ('created_by', ?)",
                arguments: ["1", "tapedeck \(tapedeckVersion)"]
            )
        }
        migrator.registerMigration("v2") { db in
            // The rules a route was recorded with, so that replay applies them without being told again, and
            // where the recorder wrote a placeholder in place of a redacted span.
            try db.execute(
                sql: """
                    CREATE TABLE rules (
                        id INTEGER PRIMARY KEY,
                        run_id INTEGER NOT NULL REFERENCES runs(id),
                        route TEXT NOT NULL,
                        position INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        pattern TEXT NOT NULL,
                        scope TEXT NOT NULL,
                        secret TEXT,
                        preset TEXT
                    );
                    CREATE INDEX rules_by_route ON rules(route, run_id, position);
                    CREATE TABLE redactions (
                        session_id INTEGER NOT NULL REFERENCES sessions(id),
                        seq INTEGER NOT NULL,
                        start INTEGER NOT NULL,
                        length INTEGER NOT NULL,
                        rule_id INTEGER NOT NULL REFERENCES rules(id),
                        PRIMARY KEY (session_id, seq, start)
                    ) WITHOUT ROWID;
                    UPDATE tape_meta SET value = '2' WHERE key = 'format_version';
                    """
            )
        }
        migrator.registerMigration("v3") { db in
            // How a session spoke TLS: where it started in each stream, what was negotiated, who the upstream
            // was. Tapes from before TLS simply have no rows.
            try db.execute(
                sql: """
                    CREATE TABLE session_tls (
                        session_id INTEGER PRIMARY KEY REFERENCES sessions(id),
                        mode TEXT NOT NULL,
                        upgrade TEXT NOT NULL,
                        client_offset INTEGER NOT NULL,
                        upstream_offset INTEGER NOT NULL,
                        version TEXT,
                        cipher TEXT,
                        server_name TEXT,
                        alpn TEXT,
                        upstream_subject TEXT,
                        upstream_fingerprint TEXT,
                        failure TEXT
                    );
                    UPDATE tape_meta SET value = '3' WHERE key = 'format_version';
                    """
            )
        }
        migrator.registerMigration("v4") { db in
            // UDP and DNS: whether a route carried DNS, how many datagrams a flow dropped, and the event of a
            // datagram the upstream's host refused (ICMP port unreachable).
            try db.execute(
                sql: """
                    ALTER TABLE routes ADD COLUMN dns INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE sessions ADD COLUMN dropped_datagrams INTEGER NOT NULL DEFAULT 0;
                    INSERT INTO event_kinds(id, name) VALUES (5, 'refused');
                    UPDATE tape_meta SET value = '4' WHERE key = 'format_version';
                    """
            )
        }
        migrator.registerMigration("v5") { db in
            // Protocol lenses: the lens a route was recorded with (`--protocol`), so that replay sees it the same.
            try db.execute(
                sql: """
                    ALTER TABLE routes ADD COLUMN protocol TEXT NOT NULL DEFAULT 'auto';
                    UPDATE tape_meta SET value = '5' WHERE key = 'format_version';
                    """
            )
        }
        migrator.registerMigration("v6") { db in
            // Faults: the event of a toxic acting on a recorded session.
            try db.execute(
                sql: """
                    INSERT INTO event_kinds(id, name) VALUES (6, 'fault');
                    UPDATE tape_meta SET value = '6' WHERE key = 'format_version';
                    """
            )
        }
        return migrator
    }
}
