import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// A Hummingbird application serving one router on one address until stopped: the control API's server and the
/// web inspector's.
///
/// It runs in a service group of its own, detached, so that it answers to whoever started it rather than to the
/// graceful shutdown of the task that did; ``stop()`` lets requests in flight finish.
final class HTTPService: Sendable {
    /// The address it is bound to (port 0 replaced by the port it got).
    let address: Endpoint
    private let group: ServiceGroup
    private let serving: Task<Void, any Error>

    private init(address: Endpoint, group: ServiceGroup, serving: Task<Void, any Error>) {
        self.address = address
        self.group = group
        self.serving = serving
    }

    /// Binds `address` and serves `router` there.
    ///
    /// - Parameter purpose: What the server is, as errors name it: `control API`, `web inspector`.
    /// - Throws: ``TapedeckError`` with code `listenFailed` naming the address, or `invalidArgument` for a UDP one.
    static func start(
        router: Router<BasicRequestContext>,
        address: Endpoint,
        purpose: String,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) async throws -> HTTPService {
        let bindAddress: BindAddress
        switch address {
        case .tcp(let host, let port): bindAddress = .hostname(host, port: port)
        case .unix(let path): bindAddress = .unixDomainSocket(path: path)
        case .udp:
            throw TapedeckError(.invalidArgument, "the \(purpose) speaks HTTP over TCP, not UDP: give HOST:PORT")
        }
        let (bound, reportBound) = AsyncStream<Endpoint>.makeStream()
        // Hummingbird announces itself at info; the command line prints the URL itself.
        var logger = logger
        logger.logLevel = max(logger.logLevel, .notice)
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: bindAddress, serverName: "tapedeck"),
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
        guard let boundAddress = await iterator.next() else {
            let reason: String
            do {
                try await serving.value
                reason = "the server stopped"
            } catch {
                reason = SocketErrorText.describe(error)
            }
            throw TapedeckError(.listenFailed, "cannot listen on \(address) (\(purpose)): \(reason)")
        }
        return HTTPService(address: boundAddress, group: group, serving: serving)
    }

    /// Stops accepting, lets requests in flight finish, and returns once the server has stopped.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await serving.value
    }
}
