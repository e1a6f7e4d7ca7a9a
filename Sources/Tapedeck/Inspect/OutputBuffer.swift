import Foundation

/// Collects text and writes it to a file descriptor in large pieces, so printing a big conversation costs a few
/// system calls, not one per line, and memory stays bounded.
public final class OutputBuffer {
    private var pending: [UInt8] = []
    private let descriptor: Int32
    private let limit: Int

    /// Writes to `descriptor` (stdout by default) every `limit` bytes and on ``flush()``.
    public init(descriptor: Int32 = 1, limit: Int = 1 << 16) {
        self.descriptor = descriptor
        self.limit = limit
        pending.reserveCapacity(limit)
    }

    /// Appends text.
    public func write(_ text: String) {
        pending.append(contentsOf: text.utf8)
        if pending.count >= limit { flush() }
    }

    /// Appends bytes.
    public func write<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        pending.append(contentsOf: bytes)
        if pending.count >= limit { flush() }
    }

    /// Writes what is pending.
    public func flush() {
        var offset = 0
        pending.withUnsafeBytes { bytes in
            while offset < bytes.count {
                let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 {
                    if written < 0 && errno == EINTR { continue }
                    break  // a closed pipe (`| head`): stop quietly
                }
                offset += written
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    deinit { flush() }
}
