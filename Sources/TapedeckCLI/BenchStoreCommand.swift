import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck bench-store`: the recorder's store path alone, for `scripts/bench`. Hidden from help.
struct BenchStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-store",
        abstract: "Measure the tape writer's insert rate (used by scripts/bench).",
        shouldDisplay: false
    )

    @Option(help: "The scratch tape to write (overwritten).")
    var tape: String

    @Option(help: "Number of data events.")
    var events: Int = 1_000_000

    @Option(help: "Payload bytes per event.")
    var size: Int = 64

    @Option(help: "Sessions the events are spread over.")
    var sessions: Int = 64

    @Option(help: "SQLite page size of the scratch tape.")
    var pageSize: Int = Tape.pageSize

    func run() async throws {
        guard events > 0, size >= 0, sessions > 0 else {
            throw ValidationError("--events and --sessions must be positive")
        }
        let result = try await StoreBenchmark.run(
            tapePath: tape,
            events: events,
            payloadSize: size,
            sessions: sessions,
            pageSize: pageSize
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var json = try JSONSerialization.jsonObject(with: encoder.encode(result)) as? [String: Any] ?? [:]
        json["events_per_second"] = result.eventsPerSecond
        json["megabytes_per_second"] = result.megabytesPerSecond
        let data = try JSONSerialization.data(withJSONObject: json, options: .sortedKeys)
        try StandardStreams.writeOutput(String(decoding: data, as: UTF8.self) + "\n")
    }
}

/// `tapedeck bench-replay-choice`: the cost of choosing a session, by tape size, for `scripts/bench`. Hidden.
struct BenchReplayChoiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-replay-choice",
        abstract: "Measure the time replay takes to choose a session (used by scripts/bench).",
        shouldDisplay: false
    )

    @Option(help: "Sessions in the synthetic tape.")
    var sessions: Int = 10_000

    @Option(help: "Connections to play.")
    var connections: Int = 20_000

    func run() throws {
        guard sessions > 0, connections > 0 else {
            throw ValidationError("--sessions and --connections must be positive")
        }
        let nanoseconds = ReplayChoiceBenchmark.run(sessions: sessions, connections: connections)
        let json = try JSONSerialization.data(
            withJSONObject: [
                "sessions": sessions, "connections": connections, "nanoseconds_per_connection": nanoseconds,
            ],
            options: .sortedKeys
        )
        try StandardStreams.writeOutput(String(decoding: json, as: UTF8.self) + "\n")
    }
}
