import Foundation
import Logging
import NIOCore
import NIOPosix

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
    public var address: Endpoint { service.address }
    private let inspector: TapeInspector
    private let service: HTTPService

    private init(inspector: TapeInspector, service: HTTPService) {
        self.inspector = inspector
        self.service = service
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
        if address.isDatagram {
            throw TapedeckError(.invalidArgument, "the web inspector speaks HTTP over TCP, not UDP: give HOST:PORT")
        }
        let assets = try InspectorAssets.load()
        let inspector = try TapeInspector(source: source)
        do {
            let service = try await HTTPService.start(
                router: InspectorAPI.router(for: inspector, assets: assets, loopbackOnly: address.isLoopback),
                address: address,
                purpose: "web inspector",
                eventLoopGroup: eventLoopGroup,
                logger: logger
            )
            return InspectorServer(inspector: inspector, service: service)
        } catch {
            inspector.close()
            throw error
        }
    }

    /// Stops accepting, lets requests in flight finish, closes the tape, and returns once the server has stopped.
    public func stop() async {
        await service.stop()
        inspector.close()
    }
}
