import ArgumentParser
import Tapedeck

/// The TLS flags of `proxy`, `record`, `replay` and `run`: a route's TLS mode, how the upstream is trusted, the
/// certificate served, and where the local CA lives.
struct TLSOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "TLS on the route: off (bytes pass as they are), intercept (terminate the client's TLS and originate "
                + "TLS upstream; the tape holds plaintext), terminate (client side only) or originate (upstream "
                + "side only). (default: off)",
            valueName: "mode"
        )
    )
    var tls: TLSSettings.Mode?

    @Option(
        help: ArgumentHelp("PEM certificates trusted for the upstream, besides the system's.", valueName: "file")
    )
    var upstreamCA: String?

    @Flag(help: "Do not verify the upstream's certificate.")
    var insecureUpstream = false

    @Option(help: ArgumentHelp("A PEM certificate (chain) to serve instead of the local CA's.", valueName: "file"))
    var cert: String?

    @Option(help: ArgumentHelp("The PEM private key of --cert.", valueName: "file"))
    var key: String?

    @Option(
        help: ArgumentHelp(
            "The local CA's directory (default: $TAPEDECK_CA_DIR, else the user's data directory).",
            valueName: "dir"
        )
    )
    var caDir: String?

    /// The routes with the flags given applied to each; a route's own `tls:` settings stand where no flag is given.
    func applied(to routes: [Route]) -> [Route] {
        routes.map { route in
            var route = route
            if let tls { route.tls.mode = tls }
            if let upstreamCA { route.tls.upstreamCA = upstreamCA }
            if insecureUpstream { route.tls.insecureUpstream = true }
            if let cert { route.tls.certificate = cert }
            if let key { route.tls.key = key }
            return route
        }
    }

    /// The CA directory for the deck's options.
    var certificateAuthorityDirectory: String? {
        caDir
    }
}

extension TLSSettings.Mode: ExpressibleByArgument {}
