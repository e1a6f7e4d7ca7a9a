import Foundation
import GRDB
import GRDBSQLite
import NIOConcurrencyHelpers
import NIOCore

/// The one thread that writes a recording into its tape.
///
/// Event loops hand it commands and never wait for the disk. It takes everything queued, inserts it in one
/// transaction through prepared statements, and commits when the queue runs dry, after about 100 ms, or after
/// a few MiB: group commit, so a burst of small events costs one commit, and a crash loses at most the last
/// moments. If the tape cannot be written it stops, keeps nothing back from the caller, and reports the failure.
final class TapeWriter: Sendable {
    /// What event loops ask the writer to do, in the order they ask it.
    enum Command: Sendable {
        case sessionStarted(SessionStart)
        case event(key: UInt64, seq: Int64, offset: Int64, direction: Direction, kind: EventKind, payload: ByteBuffer?)
        case sessionEnded(SessionEnd)
        /// The recorder wrote a placeholder over `length` bytes of an event's payload, from `start`, for a rule.
        case redaction(key: UInt64, seq: Int64, start: Int, length: Int, ruleID: Int64)
        /// How a session spoke TLS (its `sessionID` is filled in by the writer).
        case tls(key: UInt64, SessionTLSRecord)
        /// A route's listener is bound: store the address it got, in place of the configured one (port 0).
        case routeBound(routeID: Int64, listen: String)
        /// A route added to the run while it records (through the control API): its row and its rules, whose ids
        /// the addition is called back with once committed.
        case routeAdded(RouteAddition)
        /// Commit now and call back; for shutdown and tests.
        case flush(@Sendable () -> Void)
    }

    struct SessionStart: Sendable {
        var key: UInt64
        var runID: Int64
        var routeID: Int64
        var route: String
        var clientAddress: String
        var upstreamAddress: String
        var startedAt: Int64
    }

    /// A route joining a run that is recording, and who waits for its row.
    struct RouteAddition: Sendable {
        var runID: Int64
        var route: Route
        /// Called exactly once: with the route's row id and its rules' ids once committed, or with `nil` when the
        /// writer failed (or had failed) and the route was not written.
        var done: @Sendable (RouteRows?) -> Void
    }

    /// The ids an added route got in the tape.
    struct RouteRows: Sendable {
        var routeID: Int64
        var ruleIDs: [Int64]
    }

    struct SessionEnd: Sendable {
        var key: UInt64
        var outcome: SessionOutcome
        var upstreamAddress: String
        var endedAt: Int64
        var duration: Int64
        var clientBytes: Int64
        var upstreamBytes: Int64
        var eventCount: Int64
        var droppedDatagrams: Int64 = 0
    }

    /// Largest transaction, in payload bytes, before a commit.
    static let transactionByteLimit = 8 << 20
    /// Longest a transaction stays open while work keeps arriving.
    static let transactionTimeLimit: TimeInterval = 0.1

    let budget: RecordingBudget
    private let tape: Tape
    private let queue = WorkQueue<Command>()
    private let failure = NIOLockedValueBox<TapedeckError?>(nil)
    private let onFailure: @Sendable (TapedeckError) -> Void
    private let finished = ConditionLock(value: false)

    /// Starts the writer thread.
    ///
    /// - Parameters:
    ///   - tape: A tape opened for recording.
    ///   - budget: The memory bound shared with the relays.
    ///   - onFailure: Called once, on the writer thread, if the tape cannot be written.
    init(tape: Tape, budget: RecordingBudget, onFailure: @escaping @Sendable (TapedeckError) -> Void) {
        self.tape = tape
        self.budget = budget
        self.onFailure = onFailure
        let thread = Thread { [self] in run() }
        thread.name = "tapedeck.tape-writer"
        thread.start()
    }

    /// The error that stopped the writer, if any.
    var error: TapedeckError? { failure.withLockedValue { $0 } }

    func submit(_ command: Command) {
        switch command {
        case .flush, .routeAdded: queue.append(command, urgent: true)
        default: queue.append(command, weight: Self.payloadBytes(command))
        }
    }

    /// How long the writer lets events gather before it commits them, unless enough arrive sooner. Each commit
    /// rewrites every page it touched, so fewer, larger commits cost the relays less CPU.
    static let batchInterval: TimeInterval = 0.1

