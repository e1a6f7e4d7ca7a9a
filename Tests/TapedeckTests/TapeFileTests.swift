import Foundation
import GRDB
import Testing

@testable import Tapedeck

/// Opening tapes: what is refused, and with which one-line message.
struct TapeFileTests {
    @Test func theRecordingConnectionCachesEnoughPagesForManySessionsAtOnce() throws {
        let directory = try TemporaryDirectory()
        let tape = try Tape(recordingAt: directory.path("cache.tape"))
        defer { try? tape.close() }
        // 64 sessions recording at once touch 64 leaves of the events b-tree; with SQLite's default 62-page cache
        // of 32 KiB pages the writer spilled and reread a page per small event.
        let cacheSize = try tape.database.read { try Int.fetchOne($0, sql: "PRAGMA cache_size") }
        #expect(cacheSize == -Tape.recordingCacheKiB)
        let pageSize = try tape.database.read { try Int.fetchOne($0, sql: "PRAGMA page_size") } ?? 1
        #expect(Tape.recordingCacheKiB * 1024 / pageSize >= 1000)
    }

    @Test func aMissingTapeIsAClearError() {
        let error = #expect(throws: TapedeckError.self) { try Tape(readingAt: "/nonexistent/x.tape") }
        #expect(error?.description == "cannot open tape '/nonexistent/x.tape': no such file")
    }

