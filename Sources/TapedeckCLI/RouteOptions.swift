import ArgumentParser
import Tapedeck

/// The ways to name routes on the command line: one route by flags, or many from a config file.
struct RouteOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("Address to accept clients on: HOST:PORT, [IPv6]:PORT or unix:/path.", valueName: "address")
    )
    var listen: String?

    @Option(help: ArgumentHelp("Address to relay to: HOST:PORT, [IPv6]:PORT or unix:/path.", valueName: "address"))
    var upstream: String?

    @Option(help: ArgumentHelp("Name of the single route, used in logs and output.", valueName: "name"))
    var name: String = Route.defaultName

    @Option(
        help: ArgumentHelp(
            "YAML or JSON file listing routes (name, listen, upstream, connect_timeout).",
            valueName: "file"
        )
    )
    var config: String?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("How long an upstream connect may take before the client is reset.", valueName: "duration")
    )
    var connectTimeout: String = "5s"

    /// The routes these options name.
    ///
    /// Flags are checked here, from `run()`, rather than in `validate()`: the parser validates before it
    /// reports unknown options, and an unknown option is the more useful message. Bad flag values are usage
    /// errors (exit 2); a config file that cannot be read or parsed is a runtime error (exit 1).
    ///
    /// - Parameter requireUpstream: Whether the routes must name an upstream; replay can do without.
    func configuration(requireUpstream: Bool = true) throws -> ProxyConfiguration {
        if config != nil, listen != nil || upstream != nil {
            throw ValidationError("--config cannot be combined with --listen or --upstream")
        }
        let timeout = try asUsageError { try DurationText.parse(connectTimeout) }
        if let config {
            return try ProxyConfiguration.load(
                path: config,
                defaultConnectTimeout: timeout,
                requireUpstream: requireUpstream
            )
        }
        if requireUpstream, upstream == nil { throw ValidationError("missing --upstream (or --config FILE)") }
        return try asUsageError {
            let route = Route(
                name: name,
                listen: try listen.map(Endpoint.init(parsing:)) ?? Route.defaultListen,
                upstream: try upstream.map(Endpoint.init(parsing:)),
                connectTimeout: timeout
            )
            return try ProxyConfiguration(routes: [route])
        }
    }

    private func asUsageError<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as TapedeckError {
            throw ValidationError(error.message)
        }
    }
}