    /// Writes everything submitted so far, then stops the thread. Returns the failure, if writing failed.
    func finish() async -> TapedeckError? {
        queue.close()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // Waiting on a condition blocks; do it off the cooperative pool.
            Thread {
                self.finished.lock(whenValue: true)
                self.finished.unlock()
                continuation.resume()
            }.start()
        }
        return error
    }

    // MARK: The writer thread

    /// How much less favoured the writer thread is than the event loops (a `nice` increment).
    static let priorityDecrement: Int32 = 5

    /// Lowers the calling thread's scheduling priority: on Linux the nice value belongs to each thread, and
    /// `setpriority(PRIO_PROCESS, 0, …)` sets the caller's alone. Failing to (a sandbox that forbids it) changes
    /// nothing else.
    private static func lowerThreadPriority() {
        #if os(Linux)
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        _ = setpriority(which, 0, min(19, getpriority(which, 0) + priorityDecrement))
        #endif
    }

    private func run() {
        // Named from inside, where it takes effect: profilers and /proc then show which thread writes the tape.
        Thread.current.name = "tapedeck.writer"
        // Below the event loops in priority: the relays are what clients wait for, while the writer can fall
        // behind by up to the recording budget and catch up when traffic pauses. Under sustained load beyond the
        // budget the relays still wait for it, so nothing recorded is dropped.
        Self.lowerThreadPriority()
        defer {
            finished.lock()
            finished.unlock(withValue: true)
        }
        let identity = FileIdentity(path: tape.path)
        // The log and shared memory this connection uses: if the tape is replaced under us, they must go with
        // it, or SQLite would apply them to the new file at the path.
        let sideFiles = TapeFiles.sideFileSuffixes.compactMap { suffix in
            FileIdentity(path: tape.path + suffix).map { (path: tape.path + suffix, identity: $0) }
        }
        do {
            try tape.database.writeWithoutTransaction { db in
                var state = try WriterState(db: db)
                while let first = queue.takeAll(waitingUpTo: Self.batchInterval) {
                    if first.isEmpty { continue }
                    if self.error != nil {
                        discard(first)
                        continue
                    }
                    try writeTransaction(startingWith: first, state: &state, db: db)
                    if let identity, !identity.stillNames(tape.path) {
                        // SQLite keeps its side files when the database has moved (it skips the checkpoint on
                        // close), so remove ours ourselves, and only ours.
                        for side in sideFiles where side.identity.stillNames(side.path) { unlink(side.path) }
                        throw TapedeckError(
                            .recordingFailed,
                            "tape '\(tape.path)' was removed or replaced while recording"
                        )
                    }
                }
            }
        } catch {
            let failure =
                (error as? TapedeckError)
                ?? TapedeckError(.recordingFailed, "cannot write tape '\(tape.path)': \(Tape.reason(error))")
            fail(failure)
            // Drain so that no relay waits for budget, and no caller for a flush, that would never come back.
            while let rest = queue.takeAll(waitingUpTo: 0.25) {
                discard(rest)
            }
        }
    }

    /// Drops commands after a failure, which has been reported: returns their budget, answers their flushes.
    private func discard(_ commands: [Command]) {
        budget.release(commands.reduce(0) { $0 + Self.payloadBytes($1) })
        for case .flush(let callback) in commands { callback() }
        for case .routeAdded(let addition) in commands { addition.done(nil) }
    }

    private func fail(_ error: TapedeckError) {
        let first = failure.withLockedValue { failure in
            guard failure == nil else { return false }
            failure = error
            return true
        }
        if first { onFailure(error) }
    }

    private func writeTransaction(startingWith first: [Command], state: inout WriterState, db: Database) throws {
        let started = Date()
        var taken = first
        var next = 0
        var bytes = 0
        var callbacks: [@Sendable () -> Void] = []
        // Added routes hear of their rows only once they are committed, and of nothing if the commit fails.
        var added: [(TapeWriter.RouteAddition, TapeWriter.RouteRows)] = []
        try db.execute(sql: "BEGIN IMMEDIATE")
        do {
            while true {
                while next < taken.count {
                    let command = taken[next]
                    next += 1
                    bytes += Self.payloadBytes(command)
                    if case .flush(let callback) = command {
                        callbacks.append(callback)
                    } else if case .routeAdded(let addition) = command {
                        added.append((addition, try state.addRoute(addition)))
                    } else {
                        try state.apply(command)
                    }
                }
                guard callbacks.isEmpty, added.isEmpty, bytes < Self.transactionByteLimit,
                    Date().timeIntervalSince(started) < Self.transactionTimeLimit,
                    let more = queue.takeAll(waitingUpTo: 0), !more.isEmpty
                else { break }
                taken.append(contentsOf: more)
            }
            try db.execute(sql: "COMMIT")
        } catch {
            try? db.execute(sql: "ROLLBACK")
            budget.release(bytes)
            for callback in callbacks { callback() }
            for (addition, _) in added { addition.done(nil) }
            discard(Array(taken[next...]))
            throw error
        }
        budget.release(bytes)
        for callback in callbacks { callback() }
        for (addition, rows) in added { addition.done(rows) }
    }

    static func payloadBytes(_ command: Command) -> Int {
        if case .event(_, _, _, _, _, let payload?) = command { return RecordingBudget.cost(of: payload) }
        return 0
    }
}

