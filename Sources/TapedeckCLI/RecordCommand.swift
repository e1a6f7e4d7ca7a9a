import ArgumentParser
import Foundation
import Logging
import Tapedeck

/// `tapedeck record`: relay like `proxy`, and write every session into a tape.
struct RecordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Relay connections to an upstream and record every session into a tape.",
        discussion: """
            Relays exactly like 'tapedeck proxy' and appends a new run to the tape (a SQLite file, created with \
            mode 0600). If the tape cannot be written, Tapedeck says so on stderr, stops accepting, and exits 1.
            """
    )

    @OptionGroup var routes: RouteOptions

    @Option(help: ArgumentHelp("The tape file to record into.", valueName: "file"))
    var tape: String

    @Option(help: ArgumentHelp("A label stored with this recording run.", valueName: "text"))
    var label: String?

    @Flag(help: "Start a fresh tape instead of appending a run to an existing one.")
    var overwrite = false

    @OptionGroup var runtime: RuntimeOptions

    func run() async throws {
        let logger = runtime.makeLogger(label: "tapedeck.record")
        let configuration = try routes.configuration()
        let tapeFile = try Tape(recordingAt: tape, overwrite: overwrite)
        let stop = StopRequests()
        let recorder = try Recorder(tape: tapeFile, routes: configuration.routes, label: label) { error in
            stop.request(.recordingFailed(error))
        }
        let server = ProxyServer(configuration: configuration, group: try runtime.makeEventLoopGroup(), recorder: recorder, logger: logger)
        let bound: [BoundRoute]
        do {
            bound = try await server.start()
        } catch {
            try? await recorder.finish()
            throw error
        }
        ListeningAnnouncement.print(bound)
        TerminationSignals.install { _ in stop.request(.signal) }

        switch await stop.next() {
        case .signal:
            logger.info("shutting down", metadata: ["tapedeck.drain-timeout": "\(DurationText.format(runtime.drainTimeout))"])
            await server.shutdown(drainTimeout: runtime.drainTimeout)
        case .recordingFailed(let error):
            FileHandle.standardError.write(
                Data("tapedeck: error: \(error.message); stopped accepting, the recording is incomplete\n".utf8)
            )
            await server.shutdown(drainTimeout: .zero)
        }
        try await recorder.finish()
        let count = try recorder.sessionCount()
        logger.info("recorded", metadata: ["tapedeck.sessions": "\(count)", "tapedeck.tape": "\(tape)"])
    }
}

/// Why a long-running command should stop, from whichever source asks first.
final class StopRequests: Sendable {
    enum Reason: Sendable {
        case signal
        case recordingFailed(TapedeckError)
    }

    private let stream: AsyncStream<Reason>
    private let continuation: AsyncStream<Reason>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Reason.self)
    }

    func request(_ reason: Reason) {
        continuation.yield(reason)
    }

    func next() async -> Reason {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next() ?? .signal
    }
}
