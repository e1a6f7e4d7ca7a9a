import Foundation

/// Collects text and writes it to a file descriptor in large pieces, so printing a big conversation costs a few
/// system calls, not one per line, and memory stays bounded.
///
/// A write that fails is remembered, not ignored: ``finish()`` throws it, so a full disk is an error and never
/// a silently truncated file. A closed pipe (the reader was `head`) only stops the output: that reader asked
/// for no more.
public final class OutputBuffer {
    private var pending: [UInt8] = []
    private let descriptor: Int32
    private let name: String
    private let limit: Int
    private var failure: Int32?

    /// Writes to `descriptor` (stdout by default) every `limit` bytes and on ``flush()``.
    ///
    /// - Parameter name: The output as error messages name it: a file's path, or `standard output`.
    public init(descriptor: Int32 = 1, name: String = "standard output", limit: Int = 1 << 16) {
        self.descriptor = descriptor
        self.name = name
        self.limit = limit
        pending.reserveCapacity(limit)
    }

    /// Whether the reader went away (a closed pipe) or a write failed: nothing more will be written.
    public var isStopped: Bool { failure != nil }

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

    /// Writes what is pending; a failure is kept for ``finish()``.
    public func flush() {
        defer { pending.removeAll(keepingCapacity: true) }
        guard failure == nil else { return }
        var offset = 0
        pending.withUnsafeBytes { bytes in
            while offset < bytes.count {
                let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                if written == 0 {
                    failure = EIO
                    return
                }
                offset += written
            }
        }
    }

    /// Writes what is pending and reports whether everything was written.
    ///
    /// - Throws: ``TapedeckError`` with code `outputUnwritable` naming the output and the reason (`no space
    ///   left on device`); not for a closed pipe, which ends output quietly.
    public func finish() throws {
        flush()
        if let failure, failure != EPIPE {
            throw TapedeckError(
                .outputUnwritable,
                "cannot write \(name): \(String(cString: strerror(failure)).lowercased())"
            )
        }
    }

    deinit { flush() }
}
