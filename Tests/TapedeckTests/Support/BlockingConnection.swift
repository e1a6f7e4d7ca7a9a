import Foundation

@testable import Tapedeck

#if canImport(Glibc)
import Glibc
#endif

/// A plain blocking TCP client socket with send and receive timeouts, for tests that hold many connections open
/// at once: each is exactly one descriptor and needs no event loop, and it is closed when dropped.
final class BlockingConnection {
    private let descriptor: Int32

    /// Connects to an IPv4 `endpoint`; every later send or receive gives up after `timeout`. A `receiveBuffer`
    /// (bytes) caps what the kernel holds for this socket, so that a slow reader slows its peer down at once.
    init(to endpoint: Endpoint, timeout: Duration = .seconds(5), receiveBuffer: Int? = nil) throws {
        guard case .tcp(let host, let port) = endpoint else { throw TestProcessError("not a TCP address: \(endpoint)") }
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestProcessError("socket failed: errno \(errno)") }
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
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

    /// Shuts this side's output (a FIN): the peer reads end of input, and this side can still read.
    func finishSending() {
        shutdown(descriptor, Int32(SHUT_WR))
    }

    /// What a ``drip(chunk:pause:limit:)`` read.
    struct Drip: Sendable {
        /// How the stream ended.
        enum Ending: Equatable, Sendable {
            case eof
            case reset
            case error(Int32)
        }

        var bytes = 0
        var ending = Ending.eof
        /// The longest time between the end of one read and the end of the next: longer than asked when the
        /// reading thread was starved.
        var longestWait = Duration.zero
    }

    /// Reads at most `chunk` bytes at a time with `pause` between reads, until the stream ends or `limit` bytes
    /// came.
    func drip(chunk: Int, pause: Duration, limit: Int) -> Drip {
        var drip = Drip()
        var buffer = [UInt8](repeating: 0, count: chunk)
        var last = ContinuousClock.now
        while drip.bytes < limit {
            let read = recv(descriptor, &buffer, chunk, 0)
            let now = ContinuousClock.now
            drip.longestWait = max(drip.longestWait, now - last)
            last = now
            if read == 0 { return drip }
            if read < 0 {
                drip.ending = errno == ECONNRESET ? .reset : .error(errno)
                return drip
            }
            drip.bytes += read
            Thread.sleep(
                forTimeInterval: Double(pause.components.seconds) + Double(pause.components.attoseconds) / 1e18
            )
        }
        return drip
    }

    deinit { close(descriptor) }
}
