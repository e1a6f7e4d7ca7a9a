import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import Tapedeck

/// Options every long-running command shares: logging and shutdown.
struct RuntimeOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Log level on stderr: trace, debug, info, notice, warning, error, critical (default: info; warning for run).",
            valueName: "level"
        ),
        transform: { text in
            guard let level = Logger.Level(rawValue: text) else {
                throw ValidationError(
                    "invalid log level '\(text)': use one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            return level
        }
    )
    var logLevel: Logger.Level?

    @Option(
        name: .customLong("drain-timeout"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "How long open sessions may run on at shutdown (SIGINT/SIGTERM, or the end of run's command) before they are reset.",
            valueName: "duration"
        ),
        transform: DurationText.parse
    )
    var drainTimeout: Duration = .seconds(5)

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Event loop threads (default: one per core).", valueName: "count")
    )
    var threads: Int?

    func validate() throws {
        if let threads, !(1...256).contains(threads) {
            throw ValidationError("invalid --threads \(threads): use a count from 1 to 256")
        }
    }

    /// The event loops to relay on.
    func makeEventLoopGroup() -> any EventLoopGroup {
        guard let threads else { return MultiThreadedEventLoopGroup.singleton }
        return MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    /// Sets up logging to stderr at the chosen level (or `defaultLevel`) and returns a logger, and raises the
    /// open-file limit that a relay serving many connections needs.
    func makeLogger(label: String, defaultLevel: Logger.Level = .info, raiseOpenFileLimit: Bool = true) -> Logger {
        let level = logLevel ?? defaultLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        if raiseOpenFileLimit { ProcessLimits.raiseOpenFileLimit() }
        return Logger(label: label)
    }
}

/// The line per route that scripts read to learn bound addresses.
enum ListeningAnnouncement {
    /// Prints the deck's lines; if they cannot be written, stops the deck and throws: scripts learn the bound
    /// addresses from these lines, so without them the deck is of no use.
    static func announce(_ deck: Deck) async throws {
        do {
            try print(deck.routes, api: deck.apiAddress, web: deck.webAddress)
        } catch {
            _ = try? await deck.stop(drainTimeout: .zero)
            throw error
        }
    }

    static func print(_ bound: [BoundRoute], api: Endpoint? = nil, web: Endpoint? = nil) throws {
        var text = ""
        for route in bound {
            text += "listening \(TerminalText.escape(route.name)) \(route.address)\n"
        }
        if let api { text += "api \(ControlAPI.url(of: api))\n" }
        if let web { text += "web \(InspectorServer.url(of: web))\n" }
        try StandardStreams.writeOutput(text)
    }
}
