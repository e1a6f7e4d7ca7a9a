import Foundation

/// Measures what it costs replay to choose a session for a connection, for tapes of different sizes.
///
/// Builds `sessions` synthetic recorded sessions, each a distinct HTTP-like request and its reply, then plays
/// `connections` connections against them through the real `SessionCatalog` and `ReplayMatcher`, without
/// sockets: the time per connection is the cost of choosing and playing a session. `scripts/bench` compares
/// 10,000 sessions with 100: an index keeps the two close, a scan would not.
public enum ReplayChoiceBenchmark {
    /// Runs the benchmark and returns the mean time per connection, in nanoseconds.
    public static func run(sessions: Int, connections: Int) -> Double {
        let scripts = (0..<max(1, sessions)).map { index in
            let request = Data("GET /items/\(index * 7_919 % 1_000_003) HTTP/1.1\r\nHost: bench\r\n\r\n".utf8)
            let reply = Data("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)
            return ReplayScript(
                sessionID: Int64(index + 1),
                events: [
                    EventRecord(
                        sessionID: Int64(index + 1),
                        seq: 0,
                        offsetNanoseconds: 0,
                        direction: .clientToUpstream,
                        kind: .data,
                        payload: request
                    ),
                    EventRecord(
                        sessionID: Int64(index + 1),
                        seq: 1,
                        offsetNanoseconds: 1_000,
                        direction: .upstreamToClient,
                        kind: .data,
                        payload: reply
                    ),
                ]
            )
        }
        let catalog = SessionCatalog(scripts: scripts, repeatable: true)
        let requests = (0..<max(1, connections)).map { scripts[($0 * 104_729) % scripts.count].clientStream }
        let clock = ContinuousClock()
        var served = 0
        let elapsed = clock.measure {
            for request in requests {
                var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
                _ = matcher.start()
                _ = matcher.receive(request)
                if matcher.connectionClosed() != nil { served += 1 }
            }
        }
        precondition(served == requests.count, "every benchmark connection must find its session")
        let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        return nanoseconds / Double(requests.count)
    }
}
