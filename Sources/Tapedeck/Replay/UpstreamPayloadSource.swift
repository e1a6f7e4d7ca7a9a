import Foundation
import NIOCore
import NIOPosix

/// Reads the upstream bytes that replay left in the tape when they are due, off the event loops.
///
/// A read is a SQLite query: it runs on a thread pool so that a connection waiting for a bulk reply never stalls
/// the other connections of its event loop. Reads go through several connections to the tape (its readers),
/// so that a connection's next batches are read side by side: one SQLite connection reads one query at a time,
/// and copying payloads out of the page cache, not the socket, is what bounds a bulk replay.
final class UpstreamPayloadSource: Sendable {
    private let readers: [Tape]
    private let pool: NIOThreadPool
    /// The readers this source opened itself, and closes.
    private let opened: [Tape]

    /// - Parameters:
    ///   - tape: The tape being replayed; its own connection is the first reader.
    ///   - extraReaders: How many more read-only connections to open to the same file.
    init(tape: Tape, extraReaders: Int = 0, pool: NIOThreadPool = .singleton) {
        // A reader that cannot be opened (the file replaced since) is simply not there: reads fall back to the
        // tape's own connection, which fails loudly if the tape is unreadable.
        let opened = (0..<max(0, extraReaders)).compactMap { _ in try? Tape(readingAt: tape.path) }
        self.readers = [tape] + opened
        self.opened = opened
        self.pool = pool
    }

    /// Closes the readers this source opened; reads after it fail with one line, never crash.
    func close() {
        for reader in opened { try? reader.close() }
    }

    private var tape: Tape { readers[0] }

    /// The tape's path, for messages.
    var path: String { tape.path }

    /// Reads `payloads`, in order, into one buffer completed on `loop`, through reader number `reader` (any
    /// number; readers are taken in turn).
    func read(_ payloads: [StoredPayload], reader: Int = 0, on loop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        let tape = readers[reader % readers.count]
        return pool.runIfActive(eventLoop: loop) {
            var buffer = ByteBufferAllocator().buffer(capacity: payloads.reduce(0) { $0 + $1.bytes.count })
            try tape.readUpstreamPayloads(payloads) { _, bytes in buffer.writeBytes(bytes) }
            return buffer
        }
    }

    /// Reads one payload on the calling thread: for comparing what two sessions' upstreams said, which is rare
    /// and short.
    func bytes(of payload: StoredPayload) throws -> Data {
        var data = Data()
        try tape.readUpstreamPayloads([payload]) { _, bytes in data.append(contentsOf: bytes) }
        return data
    }
}
