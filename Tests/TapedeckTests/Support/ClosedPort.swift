import Foundation

@testable import Tapedeck

/// A loopback port that refuses connections for as long as this value lives: a socket bound to it that never
/// listens. A port merely closed a moment ago may go to another test's listener on a busy machine; this one
/// stays ours, so a connect to it is refused every time.
final class ClosedPort: Sendable {
    private let descriptor: Int32
    /// The address nothing listens on.
    let endpoint: Endpoint

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TapedeckError(.invalidArgument, "socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(descriptor, raw, length) == 0 && getsockname(descriptor, raw, &length) == 0
            }
        }
        guard bound else {
            close(descriptor)
            throw TapedeckError(.invalidArgument, "bind: \(errno)")
        }
        self.descriptor = descriptor
        endpoint = .tcp(host: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)))
    }

    deinit { close(descriptor) }
}
