import ArgumentParser
import Foundation
import TapedeckWorkloads

/// `tapedeck-microbench`: the micro-benchmark workloads as one-shot commands that print one line of JSON, for
/// `scripts/bench`, which compares them with the real proxy.
@main
struct Microbench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tapedeck-microbench",
        abstract: "Run one Tapedeck micro-benchmark workload and print its result as JSON.",
        subcommands: [Store.self, ReplayChoice.self]
    )
}

extension Microbench {
    /// `tapedeck-microbench store`: the tape writer's insert rate.
    struct Store: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write data events into a scratch tape through the recorder's store path, with no network."
        )

        @Option(help: "The scratch tape to write (overwritten).")
        var tape: String

        @Option(help: "Number of data events.")
        var events: Int = 1_000_000

        @Option(help: "Payload bytes per event.")
        var size: Int = 64

        @Option(help: "Sessions the events are spread over.")
        var sessions: Int = 64

        @Option(help: "SQLite page size of the scratch tape (default: the one new tapes get).")
        var pageSize: Int?

        func validate() throws {
            guard events > 0, size >= 0, sessions > 0 else {
                throw ValidationError("--events and --sessions must be positive, --size not negative")
            }
        }

        func run() async throws {
            var workload = StoreWorkload(events: events, payloadSize: size, sessions: sessions)
            if let pageSize { workload.pageSize = pageSize }
            let result = try await workload.run(tapePath: tape)
            try printJSON([
                "events": result.events,
                "payloadBytes": result.payloadBytes,
                "seconds": result.seconds,
                "tapeBytes": result.tapeBytes,
                "events_per_second": result.eventsPerSecond,
                "megabytes_per_second": result.megabytesPerSecond,
            ])
        }
    }

    /// `tapedeck-microbench replay-choice`: the cost of choosing a session, by tape size.
    struct ReplayChoice: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure the time replay takes to choose a session among a synthetic tape's, without sockets."
        )

        @Option(help: "Sessions in the synthetic tape.")
        var sessions: Int = 10_000

        @Option(help: "Connections to play.")
        var connections: Int = 20_000

        func validate() throws {
            guard sessions > 0, connections > 0 else {
                throw ValidationError("--sessions and --connections must be positive")
            }
        }

        func run() throws {
            let workload = ReplayChoiceWorkload(sessions: sessions)
            let nanoseconds = try workload.nanosecondsPerConnection(connections: connections)
            try printJSON([
                "sessions": sessions, "connections": connections, "nanoseconds_per_connection": nanoseconds,
            ])
        }
    }
}

private func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: .sortedKeys)
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}
