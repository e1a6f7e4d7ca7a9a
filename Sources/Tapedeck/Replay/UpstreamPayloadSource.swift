import Foundation
import NIOCore
import NIOPosix

/// Reads the upstream bytes that replay left in the tape when they are due, off the event loops.
///
/// A read is a SQLite query: it runs on a thread pool so that a connection waiting for a bulk reply never stalls
/// the other connections of its event loop.
final class UpstreamPayloadSource: Sendable {
    private let tape: Tape
    private let pool: NIOThreadPool

    init(tape: Tape, pool: NIOThreadPool = .singleton) {
        self.tape = tape
        self.pool = pool
    }

    /// The tape's path, for messages.
    var path: String { tape.path }

    /// Reads `payloads`, in order, into one buffer completed on `loop`.
    func read(_ payloads: [StoredPayload], on loop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        let tape = self.tape
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
