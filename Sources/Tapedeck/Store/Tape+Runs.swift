import Foundation
import GRDB

extension Tape {
    /// Starts a recording run: its row, and a row per route it records, as one transaction.
    ///
    /// - Returns: The run's id, and each route's id and its rules' ids (in the route's order), by route name.
    /// - Throws: ``TapedeckError`` with code `tapeUnwritable`.
    func beginRun(
        routes: [Route],
        label: String?,
        mode: String
    ) throws -> (runID: Int64, routeIDs: [String: Int64], ruleIDs: [String: [Int64]]) {
        do {
            return try database.write { db in
                let run = RunRecord(
                    id: nil,
                    startedAt: WallClock.nowNanoseconds(),
                    endedAt: nil,
                    toolVersion: tapedeckVersion,
                    mode: mode,
                    label: label
                )
                try run.insert(db)
                let runID = db.lastInsertedRowID
                var routeIDs: [String: Int64] = [:]
                for route in routes {
                    let record = RouteRecord(
                        id: nil,
                        runID: runID,
                        name: route.name,
                        listen: "\(route.listen)",
                        upstream: route.upstreamText,
                        dns: route.isDNS,
                        protocolName: route.lens.rawValue
                    )
                    try record.insert(db)
                    routeIDs[route.name] = db.lastInsertedRowID
                }
                return (runID, routeIDs, try Tape.insertRules(routes, runID: runID, db: db))
            }
        } catch {
            throw TapedeckError(.tapeUnwritable, "cannot write tape '\(path)': \(Tape.reason(error))")
        }
    }

    /// Closes a run: stamps its end, folds the write-ahead log back into the tape so that a finished tape is one
    /// file to commit or copy, and settles the tape (see ``settle()``).
    ///
    /// - Throws: ``TapedeckError`` with code `recordingFailed`.
    func endRun(_ runID: Int64) async throws {
        do {
            try await database.write { db in
                try db.execute(
                    sql: "UPDATE runs SET ended_at = ? WHERE id = ?",
                    arguments: [WallClock.nowNanoseconds(), runID]
                )
            }
            try await database.writeWithoutTransaction { db in
                _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
            settle()
        } catch {
            throw TapedeckError(.recordingFailed, "cannot write tape '\(path)': \(Tape.reason(error))")
        }
    }

    /// The number of sessions a run has on tape.
    ///
    /// - Throws: ``TapedeckError`` with code `tapeUnreadable`.
    func sessionCount(inRun runID: Int64) throws -> Int {
        do {
            return try database.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM sessions WHERE run_id = ?", arguments: [runID]) ?? 0
            }
        } catch {
            throw TapedeckError(.tapeUnreadable, "cannot read tape '\(path)': \(Tape.reason(error))")
        }
    }
}
