import ArgumentParser
import Tapedeck

/// The ways to give routes on the command line: one route by flags, or many from a config file.
///
/// Shared by every command that serves routes. The flag that names the single route is each command's own:
/// `--name` where the command creates the route (see ``NamedRouteOptions``), `--route` for `replay`, which picks
/// one of the tape's.
struct RouteOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Address to accept clients on: HOST:PORT, [IPv6]:PORT, unix:/path or udp:HOST:PORT.",
            valueName: "address"
        ),
        transform: Endpoint.init(parsing:)
    )
    var listen: Endpoint?

    @Option(
        help: ArgumentHelp(
            "Address to relay to: HOST:PORT, [IPv6]:PORT, unix:/path or udp:HOST:PORT.",
            valueName: "address"
        ),
        transform: Endpoint.init(parsing:)
    )
    var upstream: Endpoint?

    @Option(
        help: ArgumentHelp(
            "YAML or JSON file listing routes (name, listen, upstream, connect_timeout).",
            valueName: "file"
        )
    )
    var config: String?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "How long an upstream connect may take before the client is reset. (default: 5s)",
            valueName: "duration"
        ),
        transform: DurationText.parse
    )
    var connectTimeout: Duration = Route.defaultConnectTimeout

    @Flag(
        help: ArgumentHelp(
            "The route carries DNS: replay matches queries by question, whatever their id (automatic for upstream "
                + "port 53; the tape remembers it)."
        )
    )
    var dns = false

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "How long a UDP flow (one client address) may go without a datagram before it ends. (default: 30s)",
            valueName: "duration"
        ),
        transform: DurationText.parse
    )
    var udpIdleTimeout: Duration = Route.defaultUDPIdleTimeout

    @Option(
        name: .customLong("protocol"),
        help: ArgumentHelp(
            "The protocol lens replay sees the route through: auto (recognized per session), raw (byte for byte), "
                + "mysql, http2 or websocket. The tape remembers it. (default: auto)",
            valueName: "name"
        ),
        transform: { try ProtocolLens(parsing: $0) }
    )
    var lens: ProtocolLens = .auto

    /// The routes these options give, checked for what `mode` needs: the one place the command line checks that
    /// routes have their upstream.
    ///
    /// Called from `run()` rather than `validate()`: the parser validates before it reports unknown options, and
    /// `tapedeck proxy --bogus` should say that `--bogus` is unknown, not that `--upstream` is missing. Bad flag
    /// values are usage errors (exit 2); a config file that cannot be read or parsed is a runtime error (exit 1).
    ///
    /// - Parameters:
    ///   - name: The name of the single route the flags give; unused with `--config`, whose file names its routes.
    ///   - mode: What the routes are served for; when it connects to upstreams (see
    ///     ``TapedeckMode/needsUpstream``), every route needs one.
    ///   - missingUpstream: What to say when `mode` needs an upstream and neither `--upstream` nor `--config` gave
    ///     one, in the words of the command's own flags.
    func configuration(
        name: String,
        for mode: TapedeckMode,
        missingUpstream: String = "missing --upstream (or --config FILE)"
    ) throws -> ProxyConfiguration {
        if config != nil, listen != nil || upstream != nil {
            throw ValidationError("--config cannot be combined with --listen or --upstream")
        }
        if let config {
            return try ProxyConfiguration.load(
                path: config,
                defaultConnectTimeout: connectTimeout,
                defaultUDPIdleTimeout: udpIdleTimeout,
                dns: dns,
                lens: lens,
                requireUpstream: mode.needsUpstream
            )
        }
        if mode.needsUpstream, upstream == nil { throw ValidationError(missingUpstream) }
        do {
            let route = Route(
                name: name,
                listen: listen ?? Route.defaultListen,
                upstream: upstream,
                connectTimeout: connectTimeout,
                dns: dns,
                udpIdleTimeout: udpIdleTimeout,
                lens: lens
            )
            return try ProxyConfiguration(routes: [route])
        } catch let error as TapedeckError {
            throw ValidationError(error.message)
        }
    }
}
