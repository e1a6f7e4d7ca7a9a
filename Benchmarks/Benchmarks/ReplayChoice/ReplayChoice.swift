import Benchmark
import TapedeckWorkloads

/// What it costs replay to choose a session for a connection (``ReplayChoiceWorkload``), among 100 and among
/// 10,000 recorded sessions, without sockets. One iteration plays `scaledIterations.count` connections, so the
/// scaled wall clock reads as the time per connection. With an index the two sizes stay close; a scan would make
/// the larger one about 100 times slower.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 1,
        scalingFactor: .kilo,
        maxDuration: .seconds(5),
        maxIterations: 1_000,
        thresholds: [
            .wallClock: .init(relative: [.p50: 25]),
            .throughput: .init(relative: [.p50: 25]),
            .mallocCountTotal: .init(relative: [.p50: 5, .p90: 10]),
        ]
    )

    for sessions in [100, 10_000] {
        Benchmark("ReplayChoice/\(sessions) sessions") { benchmark, workload in
            let served = workload.play(connections: benchmark.scaledIterations.count)
            if served != benchmark.scaledIterations.count {
                benchmark.error("only \(served) of \(benchmark.scaledIterations.count) connections found a session")
            }
        } setup: {
            ReplayChoiceWorkload(sessions: sessions)
        }
    }
}
