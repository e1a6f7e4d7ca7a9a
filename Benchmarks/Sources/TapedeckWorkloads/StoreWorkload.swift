import Foundation
import NIOCore
@_spi(Benchmarks) import Tapedeck

/// The recorder's store path alone: data events fed to the tape writer from one thread, with no network in the
/// way.
///
/// It drives the same `SessionRecorder` → `TapeWriter` path a recording uses (through `RecordingFeed`), with the
/// same schema, settings and memory budget: the producer waits while the budget is full, as a relay stops reading.
/// What it measures is the ceiling that recording through the relay is compared with, and the small-event insert
/// rate.
///
/// ```swift
/// let workload = StoreWorkload(events: 20_000, payloadSize: 65_536)
/// let result = try await workload.run(tapePath: "/tmp/store.tape")
/// print(result.megabytesPerSecond)
/// ```
public struct StoreWorkload: Sendable {
    /// Data events to write.
    public var events: Int
    /// Payload bytes per event.
    public var payloadSize: Int
    /// Sessions the events are spread over, round-robin, as many connections interleave on a busy recorder.
    public var sessions: Int
    /// SQLite page size of the new tape.
    public var pageSize: Int

    /// Describes a run; nothing is written until ``run(tapePath:)``.
    ///
    /// - Parameters:
    ///   - events: Data events to write.
    ///   - payloadSize: Payload bytes per event.
    ///   - sessions: Sessions the events are spread over (at least 1).
    ///   - pageSize: SQLite page size of the new tape; the one new tapes get by default.
    public init(events: Int, payloadSize: Int, sessions: Int = 64, pageSize: Int = Tape.pageSize) {
        self.events = events
        self.payloadSize = payloadSize
        self.sessions = max(1, sessions)
        self.pageSize = pageSize
    }

    /// Writes the events into a fresh tape at `tapePath` (overwritten) and times it, from the first event to the
    /// last commit.
    public func run(tapePath: String) async throws -> StoreResult {
        let run = try StoreRun(self, tapePath: tapePath)
        let clock = ContinuousClock()
        let elapsed = try await clock.measure { try await run.write() }
        return try await run.finish(seconds: elapsed.seconds)
    }
}

/// One run of a ``StoreWorkload``, in three steps so that a benchmark can time the middle one alone: opening
/// the tape and starting its recorder, writing, and closing the run.
public struct StoreRun: Sendable {
    /// The workload being run.
    public let workload: StoreWorkload
    /// The tape written.
    public let tapePath: String
    private let recorder: Recorder
    private let route = Route(name: "bench", upstream: .tcp(host: "127.0.0.1", port: 9))
    private let payload: ByteBuffer

    /// Creates the tape (replacing any at `tapePath`) and starts a run in it.
    public init(_ workload: StoreWorkload, tapePath: String) throws {
        self.workload = workload
        self.tapePath = tapePath
        let tape = try Tape(recordingAt: tapePath, overwrite: true, pageSize: workload.pageSize)
        recorder = try Recorder(tape: tape, routes: [route], label: "store benchmark")
        payload = Payload.bytes(count: workload.payloadSize)
    }

    /// Writes every event from one producer thread, then waits until all of them are committed.
    public func write() async throws {
        let (recorder, route, payload, workload) = (self.recorder, self.route, self.payload, self.workload)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // The feed's session recorders are not Sendable: they live on this one thread, as on an event loop.
            Thread {
                let feed = RecordingFeed(recorder: recorder, route: route, sessions: workload.sessions)
                for index in 0..<workload.events {
                    while !feed.hasRoom { usleep(50) }
                    let direction: Direction = index & 1 == 0 ? .clientToUpstream : .upstreamToClient
                    feed.recordData(payload, from: direction, session: index)
                }
                feed.endSessions()
                continuation.resume()
            }.start()
        }
        try await recorder.flush()
    }

    /// Closes the run and the tape, and reports what was written in `seconds`.
    public func finish(seconds: Double) async throws -> StoreResult {
        try await recorder.finish()
        let size = (try? FileManager.default.attributesOfItem(atPath: tapePath)[.size] as? Int) ?? 0
        return StoreResult(
            events: workload.events,
            payloadBytes: workload.events * workload.payloadSize,
            seconds: seconds,
            tapeBytes: size
        )
    }
}

/// What one store run wrote and how fast.
public struct StoreResult: Sendable, Codable {
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

extension Duration {
    /// The duration in seconds, as a floating-point number.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
