import Foundation
import NIOCore
import NIOPosix

/// Prepares a Unix socket path for a listener without stealing a live socket from another process.
enum UnixSocketPath {
    /// Removes a stale socket file left behind by a process that died; refuses a path that is in use or that
    /// is not a socket.
    static func prepareForListening(_ path: String, group: any EventLoopGroup) async throws {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return }
        guard attributes[.type] as? FileAttributeType == .typeSocket else {
            throw TapedeckError(.listenFailed, "path exists and is not a socket")
        }
        let probe = try? await ClientBootstrap(group: group)
            .connectTimeout(.seconds(1))
            .connect(unixDomainSocketPath: path)
            .get()
        if let probe {
            try? await probe.close()
            throw TapedeckError(.listenFailed, "address already in use")
        }
        try? FileManager.default.removeItem(atPath: path)
    }
}
