import Foundation
import NIOPosix

/// The fuzz harness for reading tapes: a tape file of any bytes goes through what `sessions`, `show`, `grep`,
/// `stats` and `export` read, and through replay's loading of a tape into its catalogs.
///
/// Tapes are files people commit, download and hand around: a damaged or hand-edited one must give a one-line
/// error, never a crash. The inspect commands print what they read; here it is formatted the same way and
/// written to `/dev/null`, so that formatting sees the values a tape can hold.
enum TapeFuzzing {
    /// Sessions whose events are read one by one, played against their own client, per input: enough to reach
    /// every kind of event, few enough to keep an execution fast.
    static let sessionsPerInput = 8

    /// Writes `data` to `path` as a tape (removing SQLite's side files of the previous input first) and reads it
    /// every way Tapedeck reads tapes. Returns the first problem seen.
    static func read(_ data: Data, at path: String) -> FuzzFinding? {
        for suffix in ["-wal", "-shm", "-journal"] { unlink(path + suffix) }
        guard FileManager.default.createFile(atPath: path, contents: data) else {
            return FuzzFinding("cannot write the input to '\(path)'")
        }
        defer {
            for suffix in ["", "-wal", "-shm", "-journal"] { unlink(path + suffix) }
        }
        let tape: Tape
        do {
            tape = try Tape(readingAt: path)
        } catch {
            return FuzzFinding.checkRejection(error, input: "opening the tape")
        }
        let output = OutputBuffer(descriptor: nullDevice)
        var sessions: [SessionSummary] = []
        let steps: [(String, () throws -> Void)] = [
            ("sessions", { sessions = try listSessions(tape, output) }),
            ("sessions with filters", { try listFiltered(tape, like: sessions.first, output) }),
            ("show", { try show(tape, sessions.prefix(sessionsPerInput).map(\.id), output) }),
            ("grep", { try grep(tape, output) }),
            ("stats", { try statistics(tape, output) }),
            ("export jsonl", { try TapeExporter.export(tape, sessions: [], format: .jsonl, to: output) }),
            ("export pcapng", { try TapeExporter.export(tape, sessions: [], format: .pcapng, to: output) }),
            ("replay", { try replay(tape) }),
        ]
        // Closed before the file goes, as a command closes its tape before exiting.
        defer { try? tape.close() }
        for (name, step) in steps {
            do {
                try step()
            } catch let finding as FuzzFinding {
                return finding
            } catch {
                if let finding = FuzzFinding.checkRejection(error, input: name) { return finding }
            }
        }
        return nil
    }

    /// Where the commands' output goes.
    private static let nullDevice = open("/dev/null", O_WRONLY | O_CLOEXEC)

    /// `tapedeck sessions`, as JSON and as table cells.
    private static func listSessions(_ tape: Tape, _ output: OutputBuffer) throws -> [SessionSummary] {
        var sessions: [SessionSummary] = []
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        try tape.forEachSession(matching: SessionQuery()) { session in
            output.write(bytes: try encoder.encode(session))
            output.write(InspectFormat.timestamp(session.startedAt))
            output.write(session.durationNanoseconds.map(InspectFormat.duration) ?? "-")
            output.write(TerminalText.escape(session.route) + (session.label.map(TerminalText.escape) ?? "-"))
            output.write(TerminalText.escape(session.client) + TerminalText.escape(session.upstream))
            sessions.append(session)
        }
        return sessions
    }

    /// `tapedeck sessions --route --label --outcome --since --limit`, with the first session's values, and
    /// `--since` as a date too (the library's other way in).
    private static func listFiltered(_ tape: Tape, like first: SessionSummary?, _ output: OutputBuffer) throws {
        guard let first else { return }
        var query = SessionQuery(route: first.route, label: first.label, outcome: first.outcome, limit: 1_000)
        query.sinceNanoseconds = first.startedAt
        query.includeProbes = false
        try tape.forEachSession(matching: query) { output.write(InspectFormat.timestamp($0.startedAt)) }
        let since = SessionQuery(since: Date(timeIntervalSince1970: Double(first.startedAt) / 1e9))
        try tape.forEachSession(matching: since) { output.write(InspectFormat.timestamp($0.startedAt)) }
    }

    /// `tapedeck show`, as a ladder (text and hexdump) and as JSON; and a session the tape does not have.
    private static func show(_ tape: Tape, _ ids: [Int64], _ output: OutputBuffer) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for id in ids {
            try tape.forEachSession(matching: SessionQuery(id: id)) { output.write(bytes: try encoder.encode($0)) }
            try tape.forEachEvent(inSession: id) { event in
                output.write(InspectFormat.duration(event.offsetNanoseconds))
                let payload = (event.payload ?? Data()).prefix(1024)
                output.write(ByteExcerpt.render(payload))
                output.write(InspectFormat.hexdump(payload, indent: "    "))
                output.write(bytes: try encoder.encode(EventLine(event)))
            }
        }
        let missing = (ids.max() ?? 0) &+ 1
        do {
            try tape.forEachEvent(inSession: missing) { _ in }
        } catch is TapedeckError {
            // The answer for a session the tape lacks.
        }
    }

    /// `tapedeck grep`, for bytes and for a regular expression.
    private static func grep(_ tape: Tape, _ output: OutputBuffer) throws {
        for pattern in [TapeSearch.Pattern.bytes(Data("PING".utf8)), .regex("[A-Z]+\\r\\n")] {
            try TapeSearch(pattern).forEachMatch(in: tape) { match in
                output.write("\(match.sessionID) \(match.seq) \(match.offset) " + ByteExcerpt.render(match.excerpt))
            }
        }
    }

    /// `tapedeck stats`, as JSON and as text.
    private static func statistics(_ tape: Tape, _ output: OutputBuffer) throws {
        let statistics = try TapeStatistics(tape: tape)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        output.write(bytes: try encoder.encode(statistics))
        for group in statistics.groups { output.write(InspectFormat.duration(group.durationNanoseconds)) }
        for session in statistics.largest { output.write("\(session.clientBytes + session.upstreamBytes)") }
    }

    /// `tapedeck replay`: the tape loaded into a server's catalogs for every route it has, and some of its
    /// sessions played against their own recorded client, at the recorded pace.
    private static func replay(_ tape: Tape) throws {
        let routes = try ReplayServer.routeNames(in: tape).map { Route(name: $0) }
        let server = try ReplayServer(tape: tape, routes: routes, group: MultiThreadedEventLoopGroup.singleton)
        _ = server.report
        var played = 0
        for (_, scripts) in try tape.replayScripts().sorted(by: { $0.key < $1.key }) {
            for script in scripts where played < sessionsPerInput {
                played += 1
                let chunkSize: (Int) -> Int = { 1 + $0 % 7 }
                if let finding = MatcherFuzzing.playOwnClient(
                    of: script,
                    chunkSize: chunkSize,
                    pace: .recorded(factor: 1)
                ) {
                    throw finding
                }
            }
        }
    }
}
