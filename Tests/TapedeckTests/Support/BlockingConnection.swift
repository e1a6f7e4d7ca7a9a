import Foundation

@testable import Tapedeck

#if canImport(Glibc)
import Glibc
#endif

/// A plain blocking TCP client socket with send and receive timeouts, for tests that hold many connections open
/// at once: each is exactly one descriptor and needs no event loop, and it is closed when dropped.
final class BlockingConnection {
    private let descriptor: Int32

    /// Connects to an IPv4 `endpoint`; every later send or receive gives up after `timeout`.
    init(to endpoint: Endpoint, timeout: Duration = .seconds(5)) throws {
        guard case .tcp(let host, let port) = endpoint else { throw TestProcessError("not a TCP address: \(endpoint)") }
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestProcessError("socket failed: errno \(errno)") }
        let seconds = timeout.components.seconds
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(descriptor)
            throw TestProcessError("not an IPv4 address: \(host)")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let error = errno
            close(descriptor)
            throw TestProcessError("connect to \(endpoint) failed: errno \(error)")
        }
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard Glibc.send(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
            throw TestProcessError("send failed: errno \(errno)")
        }
    }

    /// Reads until `count` bytes have arrived; fails on end of stream, an error, or the timeout.
    func receive(count: Int) throws -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        while received.count < count {
            let read = recv(descriptor, &buffer, count - received.count, 0)
            guard read > 0 else {
                throw TestProcessError(read == 0 ? "connection closed" : "receive failed: errno \(errno)")
            }
            received += buffer[0..<read]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Sends `text` and returns as many bytes back: one round trip through an echo.
    func echo(_ text: String) throws -> String {
        try send(text)
        return try receive(count: text.utf8.count)
    }

    /// Like ``echo(_:)``, but a connection the other side reset or closed is an answer too: nil. Only silence
    /// until the timeout is an error.
    func echoUnlessEnded(_ text: String) throws -> String? {
        let bytes = Array(text.utf8)
        guard Glibc.send(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
            if errno == ECONNRESET || errno == EPIPE { return nil }
            throw TestProcessError("send failed: errno \(errno)")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: bytes.count)
        while received.count < bytes.count {
            let read = recv(descriptor, &buffer, bytes.count - received.count, 0)
            if read == 0 || (read < 0 && errno == ECONNRESET) { return nil }
            guard read > 0 else { throw TestProcessError("receive failed: errno \(errno)") }
            received += buffer[0..<read]
        }
        return String(decoding: received, as: UTF8.self)
    }

    deinit { close(descriptor) }
}
