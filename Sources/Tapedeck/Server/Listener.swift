import Foundation
import Logging
import NIOCore
import NIOPosix

/// Binds the listening sockets of a route, for every kind of server Tapedeck runs.
enum Listener {
    /// The listeners of a server's routes, and each route with the address it got.
    typealias Bound = (listeners: [any Channel], bound: [BoundRoute])

    /// Binds `listen`: for TCP one listener per event loop, sharing the port through `SO_REUSEPORT`, so each loop
    /// accepts its own connections and serves them without a hop to another thread (the kernel spreads
    /// connections over the loops); for a Unix socket a single listener.
    ///
    /// Every listener pauses accepting for a moment when `accept` fails for want of descriptors or memory, rather
    /// than retry at once and spin, and logs the pause once per route (see ``AcceptPauseHandler``).
    ///
    /// - Parameters:
    ///   - makeBootstrap: The server bootstrap for one event loop, with its child options and initializer; its
    ///     server channel initializer is replaced.
    /// - Throws: ``TapedeckError`` with code `listenFailed`, naming the address and route.
    static func bind(
        _ listen: Endpoint,
        routeName: String,
        group: any EventLoopGroup,
        logger: Logger,
        makeBootstrap: (any EventLoop) -> ServerBootstrap
    ) async throws -> [any Channel] {
        func failure(_ reason: String) -> TapedeckError {
            TapedeckError(.listenFailed, "cannot listen on \(listen) (route '\(routeName)'): \(reason)")
        }
        let episode = AcceptPauseHandler.Episode(route: routeName, logger: logger)
        func bootstrap(on loop: any EventLoop, reusePort: Bool) -> ServerBootstrap {
            var bootstrap = makeBootstrap(loop)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(episode: episode))
                    }
                }
                .serverChannelOption(ChannelOptions.backlog, value: 4096)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            if reusePort {
                bootstrap = bootstrap.serverChannelOption(
                    ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT),
                    value: 1
                )
            }
            return bootstrap
        }
        do {
            switch listen {
            case .tcp(let host, let port):
                return try await bindShared(
                    try SocketAddress.makeAddressResolvingHost(host, port: port),
                    loops: Array(group.makeIterator()),
                    probe: { try await bootstrap(on: $1, reusePort: false).bind(to: $0).get() },
                    bind: { try await bootstrap(on: $1, reusePort: $2).bind(to: $0).get() }
                )
            case .unix(let path):
                try await UnixSocketPath.prepareForListening(path, group: group)
                return [try await bootstrap(on: group.next(), reusePort: false).bind(unixDomainSocketPath: path).get()]
            case .udp:
                // bindAll sends UDP routes to bindDatagram.
                throw TapedeckError(.listenFailed, "a UDP address takes datagrams, not stream connections")
            }
        } catch {
            if let error = error as? TapedeckError { throw failure(error.message) }
            throw failure(SocketErrorText.describe(error))
        }
    }

    /// Binds `address` once per loop, the sockets sharing the port through `SO_REUSEPORT` when there are several
    /// loops; all or none.
    ///
    /// With several loops a given port is first bound by a plain probe: other sockets with `SO_REUSEPORT` (another
    /// Tapedeck, say) would let us share their port and silently take half their connections, so a busy port must
    /// be an error. Port 0 lets the first shared socket choose, as TCP never gives a port chosen that way to a socket
    /// sharing it; UDP may, so with `probingPortZero` the probe chooses the port the others then bind.
    ///
    /// A bind after the probe that finds the port in use is tried again, with a new probe (see ``ProbedRebind``).
    static func bindShared(
        _ address: SocketAddress,
        loops: [any EventLoop],
        probingPortZero: Bool = false,
        probe: (SocketAddress, any EventLoop) async throws -> any Channel,
        bind: (SocketAddress, _ on: any EventLoop, _ reusePort: Bool) async throws -> any Channel
    ) async throws -> [any Channel] {
        try await ProbedRebind.retrying {
            try await bindSharedOnce(address, loops: loops, probingPortZero: probingPortZero, probe: probe, bind: bind)
        }
    }

    /// One try of ``bindShared(_:loops:probingPortZero:probe:bind:)``.
    ///
    /// - Throws: ``ProbedRebind/Raced`` when a bind after the probe found the port in use, to be tried again.
    static func bindSharedOnce(
        _ address: SocketAddress,
        loops: [any EventLoop],
        probingPortZero: Bool = false,
        probe: (SocketAddress, any EventLoop) async throws -> any Channel,
        bind: (SocketAddress, _ on: any EventLoop, _ reusePort: Bool) async throws -> any Channel
    ) async throws -> [any Channel] {
        var address = address
        let probed = loops.count > 1 && (address.port != 0 || probingPortZero)
        if probed {
            let probe = try await probe(address, loops[0])
            if let chosen = probe.localAddress { address = chosen }
            try await probe.close()
        }
        var listeners: [any Channel] = []
        do {
            for loop in loops {
                let listener = try await bind(address, loop, loops.count > 1)
                listeners.append(listener)
                // Port 0: the first listener chose the port; the others join it.
                if let bound = listener.localAddress { address = bound }
            }
            return listeners
        } catch {
            for listener in listeners { try? await listener.close() }
            if probed, ProbedRebind.isAddressInUse(error) { throw ProbedRebind.Raced(underlying: error) }
            throw error
        }
    }

    /// Binds the listeners of every route, all or none: on the first failure those already bound are closed.
    ///
    /// - Parameters:
    ///   - makeBootstrap: The server bootstrap for the stream route at an index of `routes`, on one event loop.
    ///   - makeDatagramHandler: The handler of one listening socket of the UDP route at an index of `routes`.
    /// - Returns: Every listener, and each route with the address it got (port 0 replaced by the real port).
    static func bindAll(
        _ routes: [Route],
        group: any EventLoopGroup,
        logger: Logger,
        makeDatagramHandler: @escaping @Sendable (_ routeIndex: Int, _ loop: any EventLoop) -> any ChannelHandler,
        makeBootstrap: (_ routeIndex: Int, _ loop: any EventLoop) -> ServerBootstrap
    ) async throws -> Bound {
        var listeners: [any Channel] = []
        var bound: [BoundRoute] = []
        do {
            for (index, route) in routes.enumerated() {
                if route.isDatagram {
                    let routeListeners = try await bindDatagram(route.listen, routeName: route.name, group: group) {
                        makeDatagramHandler(index, $0)
                    }
                    listeners.append(contentsOf: routeListeners)
                    let address = routeListeners.first?.localAddress.map { Endpoint($0).asDatagram } ?? route.listen
                    bound.append(BoundRoute(name: route.name, address: address))
                    continue
                }
                let routeListeners = try await bind(
                    route.listen,
                    routeName: route.name,
                    group: group,
                    logger: logger
                ) { loop in
                    makeBootstrap(index, loop)
                }
                listeners.append(contentsOf: routeListeners)
                let address = routeListeners.first?.localAddress.map(Endpoint.init) ?? route.listen
                bound.append(BoundRoute(name: route.name, address: address))
            }
        } catch {
            for listener in listeners { try? await listener.close() }
            throw error
        }
        return (listeners, bound)
    }

    /// Closes `listeners` and removes the socket files of the routes that listen on a Unix socket.
    static func close(_ listeners: [any Channel], routes: [Route]) async {
        for listener in listeners { try? await listener.close() }
        for route in routes {
            if case .unix(let path) = route.listen { try? FileManager.default.removeItem(atPath: path) }
        }
    }
}
