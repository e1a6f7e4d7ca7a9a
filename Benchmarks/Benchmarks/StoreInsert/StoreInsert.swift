import Benchmark
import Foundation
import TapedeckWorkloads

/// The recorder's store path alone (``StoreWorkload``): data events written into a fresh scratch tape from one
/// producer thread, timed from the first event to the last commit. One iteration writes
/// `scaledIterations.count` events, so the scaled throughput reads as events per second and the scaled wall
/// clock as the time per event; `payload MB/s` is the rate in the unit `scripts/bench` compares recording with.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident, StoreMetric.megabytesPerSecond],
        warmupIterations: 1,
        maxDuration: .seconds(10),
        maxIterations: 10,
        thresholds: [
            // Time on two shared cores moves by a tenth from run to run: flag only a real slowdown.
            .wallClock: .init(relative: [.p50: 25]),
            .throughput: .init(relative: [.p50: 25]),
            StoreMetric.megabytesPerSecond: .init(relative: [.p50: 25]),
            // Allocations barely move between runs: a few percent more is a change in the code.
            .mallocCountTotal: .init(relative: [.p50: 5, .p90: 10]),
            .peakMemoryResident: .init(relative: [.p90: 20]),
        ]
    )

    storeBenchmark("64 KiB events, 64 sessions", scalingFactor: .kilo, payloadSize: 65_536, sessions: 64)
    storeBenchmark("256 KiB events, 1 session", scalingFactor: .kilo, payloadSize: 262_144, sessions: 1)
    // A million small events per iteration: the writer's per-event cost, which group commit amortizes only over
    // long runs. Given longer, so that a slow machine still takes a few samples.
    storeBenchmark(
        "64 B events, 64 sessions",
        scalingFactor: .mega,
        payloadSize: 64,
        sessions: 64,
        maxDuration: .seconds(30)
    )
}

enum StoreMetric {
    /// Payload megabytes (10^6 bytes) per second of one iteration.
    static let megabytesPerSecond = BenchmarkMetric.custom(
        "payload MB/s",
        polarity: .prefersLarger,
        useScalingFactor: false
    )
}

/// One store benchmark: the tape is created before the measurement starts and closed after it stops.
func storeBenchmark(
    _ name: String,
    scalingFactor: BenchmarkScalingFactor,
    payloadSize: Int,
    sessions: Int,
    maxDuration: Duration = .seconds(10)
) {
    var configuration = Benchmark.defaultConfiguration
    configuration.scalingFactor = scalingFactor
    configuration.maxDuration = maxDuration
    Benchmark("Store/\(name)", configuration: configuration) { benchmark in
        let path = ScratchTape.path("store")
        defer { ScratchTape.remove(path) }
        let workload = StoreWorkload(
            events: benchmark.scaledIterations.count,
            payloadSize: payloadSize,
            sessions: sessions
        )
        let run = try StoreRun(workload, tapePath: path)
        let started = ContinuousClock.now
        benchmark.startMeasurement()
        try await run.write()
        benchmark.stopMeasurement()
        let result = try await run.finish(seconds: (ContinuousClock.now - started).seconds)
        benchmark.measurement(StoreMetric.megabytesPerSecond, Int(result.megabytesPerSecond.rounded()))
    }
}
