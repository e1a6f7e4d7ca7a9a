import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import Tapedeck
import UnixSignals

/// `tapedeck web`: a read-only web inspector for a tape.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Inspect a tape in a web browser.",
        discussion:
            "Serves a read-only inspector (the sessions, each session as a ladder of events, and a replay report's "
            + "mismatches) and prints `web URL` once listening. Stops on SIGINT or SIGTERM."
    )

    @Argument(help: ArgumentHelp("The tape to inspect.", valueName: "tape"))
    var tape: String

    @Option(
        help: ArgumentHelp("A replay report written by `replay --report`, to show its mismatches.", valueName: "file")
    )
    var report: String?

    @Option(
        help: ArgumentHelp("The address to serve on; port 0 picks a free one.", valueName: "address"),
        transform: Endpoint.init(parsing:)
    )
    var listen: Endpoint = .tcp(host: "127.0.0.1", port: 0)

    @Flag(help: "Do not open the page in a browser (it is opened only where a desktop is present).")
    var noOpen = false

    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"),
        transform: { text in
            guard let level = Logger.Level(rawValue: text) else {
                throw ValidationError(
                    "invalid --log-level '\(text)': use trace, debug, info, notice, warning, error or critical"
                )
            }
            return level
        }
    )
    var logLevel: Logger.Level = .notice

    func validate() throws {
        if listen.isDatagram {
            throw ValidationError("invalid --listen \(listen): the web inspector speaks HTTP over TCP; give HOST:PORT")
        }
    }

    func run() async throws {
        TerminationSignals.catchEarly()
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "tapedeck.web")
        let reportValue = try report.map(InspectorSource.readReport(at:))
        if !listen.isLoopback {
            CommandLineWarning.print(
                "the web inspector listens on \(listen), beyond loopback: anyone who can reach that address can read "
                    + "the tape"
            )
        }
        let server = try await InspectorServer.start(
            source: InspectorSource(tapePath: tape, report: reportValue),
            address: listen,
            logger: logger
        )
        do {
            try StandardStreams.writeOutput("web \(server.url)\n")
        } catch {
            await server.stop()
            throw error
        }
        if !noOpen { BrowserOpener.open(server.url) }
        await TerminationSignals.waitForTermination()
        await server.stop()
    }
}

/// Opens a URL in the desktop's browser, where there is a desktop: a best effort that never fails the command.
enum BrowserOpener {
    static func open(_ url: String) {
        #if os(macOS)
        let opener = "/usr/bin/open"
        #else
        let environment = ProcessInfo.processInfo.environment
        // Without a display there is no browser to show the page in; the printed URL is what the user gets.
        guard environment["DISPLAY"] != nil || environment["WAYLAND_DISPLAY"] != nil else { return }
        guard
            let opener = ["/usr/bin/xdg-open", "/usr/local/bin/xdg-open"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else { return }
        #endif
        let process = Process()
        process.executableURL = URL(fileURLWithPath: opener)
        process.arguments = [url]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
    }
}
