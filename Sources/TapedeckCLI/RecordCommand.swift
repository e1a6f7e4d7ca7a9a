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

    @OptionGroup var routes: NamedRouteOptions

    @Option(help: ArgumentHelp("The tape file to record into.", valueName: "file"))
    var tape: String

    @Option(help: ArgumentHelp("A label stored with this recording run.", valueName: "text"))
    var label: String?

    @Flag(help: "Start a fresh tape instead of appending a run to an existing one.")
    var overwrite = false

    @OptionGroup var rules: RuleOptions

    @OptionGroup var tls: TLSOptions

    @OptionGroup var api: ControlAPIOptions

    @OptionGroup var web: WebOptions

    @OptionGroup var faults: FaultOptions

    @OptionGroup var runtime: RuntimeOptions

    func run() async throws {
        TerminationSignals.catchEarly()
        let logger = runtime.makeLogger(label: "tapedeck.record")
        let deck = try await Deck.start(
            .record,
            tape: tape,
            routes: tls.applied(to: try rules.applied(to: try api.routes(routes, for: .record))),
            options: try {
                var options = Deck.Options(
                    label: label,
                    overwrite: overwrite,
                    group: runtime.makeEventLoopGroup(),
                    logger: logger,
                    // Nothing more can be recorded: the deck stops at once and resets what is open. The failure is
                    // said once, below, as the error its stop throws.
                    onRecordingFailure: { _ in },
                    onWarning: CommandLineWarning.print,
                    drainTimeout: runtime.drainTimeout
                )
                options.certificateAuthorityDirectory = tls.certificateAuthorityDirectory
                options.api = api.address
                options.web = web.address
                try faults.apply(to: &options, logger: logger)
                return options
            }()
        )
        try await ListeningAnnouncement.announce(deck)
        let outcome: DeckOutcome
        do {
            try await TerminationSignals.serve(deck, logger: logger) { [drainTimeout = runtime.drainTimeout] in
                logger.info(
                    "shutting down",
                    metadata: ["tapedeck.drain-timeout": "\(DurationText.format(drainTimeout))"]
                )
            }
            outcome = try await deck.stop()
        } catch let error as TapedeckError where error.code == .recordingFailed {
            let message =
                error.message.hasSuffix("the recording is incomplete")
                ? error.message : error.message + "; stopped accepting, the recording is incomplete"
            throw TapedeckError(.recordingFailed, message)
        }
        logger.info(
            "recorded",
            metadata: ["tapedeck.sessions": "\(outcome.recordedSessions)", "tapedeck.tape": "\(tape)"]
        )
    }
}
