import Logging
import NIOCore
import NIOPosix

extension Listener {
    /// Binds a UDP route's `listen` address: one socket per event loop sharing the port through `SO_REUSEPORT`,
    /// which the kernel spreads datagrams over by the client's address, so that every datagram of a flow reaches
    /// the same loop and the same flow table.
    ///
    /// - Parameters:
    ///   - makeHandler: The handler for one listening socket, made on its event loop.
    /// - Throws: ``TapedeckError`` with code `listenFailed`, naming the address and route.
    static func bindDatagram(
        _ listen: Endpoint,
        routeName: String,
        group: any EventLoopGroup,
        makeHandler: @escaping @Sendable (any EventLoop) -> any ChannelHandler
    ) async throws -> [any Channel] {
        func failure(_ reason: String) -> TapedeckError {
            TapedeckError(.listenFailed, "cannot listen on \(listen) (route '\(routeName)'): \(reason)")
        }
        guard case .udp(let host, let port) = listen else { throw failure("not a udp:HOST:PORT address") }
        func bootstrap(on loop: any EventLoop, reusePort: Bool) -> DatagramBootstrap {
            // No SO_REUSEADDR: UDP has no TIME_WAIT to step over, and with it a UDP socket may share a port that
            // another process holds and take its datagrams.
            var bootstrap = DatagramBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try DatagramSocket.setOptions(on: channel, vectorReads: true)
                        try channel.pipeline.syncOperations.addHandler(makeHandler(channel.eventLoop))
                    }
                }
            if reusePort {
                bootstrap = bootstrap.channelOption(
                    ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT),
                    value: 1
                )
            }
            return bootstrap
        }
        do {
            // The kernel's choice of port 0 for a socket with SO_REUSEPORT may be a port that other sockets with it
            // hold, so the probe chooses.
            return try await bindShared(
                try SocketAddress.makeAddressResolvingHost(host, port: port),
                loops: Array(group.makeIterator()),
                probingPortZero: true,
                // A bare socket: a probe needs no handler.
                probe: { try await DatagramBootstrap(group: $1).bind(to: $0).get() },
                bind: { try await bootstrap(on: $1, reusePort: $2).bind(to: $0).get() }
            )
        } catch {
            if let error = error as? TapedeckError { throw failure(error.message) }
            throw failure(SocketErrorText.describe(error))
        }
    }
}

/// A UDP listener's handler that can let the datagrams already queued for its socket in and answered before the
/// socket closes: a stream listener's clients wait in its backlog and are refused at close, but a datagram the
/// kernel queued is simply lost when its socket closes.
protocol DatagramDraining: AnyObject {
    /// Closes the socket once no datagram has come either way for ``DatagramQuietCloser/quietPeriod``, or at
    /// `deadline`, whichever is first; the future completes once it is closed.
    func closeWhenQuiet(deadline: NIODeadline) -> EventLoopFuture<Void>
}

extension Listener {
    /// Lets every UDP listener among `listeners` take in what is queued for it, then closes it; waits at most
    /// `timeout` (nothing waits with a zero timeout). Stream listeners are left to ``close(_:routes:)``.
    static func drainDatagrams(_ listeners: [any Channel], timeout: Duration) async {
        guard timeout > .zero else { return }
        let deadline = NIODeadline.now() + timeout.timeAmount
        var closing: [EventLoopFuture<Void>] = []
        for listener in listeners {
            let future = listener.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
                let operations = listener.pipeline.syncOperations
                if let relay = try? operations.handler(type: DatagramRelayHandler.self) {
                    return relay.closeWhenQuiet(deadline: deadline)
                }
                if let replay = try? operations.handler(type: DatagramReplayHandler.self) {
                    return replay.closeWhenQuiet(deadline: deadline)
                }
                return listener.eventLoop.makeSucceededVoidFuture()
            }
            closing.append(future)
        }
        for future in closing { try? await future.get() }
    }
}
