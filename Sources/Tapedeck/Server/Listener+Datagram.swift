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
        makeHandler: @escaping @Sendable () -> any ChannelHandler
    ) async throws -> [any Channel] {
        func failure(_ reason: String) -> TapedeckError {
            TapedeckError(.listenFailed, "cannot listen on \(listen) (route '\(routeName)'): \(reason)")
        }
        guard case .udp(let host, let port) = listen else { throw failure("not a udp:HOST:PORT address") }
        func bootstrap(on loop: any EventLoop, reusePort: Bool) -> DatagramBootstrap {
            var bootstrap = DatagramBootstrap(group: loop)
                .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try DatagramSocket.setOptions(on: channel, vectorReads: true)
                        try channel.pipeline.syncOperations.addHandler(makeHandler())
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
        var listeners: [any Channel] = []
        do {
            var address = try SocketAddress.makeAddressResolvingHost(host, port: port)
            let loops = Array(group.makeIterator())
            if loops.count > 1, port != 0 {
                // As for TCP: a plain bind first makes a port another process holds an error, rather than a port
                // shared with it.
                let probe = try await bootstrap(on: loops[0], reusePort: false).bind(to: address).get()
                try await probe.close()
            }
            for loop in loops {
                let listener = try await bootstrap(on: loop, reusePort: loops.count > 1).bind(to: address).get()
                listeners.append(listener)
                // Port 0: the first socket chose the port; the others join it.
                if let bound = listener.localAddress { address = bound }
            }
            return listeners
        } catch {
            for listener in listeners { try? await listener.close() }
            if let error = error as? TapedeckError { throw failure(error.message) }
            throw failure(SocketErrorText.describe(error))
        }
    }
}
