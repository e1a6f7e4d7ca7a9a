import Foundation
import NIOCore

/// Measures how fast the recorder's store path writes events, with no network in the way.
///
/// It drives the same `SessionRecorder` → `TapeWriter` path a recording uses, with the same schema, settings
/// and memory budget, from one producer thread. `scripts/bench` uses it for the recorder's small-event insert
/// rate and for the bulk ceiling that recording through the relay is compared with.
public enum StoreBenchmark {
    /// What one run wrote and how fast.
    public struct Result: Sendable, Codable {
        /// Events written.
        public var events: Int
        /// Payload bytes written.
        public var payloadBytes: Int
        /// Wall time from the first event to the last commit.
        public var seconds: Double
        /// Size of the finished tape file.
        public var tapeBytes: Int

        /// Events per second.
        public var eventsPerSecond: Double { Double(events) / seconds }
        /// Payload megabytes (10^6 bytes) per second.
        public var megabytesPerSecond: Double { Double(payloadBytes) / seconds / 1e6 }
    }

    /// Writes `events` data events of `payloadSize` bytes, spread over `sessions` sessions, into a fresh tape.
    public static func run(
        tapePath: String,
        events: Int,
        payloadSize: Int,
        sessions: Int = 64,
        pageSize: Int = Tape.pageSize
    ) async throws -> Result {
        let route = Route(name: "bench", upstream: .tcp(host: "127.0.0.1", port: 9))
        let tape = try Tape(recordingAt: tapePath, overwrite: true, pageSize: pageSize)
        let recorder = try Recorder(tape: tape, routes: [route], label: "store benchmark")
        let payload = BenchmarkPayload.make(count: payloadSize)
        let started = Date()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // Session recorders are not Sendable: they live on this one thread, as they would on an event loop.
            Thread {
                let recorders = (0..<max(1, sessions)).map { index in
                    recorder.beginSession(route: route, clientAddress: "127.0.0.1:\(10_000 + index)")
                }
                let budget = recorders[0].budget
                for index in 0..<events {
                    while !budget.hasRoom { usleep(50) }
                    let direction: Direction = index & 1 == 0 ? .clientToUpstream : .upstreamToClient
                    recorders[index % recorders.count].recordData(payload, from: direction)
                }
                for session in recorders {
                    session.recordEnd(of: .clientToUpstream, reset: false, byPeer: true)
                    session.recordEnd(of: .upstreamToClient, reset: false, byPeer: false)
                }
                continuation.resume()
            }.start()
        }
        try await recorder.flush()
        let seconds = Date().timeIntervalSince(started)
        try await recorder.finish()
        let size = (try? FileManager.default.attributesOfItem(atPath: tapePath)[.size] as? Int) ?? 0
        return Result(events: events, payloadBytes: events * payloadSize, seconds: seconds, tapeBytes: size)
    }
}

enum BenchmarkPayload {
    /// Pseudo-random bytes, so nothing about the payload is special.
    static func make(count: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        var state: UInt32 = 2_463_534_242
        for _ in 0..<count {
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            buffer.writeInteger(UInt8(truncatingIfNeeded: state))
        }
        return buffer
    }
}
