import Foundation
import GRDB
import NIOConcurrencyHelpers

/// A tape: one SQLite file holding recorded sessions and their events.
///
/// Open one for reading to list and inspect it, or for recording to append a new run. Opening checks that the
/// file really is a tape, and refuses one written by a newer Tapedeck rather than misreading it.
///
/// ```swift
/// let tape = try Tape(readingAt: "fixtures/redis.tape")
/// for session in try tape.sessions() {
///     print(session.id!, session.outcome, session.clientBytes)
/// }
/// ```
public final class Tape: Sendable {
    /// The tape file's path, as given.
    public let path: String
    let database: DatabaseQueue
    /// Whether ``close()`` closed the connection, held while reading: SQLite must never be asked to read
    /// through a closed connection (a replay connection's read can come after the deck closed its tape).
    let closed = NIOLockedValueBox(false)

    /// SQLite page size for new tapes: 32 KiB pages write large payloads about twice as fast as the default
    /// 4 KiB, and waste less in overflow pages than 64 KiB ones. It must be set before WAL mode is enabled, so
    /// only new tapes get it.
    public static let pageSize = 32768

    /// Opens an existing tape for reading.
    ///
    /// A tape being recorded can be read at the same time: tapes use SQLite's write-ahead log.
    ///
    /// - Throws: ``TapedeckError`` with code `tapeUnreadable` for a missing, unreadable or corrupt file, a file
    ///   that is not a tape, or a tape from a newer format.
    public init(readingAt path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw TapedeckError(.tapeUnreadable, "cannot open tape '\(path)': no such file")
        }
        try Self.requireRegularFile(path)
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw TapedeckError(.tapeUnreadable, "cannot open tape '\(path)': permission denied")
        }
        var configuration = Self.configuration()
        configuration.readonly = true
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw Self.openError(path, error)
        }
        try Self.checkIsTape(database, path: path, allowEmpty: false)
    }

    /// Opens a tape for recording, creating it (mode 0600) if it does not exist.
    ///
    /// - Parameters:
    ///   - path: The tape file.
    ///   - overwrite: Start a fresh tape even if one exists; otherwise new runs are appended.
    ///   - pageSize: SQLite page size for a new tape; existing tapes keep theirs. Only benchmarks change it.
    /// - Throws: ``TapedeckError`` with code `tapeUnwritable` or `tapeUnreadable`.
    public init(recordingAt path: String, overwrite: Bool = false, pageSize: Int = Tape.pageSize) throws {
        self.path = path
        if overwrite {
            do {
                try TapeFiles.withDirectoryLock(of: path) {
                    if TapeFiles.exists(path), unlink(path) != 0 {
                        throw TapedeckError(.tapeUnwritable, "cannot overwrite tape '\(path)': \(Self.errnoReason())")
                    }
                    try TapeFiles.removeSideFiles(of: path)
                }
            }
        }
        // A new tape is built beside its path and renamed into place whole: another recorder creating the same
        // tape at the same moment finds either nothing or a complete tape, and a failure leaves no empty file
        // that `auto` mode would take for a fixture.
        _ = try TapeFiles.createIfMissing(at: path) { temporary in
            do {
                let creating = try DatabaseQueue(path: temporary, configuration: Self.configuration())
                try creating.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA page_size = \(pageSize)")
                }
                try TapeSchema.migrator.migrate(creating)
                try creating.close()
            } catch {
                throw TapedeckError(.tapeUnwritable, "cannot create tape '\(path)': \(Self.reason(error))")
            }
        }
        try Self.requireRegularFile(path)
        guard FileManager.default.isWritableFile(atPath: path) else {
            throw TapedeckError(.tapeUnwritable, "cannot write tape '\(path)': permission denied")
        }
        do {
            database = try DatabaseQueue(path: path, configuration: Self.configuration())
        } catch {
            throw Self.openError(path, error)
        }
        let isNew = try Self.checkIsTape(database, path: path, allowEmpty: true)
        do {
            try Self.retryingWhileBusy {
                try database.writeWithoutTransaction { db in
                    // An empty file given as a tape (made with touch, say) becomes one here.
                    if isNew { try db.execute(sql: "PRAGMA page_size = \(pageSize)") }
                    // A finished tape is left in rollback-journal mode (see settle()); recording wants WAL again,
                    // so that the tape can be read while it is written.
                    try db.execute(sql: "PRAGMA journal_mode = WAL")
                    // Concurrent sessions insert at as many places of the events b-tree. SQLite's default cache
                    // (2,000 KiB: 62 pages of 32 KiB) holds fewer leaves than 64 interleaved sessions touch, and
                    // the writer then spills and rereads a page for nearly every small event (5x slower).
                    try db.execute(sql: "PRAGMA cache_size = -\(Self.recordingCacheKiB)")
                }
                try TapeSchema.migrator.migrate(database)
            }
        } catch {
            throw TapedeckError(.tapeUnwritable, "cannot write tape '\(path)': \(Self.reason(error))")
        }
    }

    /// Runs `body` again while SQLite answers that the tape is busy, for up to five seconds.
    ///
    /// Two recorders opening one tape at the same moment both switch it to WAL and check its schema. SQLite's busy
    /// timeout covers waiting for a lock, but not every clash: changing the journal mode, or a read turned write
    /// whose snapshot another connection's commit made stale, fail at once with `SQLITE_BUSY`. Starting over then
    /// finds the tape as the other recorder left it.
    static func retryingWhileBusy(_ body: () throws -> Void) throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        while true {
            do {
                return try body()
            } catch let error as DatabaseError
                where (error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED)
                && ContinuousClock.now < deadline
            {
                usleep(20_000)
            }
        }
    }

    /// Refuses a path that is not a regular file (a directory, a device such as `/dev/null`, a socket), which
    /// SQLite would report only as a puzzling "disk I/O error" or "not a database".
    static func requireRegularFile(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw TapedeckError(.tapeUnreadable, "cannot open tape '\(path)': \(errnoReason())")
        }
        let type = info.st_mode & S_IFMT
        guard type != S_IFDIR else {
            throw TapedeckError(.tapeUnreadable, "cannot open tape '\(path)': it is a directory, not a tape file")
        }
        guard type == S_IFREG else {
            throw TapedeckError(.tapeUnreadable, "cannot open tape '\(path)': not a regular file")
        }
    }

    /// The recording connection's page cache, in KiB: room for the b-tree leaves of about a thousand
    /// concurrent sessions. SQLite allocates it only as pages are used.
    static let recordingCacheKiB = 32 * 1024

    /// Tapes up to this size are rewritten with ``compactPageSize`` pages when a recording finishes.
    static let compactionLimit = 4 << 20
    /// The page size of a compacted tape: SQLite's default, small enough that a fixture holding a handful of
    /// sessions takes tens of kilobytes instead of the hundreds that a dozen 32 KiB pages of tables and indexes
    /// would.
    static let compactPageSize = 4096

    /// Leaves a finished tape as one plain file, ready to commit as a fixture.
    ///
    /// The tape leaves write-ahead logging for SQLite's rollback journal: readers of a WAL tape (every replay
    /// in CI) would leave `-wal` and `-shm` files beside it, and a rollback-journal tape is read with no side
    /// files at all. Recording into it again switches it back to WAL. A small tape is also rewritten with small
    /// pages; larger tapes keep the pages that write bulk traffic fast, and runs appended later keep the pages
    /// the tape has. Best effort: both need the tape to itself, so a reader holding it open leaves it as it is.
    func settle() {
        try? database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
            let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            let pageCount = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            guard pageSize > Self.compactPageSize, pageSize * pageCount <= Self.compactionLimit else { return }
            try db.execute(sql: "PRAGMA page_size = \(Self.compactPageSize)")
            try db.execute(sql: "VACUUM")
        }
    }

    /// Closes the tape's database connection; the tape cannot be used afterwards.
    ///
    /// SQLite removes the `-wal` and `-shm` files when the last connection closes, so a closed tape is one file
    /// even while the process that recorded it goes on.
    public func close() throws {
        try closed.withLockedValue { closed in
            guard !closed else { return }
            do {
                try database.close()
            } catch {
                throw TapedeckError(.tapeUnwritable, "cannot close tape '\(path)': \(Self.reason(error))")
            }
            closed = true
        }
    }

    static func configuration() -> Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        // The tape writer keeps sessions and events consistent itself; checking the foreign key on every event
        // insert would cost a lookup per row on the hottest path.
        configuration.foreignKeysEnabled = false
        configuration.label = "tapedeck.tape"
        configuration.prepareDatabase { db in
            // WAL with synchronous NORMAL: a commit survives a crash of the process, not of the machine.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        return configuration
    }

    /// Checks the file is a tape this build can read; returns true for an empty file that can become one.
    @discardableResult
    private static func checkIsTape(_ database: DatabaseQueue, path: String, allowEmpty: Bool) throws -> Bool {
        do {
            return try database.read { db in
                let tables = try String.fetchSet(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
                if tables.isEmpty, allowEmpty { return true }
                guard tables.contains("tape_meta") else {
                    throw TapedeckError(.tapeUnreadable, "cannot open tape '\(path)': not a Tapedeck tape")
                }
                let version = try String.fetchOne(db, sql: "SELECT value FROM tape_meta WHERE key = 'format_version'")
                    .flatMap { Int($0) }
                guard let version else {
                    throw TapedeckError(.tapeUnreadable, "cannot open tape '\(path)': no format version recorded")
                }
                if version > TapeSchema.currentVersion {
                    throw TapedeckError(
                        .tapeFromNewerVersion,
                        "cannot open tape '\(path)': it has format version \(version), newer than this Tapedeck "
                            + "(\(tapedeckVersion)) reads (up to \(TapeSchema.currentVersion)); upgrade Tapedeck"
                    )
                }
                // The same version with migrations this build does not know: a newer Tapedeck changed the tape.
                if try TapeSchema.migrator.hasBeenSuperseded(db) {
                    let unknown = try TapeSchema.migrator.appliedIdentifiers(db)
                        .subtracting(TapeSchema.migrator.migrations).sorted()
                    throw TapedeckError(
                        .tapeFromNewerVersion,
                        "cannot open tape '\(path)': it was changed by a newer Tapedeck (migration "
                            + "\(unknown.joined(separator: ", ")) is unknown to Tapedeck \(tapedeckVersion)); upgrade Tapedeck"
                    )
                }
                return false
            }
        } catch let error as TapedeckError {
            throw error
        } catch {
            throw openError(path, error)
        }
    }

    private static func openError(_ path: String, _ error: any Error) -> TapedeckError {
        TapedeckError(.tapeUnreadable, "cannot open tape '\(path)': \(reason(error))")
    }

    /// A short reason for an SQLite or file error: `file is not a database`, `disk I/O error`.
    static func reason(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            if let message = error.message, !message.isEmpty { return message }
            return error.resultCode.description
        }
        if let error = error as? CocoaError, let underlying = error.underlying as? POSIXError {
            return String(cString: strerror(underlying.code.rawValue)).lowercased()
        }
        if let error = error as? RowDecodingError {
            // GRDB's description goes on with the whole row and the SQL over several lines; the value and the
            // column are what a user can act on.
            let text = "\(error)"
            let cut = text.range(of: ", column index:").map { text[..<$0.lowerBound] } ?? Substring(text)
            return oneLine(String(cut))
        }
        return oneLine("\(error)")
    }

    /// The first line of `text`, at most 300 characters: an error message must not flood a terminal.
    static func oneLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? text
        return line.count > 300 ? String(line.prefix(299)) + "…" : line
    }

    static func errnoReason() -> String {
        String(cString: strerror(errno)).lowercased()
    }
}

extension CocoaError {
    fileprivate var underlying: (any Error)? {
        userInfo[NSUnderlyingErrorKey] as? any Error
    }
}
