import ArgumentParser
import Foundation
import Logging
import Tapedeck

/// `tapedeck proxy`: relay each route's connections to its upstream, recording nothing.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Relay connections to an upstream, byte for byte.",
        discussion: """
            Once every listener is bound, prints one line per route on stdout: 'listening <route> <address>'. \
            Logs go to stderr. SIGINT or SIGTERM stops accepting and lets open sessions finish for up to \
            --drain-timeout; a second signal exits at once.
            """
    )

    @OptionGroup var routes: NamedRouteOptions
    @OptionGroup var tls: TLSOptions
    @OptionGroup var api: ControlAPIOptions
    @OptionGroup var faults: FaultOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() async throws {
        TerminationSignals.catchEarly()
        let logger = runtime.makeLogger(label: "tapedeck.proxy")
        let deck = try await Deck.start(
            .proxy,
            tape: nil,
            routes: tls.applied(to: try api.routes(routes, for: .proxy)),
            options: try {
                var options = Deck.Options(
                    group: runtime.makeEventLoopGroup(),
                    logger: logger,
                    onWarning: CommandLineWarning.print,
                    drainTimeout: runtime.drainTimeout
                )
                options.certificateAuthorityDirectory = tls.certificateAuthorityDirectory
                options.api = api.address
                try faults.apply(to: &options, logger: logger)
                return options
            }()
        )
        try await ListeningAnnouncement.announce(deck)
        try await TerminationSignals.serve(deck, logger: logger) { [drainTimeout = runtime.drainTimeout] in
            logger.info(
                "shutting down",
                metadata: ["tapedeck.drain-timeout": "\(DurationText.format(drainTimeout))"]
            )
        }
    }
}
