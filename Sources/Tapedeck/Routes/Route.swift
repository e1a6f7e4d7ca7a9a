/// One listener and the upstream it relays to.
///
/// A proxy process serves one or more routes; each accepted connection on a route's listener gets its own
/// upstream connection. Replay needs no upstream: there a route's name picks the tape's sessions, and the
/// upstream is used only to record sessions the tape is missing.
public struct Route: Sendable, Hashable {
    /// The name used in logs and in the `listening <route> <address>` line. Unique within a configuration.
    public var name: String
    /// Where to accept client connections. Port 0 picks a free port.
    public var listen: Endpoint
    /// Where to connect for each accepted client. Proxying and recording need it; replay does not.
    public var upstream: Endpoint?
    /// How long to wait for the upstream connection before resetting the client.
    public var connectTimeout: Duration
    /// The rules recording and replay apply to the route's sessions: volatile spans and redactions. Stored in a
    /// tape with the route, so that replay applies them without being told again.
    public var rules: [Rule]
    /// Whether and how the route speaks TLS (see ``TLSSettings``); off by default.
    public var tls: TLSSettings
    /// Whether the route carries DNS, so that replay matches queries by their question rather than by their
    /// bytes (see ``isDNS``). Stored in a tape with the route, so that replay needs no flag.
    public var dns: Bool
    /// How long a UDP flow (one client address) may go without a datagram either way before it ends and its
    /// upstream socket is closed. Unused on stream routes.
    public var udpIdleTimeout: Duration
    /// Which protocol lens replay sees the route's sessions through (see ``ProtocolLens``): recognized from each
    /// session's first bytes unless named. Stored in a tape with the route.
    public var lens: ProtocolLens

    /// The default time a UDP flow may stay idle.
    public static let defaultUDPIdleTimeout: Duration = .seconds(30)

    /// The default time allowed for an upstream connect.
    public static let defaultConnectTimeout: Duration = .seconds(5)
    /// The route name used when a single route is given without one.
    public static let defaultName = "default"
    /// The default listen address: loopback, any free port.
    public static let defaultListen = Endpoint.tcp(host: "127.0.0.1", port: 0)

    /// Creates a route.
    ///
    /// - Parameters:
    ///   - name: The route's name; must be non-empty and free of whitespace.
    ///   - listen: Where to accept clients. Defaults to `127.0.0.1:0`.
    ///   - upstream: Where to connect for each client; `nil` for a route that is only replayed.
    ///   - connectTimeout: How long an upstream connect may take. Defaults to 5 seconds.
    ///   - rules: Volatile spans and redactions (see ``Rule``).
    ///   - tls: Whether and how the route speaks TLS.
    ///   - dns: Whether the route carries DNS; a route whose upstream port is 53 does anyway.
    ///   - udpIdleTimeout: How long a UDP flow may stay idle before it ends. Defaults to 30 seconds.
    ///   - lens: Which protocol lens replay uses; recognized per session by default.
    public init(
        name: String = Route.defaultName,
        listen: Endpoint = Route.defaultListen,
        upstream: Endpoint? = nil,
        connectTimeout: Duration = Route.defaultConnectTimeout,
        rules: [Rule] = [],
        tls: TLSSettings = .off,
        dns: Bool = false,
        udpIdleTimeout: Duration = Route.defaultUDPIdleTimeout,
        lens: ProtocolLens = .auto
    ) {
        self.lens = lens
        self.tls = tls
        self.dns = dns
        self.udpIdleTimeout = udpIdleTimeout
        self.rules = rules
        self.name = name
        // A datagram upstream with the default listen address listens for datagrams too: the transport given once
        // is enough.
        self.listen = listen == Route.defaultListen && upstream?.isDatagram == true ? listen.asDatagram : listen
        self.upstream = upstream
        self.connectTimeout = connectTimeout
    }

    /// Whether the route carries datagrams: it listens on a `udp:` address.
    public var isDatagram: Bool {
        listen.isDatagram
    }

    /// Whether replay treats the route's messages as DNS: it was marked so, or its upstream port is 53.
    public var isDNS: Bool {
        dns || upstream?.port == 53
    }

    /// The upstream, or an error naming the route and what needed it.
    func requireUpstream(for purpose: String) throws -> Endpoint {
        guard let upstream else {
            throw TapedeckError(.invalidConfiguration, "route '\(name)' has no upstream, which \(purpose) needs")
        }
        return upstream
    }

    /// The upstream as stored in a tape: its address, or empty for a route without one.
    var upstreamText: String {
        upstream.map { "\($0)" } ?? ""
    }
}
