import Logging
import NIOCore

/// The control API's HTTP server: ``ControlAPI``'s router over a control plane, on one address until stopped.
enum ControlServer {
    /// Binds `address` and serves the API over `plane`.
    ///
    /// - Throws: ``TapedeckError`` with code `listenFailed` naming the address, or `invalidArgument` for a UDP one.
    static func start(
        plane: ControlPlane,
        address: Endpoint,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) async throws -> HTTPService {
        try await HTTPService.start(
            router: ControlAPI.router(for: plane),
            address: address,
            purpose: "control API",
            eventLoopGroup: eventLoopGroup,
            logger: logger
        )
    }
}