    @Test func aCorruptFileIsAClearError() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("corrupt.tape")
        try Data(Payload.random(count: 8192, seed: 1).readableBytesView).write(to: URL(fileURLWithPath: path))
        for open in [{ _ = try Tape(readingAt: path) }, { _ = try Tape(recordingAt: path) }] {
            let error = #expect(throws: TapedeckError.self) { try open() }
            #expect(error?.description == "cannot open tape '\(path)': file is not a database")
        }
    }

    @Test func anotherSQLiteDatabaseIsNotTakenForATape() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("other.sqlite")
        try DatabaseQueue(path: path).write { db in try db.execute(sql: "CREATE TABLE people(name TEXT)") }
        for open in [{ _ = try Tape(readingAt: path) }, { _ = try Tape(recordingAt: path) }] {
            let error = #expect(throws: TapedeckError.self) { try open() }
            #expect(error?.description == "cannot open tape '\(path)': not a Tapedeck tape")
        }
        // And it was left alone.
        #expect(try DatabaseQueue(path: path).read { db in try db.tableExists("people") && !db.tableExists("events") })
    }

    @Test func aTapeFromANewerFormatIsRefused() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("future.tape")
        _ = try Tape(recordingAt: path)
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "UPDATE tape_meta SET value = '99' WHERE key = 'format_version'")
            try db.execute(sql: "INSERT INTO grdb_migrations(identifier) VALUES ('v99')")
        }
        for open in [{ _ = try Tape(readingAt: path) }, { _ = try Tape(recordingAt: path) }] {
            let error = #expect(throws: TapedeckError.self) { try open() }
            #expect(error?.code == .tapeFromNewerVersion)
            #expect(
                error?.description
                    == "cannot open tape '\(path)': it has format version 99, newer than this Tapedeck (\(tapedeckVersion)) reads (up to \(TapeSchema.currentVersion)); upgrade Tapedeck"
            )
        }
    }

    @Test func aTapeChangedByANewerTapedeckInTheSameVersionIsRefusedWithoutContradiction() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("changed.tape")
        _ = try Tape(recordingAt: path)
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations(identifier) VALUES ('v1-extra')")
        }
        let error = #expect(throws: TapedeckError.self) { try Tape(readingAt: path) }
        #expect(error?.code == .tapeFromNewerVersion)
        #expect(
            error?.description
                == "cannot open tape '\(path)': it was changed by a newer Tapedeck (migration v1-extra is unknown to Tapedeck \(tapedeckVersion)); upgrade Tapedeck"
        )
    }

    @Test func theSchemasCodeTablesAgreeWithTheSwiftEnums() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("codes.tape")
        try Tape(recordingAt: path).close()
        let database = try DatabaseQueue(path: path)
        let (directions, kinds) = try database.read { db in
            (
                try Row.fetchAll(db, sql: "SELECT id, name FROM directions ORDER BY id").map {
                    (Int64($0["id"] as Int64), $0["name"] as String)
                },
                try Row.fetchAll(db, sql: "SELECT id, name FROM event_kinds ORDER BY id").map {
                    (Int64($0["id"] as Int64), $0["name"] as String)
                }
            )
        }
        #expect(directions.map(\.0) == Direction.allCases.map { Int64($0.code) })
        #expect(directions.map(\.1) == Direction.allCases.map(\.rawValue))
        #expect(kinds.map(\.0) == EventKind.allCases.map { Int64($0.code) })
        #expect(kinds.map(\.1) == EventKind.allCases.map(\.rawValue))
        for (code, name) in directions { #expect(Direction(code: code)?.rawValue == name) }
        for (code, name) in kinds { #expect(EventKind(code: code)?.rawValue == name) }
        try database.close()
    }

    @Test func aDirectoryOrADeviceIsNotATape() throws {
        let directory = try TemporaryDirectory()
        for open in [
            { _ = try Tape(readingAt: directory.url.path) }, { _ = try Tape(recordingAt: directory.url.path) },
        ] {
            let error = #expect(throws: TapedeckError.self) { try open() }
            #expect(
                error?.description == "cannot open tape '\(directory.url.path)': it is a directory, not a tape file"
            )
        }
        for open in [{ _ = try Tape(readingAt: "/dev/null") }, { _ = try Tape(recordingAt: "/dev/null") }] {
            let error = #expect(throws: TapedeckError.self) { try open() }
            #expect(error?.description == "cannot open tape '/dev/null': not a regular file")
        }
    }

    @Test func anUnwritableLocationIsAClearError() throws {
        // Root may write anywhere in an ordinary directory; /proc refuses new files even to root.
        let path = geteuid() == 0 ? "/proc/tapedeck-test.tape" : "/tapedeck-test.tape"
        let error = #expect(throws: TapedeckError.self) { try Tape(recordingAt: path) }
        #expect(error?.code == .tapeUnwritable)
        #expect(error?.description.hasPrefix("cannot create tape '\(path)': ") == true)
    }

    @Test func aReadOnlyDirectoryIsAClearError() throws {
        let directory = try TemporaryDirectory()
        let readOnly = directory.path("ro")
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: false)
        chmod(readOnly, 0o500)
        defer { chmod(readOnly, 0o700) }
        let path = readOnly + "/x.tape"
        guard geteuid() != 0 else {
            // Root ignores directory permissions; the /proc case above covers root.
            return
        }
        let error = #expect(throws: TapedeckError.self) { try Tape(recordingAt: path) }
        #expect(error?.description == "cannot create tape '\(path)': permission denied")
    }

    @Test func theSchemaIsPlainTablesWithIndexes() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("schema.tape")
        let tape = try Tape(recordingAt: path)
        try tape.database.read { db in
            for table in ["tape_meta", "runs", "routes", "sessions", "events", "directions", "event_kinds"] {
                #expect(try db.tableExists(table))
            }
            let indexes = try String.fetchAll(
                db,
                sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"
            )
            #expect(Set(indexes).isSuperset(of: ["sessions_by_route", "sessions_by_start"]))
            // Events are clustered by (session_id, seq): reading a session in order is one range scan.
            #expect(try db.primaryKey("events").columns == ["session_id", "seq"])
            #expect(try db.viewExists("event_log"))
            // The lookup tables name every code the writer stores.
            let directions = try String.fetchAll(db, sql: "SELECT name FROM directions ORDER BY id")
            #expect(directions == Direction.allCases.map(\.rawValue))
            #expect(Direction.allCases.map(\.code) == [0, 1])
            let kinds = try String.fetchAll(db, sql: "SELECT name FROM event_kinds ORDER BY id")
            #expect(kinds == EventKind.allCases.map(\.rawValue))
            #expect(EventKind.allCases.map(\.code) == [0, 1, 2, 3, 4, 5, 6])
            #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal")
            #expect(try Int.fetchOne(db, sql: "PRAGMA page_size") == Tape.pageSize)
        }
    }
}
