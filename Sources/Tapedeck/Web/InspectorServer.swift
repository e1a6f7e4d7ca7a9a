import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The web inspector's HTTP server: Hummingbird serving ``InspectorAPI``'s routes over one tape until stopped.
///
/// ```swift
/// let server = try await InspectorServer.start(
///     source: InspectorSource(tapePath: "fixtures/nginx.tape"),
///     address: try Endpoint(parsing: "127.0.0.1:0")
/// )
/// print(server.url)  // http://127.0.0.1:41237/
/// await server.stop()
/// ```
public final class InspectorServer: Sendable {
    /// The address it is bound to (port 0 replaced by the port it got).
    public let address: Endpoint
    private let inspector: TapeInspector
    private let group: ServiceGroup
    private let serving: Task<Void, any Error>

    private init(address: Endpoint, inspector: TapeInspector, group: ServiceGroup, serving: Task<Void, any Error>) {
        self.address = address
        self.inspector = inspector
        self.group = group
        self.serving = serving
    }

    /// The page's URL: `http://127.0.0.1:41237/`.
    public var url: String { Self.url(of: address) }

    /// The URL of an inspector on `address`.
    public static func url(of address: Endpoint) -> String {
        ControlAPI.url(of: address) + "/"
    }

    /// Opens `source`'s tape, binds `address` and serves the inspector.
    ///
    /// - Throws: ``TapedeckError``: `tapeUnreadable` for the tape, `listenFailed` naming the address,
    ///   `invalidArgument` for a UDP address or missing page files.
    public static func start(
        source: InspectorSource,
        address: Endpoint,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "tapedeck.web")
    ) async throws -> InspectorServer {
        let bindAddress: BindAddress
        switch address {
        case .tcp(let host, let port): bindAddress = .hostname(host, port: port)
        case .unix(let path): bindAddress = .unixDomainSocket(path: path)
        case .udp:
            throw TapedeckError(.invalidArgument, "the web inspector speaks HTTP over TCP, not UDP: give HOST:PORT")
        }
        let assets = try InspectorAssets.load()
        let inspector = try TapeInspector(source: source)
        let (bound, reportBound) = AsyncStream<Endpoint>.makeStream()
        // Hummingbird announces itself at info; the command line prints `web URL` instead.
        var logger = logger
        logger.logLevel = max(logger.logLevel, .notice)
        let app = Application(
            router: InspectorAPI.router(for: inspector, assets: assets, loopbackOnly: address.isLoopback),
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
            inspector.close()
            let reason: String
            do {
                try await serving.value
                reason = "the server stopped"
            } catch {
                reason = SocketErrorText.describe(error)
            }
            throw TapedeckError(.listenFailed, "cannot listen on \(address) (web inspector): \(reason)")
        }
        return InspectorServer(address: boundAddress, inspector: inspector, group: group, serving: serving)
    }

    /// Stops accepting, lets requests in flight finish, closes the tape, and returns once the server has stopped.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await serving.value
        inspector.close()
    }
}
