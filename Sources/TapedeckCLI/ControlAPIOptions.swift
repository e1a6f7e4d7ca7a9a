import ArgumentParser
import Tapedeck

/// `--api ADDR`: serve the control API (Toxiproxy's REST API and Tapedeck's own) on `proxy`, `record`, `replay`
/// and `run`.
struct ControlAPIOptions: ParsableArguments {
    @Option(
        name: .customLong("api"),
        help: ArgumentHelp(
            "Serve the control API (Toxiproxy's REST API) on this address, as 127.0.0.1:8474; off by default. "
                + "proxy and record may then start with no route and take theirs from the API.",
            valueName: "address"
        ),
        transform: Endpoint.init(parsing:)
    )
    var address: Endpoint?

    func validate() throws {
        if let address, address.isDatagram {
            throw ValidationError("invalid --api \(address): the control API speaks HTTP over TCP; give HOST:PORT")
        }
    }

    /// The routes of a command that creates its routes: none when the API is on and no route flag was given,
    /// as `toxiproxy-server` starts with none; else the flags' routes, checked for `mode`.
    func routes(
        _ named: NamedRouteOptions,
        for mode: TapedeckMode,
        missingUpstream: String = "missing --upstream (or --config FILE)"
    ) throws -> [Route] {
        try configuration(named, for: mode, missingUpstream: missingUpstream)?.routes ?? []
    }

    /// The configuration behind ``routes(_:for:missingUpstream:)``: nil when the API is on and no route flag was
    /// given.
    func configuration(
        _ named: NamedRouteOptions,
        for mode: TapedeckMode,
        missingUpstream: String = "missing --upstream (or --config FILE)"
    ) throws -> ProxyConfiguration? {
        let given = named.routes
        if address != nil, given.config == nil, given.upstream == nil, given.listen == nil { return nil }
        return try named.configuration(for: mode, missingUpstream: missingUpstream)
    }
}