/// The writer's prepared statements and its map from in-memory session keys to tape session ids.
private struct WriterState {
    let insertEvent: Statement
    let insertSession: Statement
    let updateSession: Statement
    var sessionIDs: [UInt64: Int64] = [:]
    let db: Database

    init(db: Database) throws {
        self.db = db
        insertEvent = try db.makeStatement(
            sql: "INSERT INTO events(session_id, seq, offset_ns, direction, kind, payload) VALUES (?, ?, ?, ?, ?, ?)"
        )
        insertSession = try db.makeStatement(
            sql: """
                INSERT INTO sessions(run_id, route_id, route, client_address, upstream_address, started_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """
        )
        updateSession = try db.makeStatement(
            sql: """
                UPDATE sessions SET outcome = ?, upstream_address = ?, ended_at = ?, duration_ns = ?,
                    client_bytes = ?, upstream_bytes = ?, event_count = ?, dropped_datagrams = ? WHERE id = ?
                """
        )
    }

    mutating func apply(_ command: TapeWriter.Command) throws {
        switch command {
        case .event(let key, let seq, let offset, let direction, let kind, let payload):
            guard let sessionID = sessionIDs[key] else { return }
            try insert(
                sessionID: sessionID,
                seq: seq,
                offset: offset,
                direction: direction,
                kind: kind,
                payload: payload
            )
        case .sessionStarted(let start):
            try insertSession.execute(arguments: [
                start.runID, start.routeID, start.route, start.clientAddress, start.upstreamAddress, start.startedAt,
            ])
            sessionIDs[start.key] = db.lastInsertedRowID
        case .sessionEnded(let end):
            guard let sessionID = sessionIDs.removeValue(forKey: end.key) else { return }
            try updateSession.execute(arguments: [
                end.outcome.rawValue, end.upstreamAddress, end.endedAt, end.duration, end.clientBytes,
                end.upstreamBytes, end.eventCount, end.droppedDatagrams, sessionID,
            ])
        case .redaction(let key, let seq, let start, let length, let ruleID):
            guard let sessionID = sessionIDs[key] else { return }
            try db.execute(
                sql: "INSERT INTO redactions(session_id, seq, start, length, rule_id) VALUES (?, ?, ?, ?, ?)",
                arguments: [sessionID, seq, start, length, ruleID]
            )
        case .tls(let key, var record):
            guard let sessionID = sessionIDs[key] else { return }
            record.sessionID = sessionID
            try record.save(db)
        case .routeBound(let routeID, let listen):
            try db.execute(sql: "UPDATE routes SET listen = ? WHERE id = ?", arguments: [listen, routeID])
        case .flush, .routeAdded:
            // The transaction handles both: they call back.
            break
        }
    }

    /// Writes an added route's row and its rules, as ``Tape/beginRun(routes:label:mode:)`` does for the first ones.
    func addRoute(_ addition: TapeWriter.RouteAddition) throws -> TapeWriter.RouteRows {
        let route = addition.route
        try RouteRecord(
            id: nil,
            runID: addition.runID,
            name: route.name,
            listen: "\(route.listen)",
            upstream: route.upstreamText,
            dns: route.isDNS,
            protocolName: route.lens.rawValue
        ).insert(db)
        let routeID = db.lastInsertedRowID
        let ruleIDs = try Tape.insertRules([route], runID: addition.runID, db: db)
        return TapeWriter.RouteRows(routeID: routeID, ruleIDs: ruleIDs[route.name] ?? [])
    }

    /// The hot path: binds straight to SQLite, with the payload bound in place (no copy).
    private func insert(
        sessionID: Int64,
        seq: Int64,
        offset: Int64,
        direction: Direction,
        kind: EventKind,
        payload: ByteBuffer?
    ) throws {
        let statement = insertEvent.sqliteStatement
        sqlite3_bind_int64(statement, 1, sessionID)
        sqlite3_bind_int64(statement, 2, seq)
        sqlite3_bind_int64(statement, 3, offset)
        sqlite3_bind_int(statement, 4, direction.code)
        sqlite3_bind_int(statement, 5, kind.code)
        let code: Int32
        if let payload {
            code = payload.withUnsafeReadableBytes { bytes in
                // SQLITE_STATIC is safe: the bytes stay alive until sqlite3_step returns, within this closure.
                sqlite3_bind_blob(
                    statement,
                    6,
                    bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                    Int32(bytes.count),
                    nil
                )
                return sqlite3_step(statement)
            }
        } else {
            sqlite3_bind_null(statement, 6)
            code = sqlite3_step(statement)
        }
        sqlite3_reset(statement)
        guard code == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: String(cString: sqlite3_errmsg(db.sqliteConnection))
            )
        }
    }
}
