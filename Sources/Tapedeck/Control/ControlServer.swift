import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The control API's HTTP server: Hummingbird serving ``ControlAPI``'s router on one address until stopped.
final class ControlServer: Sendable {
    /// The address it is bound to (port 0 replaced by the port it got).
    let address: Endpoint
    private let group: ServiceGroup
    private let serving: Task<Void, any Error>

    private init(address: Endpoint, group: ServiceGroup, serving: Task<Void, any Error>) {
        self.address = address
        self.group = group
        self.serving = serving
    }

    /// Binds `address` and serves the API over `plane`.
    ///
    /// - Throws: ``TapedeckError`` with code `listenFailed` naming the address, or `invalidArgument` for a UDP one.
    static func start(
        plane: ControlPlane,
        address: Endpoint,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) async throws -> ControlServer {
        let bindAddress: BindAddress
        switch address {
        case .tcp(let host, let port): bindAddress = .hostname(host, port: port)
        case .unix(let path): bindAddress = .unixDomainSocket(path: path)
        case .udp:
            throw TapedeckError(.invalidArgument, "the control API speaks HTTP over TCP, not UDP: give HOST:PORT")
        }
        let (bound, reportBound) = AsyncStream<Endpoint>.makeStream()
        // Hummingbird announces itself at info; the command line says `api URL` instead.
        var logger = logger
        logger.logLevel = max(logger.logLevel, .notice)
        let app = Application(
            router: ControlAPI.router(for: plane),
            configuration: ApplicationConfiguration(address: bindAddress),
            onServerRunning: { channel in
                reportBound.yield(channel.localAddress.map(Endpoint.init) ?? address)
            },
            eventLoopGroupProvider: .shared(eventLoopGroup),
            logger: logger
        )
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [], logger: logger)
        )
        let serving = Task.detached {
            defer { reportBound.finish() }
            try await group.run()
        }
        var iterator = bound.makeAsyncIterator()
        guard let address = await iterator.next() else {
            let reason: String
            do {
                try await serving.value
                reason = "the server stopped"
            } catch {
                reason = SocketErrorText.describe(error)
            }
            throw TapedeckError(.listenFailed, "cannot listen on \(address) (control API): \(reason)")
        }
        return ControlServer(address: address, group: group, serving: serving)
    }

    /// Stops accepting, lets requests in flight finish, and returns once the server has stopped.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await serving.value
    }
}
