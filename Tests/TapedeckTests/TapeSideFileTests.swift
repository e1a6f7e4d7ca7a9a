import Foundation
import GRDB
import Testing

@testable import Tapedeck

/// SQLite's log, shared memory and journal beside a tape: another database's must never shadow a tape.
struct TapeSideFileTests {
    /// Leaves `path` as a recorder killed with SIGKILL does: the tape in WAL mode and `count` sessions committed
    /// only to `path-wal`, beside it with `path-shm`.
    static func leaveUncheckpointedTape(at path: String, sessions count: Int, upstream: Endpoint) async throws {
        try await withRecordingProxy(upstream: upstream, tapePath: path, label: "old") { address in
            for index in 0..<count { _ = try await TestClient.exchange(address, "old \(index)") }
        }
        // Keep the log a live connection holds, then put it back after SQLite checkpointed and removed it at close.
        let writer = try DatabaseQueue(path: path)
        try await writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            try db.execute(sql: "UPDATE runs SET label = 'old, uncheckpointed'")
        }
        let log = try Data(contentsOf: URL(fileURLWithPath: path + "-wal"))
        let shared = try Data(contentsOf: URL(fileURLWithPath: path + "-shm"))
        try writer.close()
        try log.write(to: URL(fileURLWithPath: path + "-wal"))
        try shared.write(to: URL(fileURLWithPath: path + "-shm"))
        #expect(try Tape(readingAt: path).runs().map(\.label) == ["old, uncheckpointed"])
    }

    @Test func reRecordingReplacesATapeLeftWithAStaleLogAndRemovesTheLog() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("replaced.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await Self.leaveUncheckpointedTape(at: path, sessions: 2, upstream: upstream.endpoint)

        let deck = try await Deck.start(
            .record,
            tape: path,
            routes: [Route(upstream: upstream.endpoint)],
            options: Deck.Options(label: "new", overwrite: true)
        )
        for index in 0..<4 { _ = try await TestClient.exchange(deck.address, "new \(index)") }
        let outcome = try await deck.stop()
        #expect(outcome.recordedSessions == 4)

        for suffix in TapeFiles.sideFileSuffixes { #expect(!FileManager.default.fileExists(atPath: path + suffix)) }
        let tape = try Tape(readingAt: path)
        #expect(try tape.runs().map(\.label) == ["new"])
        #expect(try tape.sessions().count == 4)
        // A read-write open (sqlite3 on the tape) sees the same: nothing is left to be applied to it.
        let count = try await DatabaseQueue(path: path).read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM sessions")
        }
        #expect(count == 4)
    }

    @Test func aNewTapeIsNotShadowedByTheLogOfADeletedOne() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("fresh.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await Self.leaveUncheckpointedTape(at: path, sessions: 3, upstream: upstream.endpoint)
        try FileManager.default.removeItem(atPath: path)  // rm TAPE, leaving TAPE-wal and TAPE-shm

        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: path, label: "fresh") { address in
            _ = try await TestClient.exchange(address, "fresh")
        }
        let tape = try Tape(readingAt: path)
        #expect(try tape.runs().map(\.label) == ["fresh"])
        #expect(try tape.sessions().count == 1)
    }

    @Test func aTapeReplacedWhileRecordingIsNotShadowedByTheRecordersLog() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("checked-out.tape")
        let replacement = directory.path("from-git.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: replacement, label: "committed") {
            address in
            _ = try await TestClient.exchange(address, "committed")
        }

        let failed = AsyncStream<TapedeckError>.makeStream()
        let deck = try await Deck.start(
            .record,
            tape: path,
            routes: [Route(upstream: upstream.endpoint)],
            options: Deck.Options(label: "recording", onRecordingFailure: { failed.continuation.yield($0) })
        )
        _ = try await TestClient.exchange(deck.address, "before")
        // `git checkout` puts another file at the path while the recorder runs.
        #expect(rename(replacement, path) == 0)
        for index in 0..<20 {
            _ = try? await TestClient.exchange(deck.address, "after \(index)")
            try await Task.sleep(for: .milliseconds(50))
        }
        let stream = failed.stream
        let failure = try await withTimeout(.seconds(10)) { await stream.first { _ in true } }
        #expect(failure?.message.contains("was removed or replaced while recording") == true)
        await #expect(throws: TapedeckError.self) { try await deck.stop(drainTimeout: .zero) }

        for suffix in ["-wal", "-shm"] { #expect(!FileManager.default.fileExists(atPath: path + suffix)) }
        let tape = try Tape(readingAt: path)
        #expect(try tape.runs().map(\.label) == ["committed"])
        #expect(try tape.sessions().count == 1)
    }

    @Test func twoRecordersCreatingTheSameTapeBothGetATape() async throws {
        for round in 0..<20 {
            let directory = try TemporaryDirectory()
            let path = directory.path("race-\(round).tape")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask { try Tape(recordingAt: path).close() }
                }
                try await group.waitForAll()
            }
            #expect(try Tape(readingAt: path).sessions().isEmpty)
            // No half-made tape of the loser's left beside it.
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.url.path)
            #expect(!leftovers.contains { $0.contains("creating") })
        }
    }

    @Test func aTapeWhoseCreationFailsLeavesNothingAtItsPath() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("never.tape")
        struct DiskFull: Error {}
        #expect(throws: DiskFull.self) {
            try TapeFiles.createIfMissing(at: path) { temporary in
                #expect(FileManager.default.fileExists(atPath: temporary))
                throw DiskFull()
            }
        }
        // No empty file for `auto` mode to take for a fixture, and no temporary file either.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).isEmpty)
    }
}
