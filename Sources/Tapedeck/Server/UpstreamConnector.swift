import Logging
import NIOCore
import NIOPosix

/// Opens an upstream connection the way every relay in Tapedeck does: on the client's event loop, so the two
/// channels of a session never cross threads, with half-closure allowed and no Nagle delay.
enum UpstreamConnector {
    /// Connects to `upstream` within `timeout`, running `initialize` on the new channel before it connects.
    static func connect(
        to upstream: Endpoint,
        timeout: Duration,
        on loop: any EventLoop,
        initialize: @escaping @Sendable (any Channel) throws -> Void
    ) -> EventLoopFuture<any Channel> {
        // Options are set synchronously in the initializer rather than as bootstrap options, which are applied
        // one future at a time; TCP_NODELAY is the bootstrap's default.
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout.timeAmount)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try RelaySocket.setOptions(on: channel, autoRead: true)
                    try initialize(channel)
                }
            }
        switch upstream {
        case .tcp(let host, let port):
            // An IP literal needs no resolver; a host name is resolved for each connection.
            if let address = upstream.literalAddress { return bootstrap.connect(to: address) }
            return bootstrap.connect(host: host, port: port)
        case .unix(let path):
            return bootstrap.connect(unixDomainSocketPath: path)
        case .udp:
            // Routes are checked to pair streams with streams; a datagram upstream has a relay of its own.
            return loop.makeFailedFuture(
                TapedeckError(.invalidConfiguration, "upstream \(upstream) carries datagrams, not a stream")
            )
        }
    }

    /// What every relay does when the upstream cannot be reached: one log line saying why, and the failed
    /// connect on tape when recording. The caller then resets the client.
    static func reportFailure(
        _ error: any Error,
        route: Route,
        client: any Channel,
        session: SessionRecorder?,
        logger: Logger
    ) {
        let reason = SocketErrorText.describe(error)
        logger.warning(
            "upstream connect failed, resetting client",
            metadata: [
                "tapedeck.route": "\(route.name)", "tapedeck.upstream": "\(route.upstreamText)",
                "tapedeck.client": "\(client.remoteAddress.map { "\(Endpoint($0))" } ?? "?")",
                "tapedeck.reason": "\(reason)",
            ]
        )
        session?.recordConnectFailed(reason: reason, outcome: SessionOutcome(connectError: error))
    }
}
