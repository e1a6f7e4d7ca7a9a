import Foundation
@_spi(Benchmarks) import Tapedeck

/// What it costs replay to choose a session for a connection, for tapes of different sizes.
///
/// Builds `sessions` synthetic recorded sessions, each a distinct HTTP-like request and its reply, then plays
/// connections against them through the real session catalog and matcher (``SessionChoice``), without
/// sockets: the time per connection is the cost of choosing and playing a session. Comparing 10,000 sessions
/// with 100 tells an index (the two stay close) from a scan (about 100 times slower).
///
/// ```swift
/// let workload = ReplayChoiceWorkload(sessions: 10_000)
/// let served = workload.play(connections: 20_000)
/// ```
public struct ReplayChoiceWorkload: Sendable {
    /// Sessions in the synthetic tape.
    public let sessions: Int
    private let choice: SessionChoice
    private let requests: [Data]

    /// Builds the catalog; `repeatable` as with `tapedeck replay --repeat`, so connections may outnumber
    /// sessions.
    public init(sessions: Int) {
        self.sessions = max(1, sessions)
        var catalog: [[EventRecord]] = []
        var requests: [Data] = []
        let reply = Data("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)
        for index in 0..<self.sessions {
            let id = Int64(index + 1)
            let request = Data("GET /items/\(index * 7_919 % 1_000_003) HTTP/1.1\r\nHost: bench\r\n\r\n".utf8)
            catalog.append([
                EventRecord(
                    sessionID: id,
                    seq: 0,
                    offsetNanoseconds: 0,
                    direction: .clientToUpstream,
                    kind: .data,
                    payload: request
                ),
                EventRecord(
                    sessionID: id,
                    seq: 1,
                    offsetNanoseconds: 1_000,
                    direction: .upstreamToClient,
                    kind: .data,
                    payload: reply
                ),
            ])
            requests.append(request)
        }
        choice = SessionChoice(sessions: catalog, repeatable: true)
        self.requests = requests
    }

    /// Plays `connections` connections, each sending one session's request (spread over the whole tape) and
    /// closing. Returns how many were served a recorded session; all of them should be.
    public func play(connections: Int) -> Int {
        var served = 0
        for connection in 0..<connections {
            let request = requests[(connection * 104_729) % requests.count]
            if choice.playConnection(sending: request) != nil { served += 1 }
        }
        return served
    }

    /// Plays `connections` connections and returns the mean time per connection, in nanoseconds.
    public func nanosecondsPerConnection(connections: Int) throws -> Double {
        let count = max(1, connections)
        var served = 0
        let elapsed = ContinuousClock().measure { served = play(connections: count) }
        guard served == count else { throw WorkloadError("only \(served) of \(count) connections found a session") }
        return elapsed.seconds * 1e9 / Double(count)
    }
}

/// A workload that did not do what it was asked.
public struct WorkloadError: Error, CustomStringConvertible {
    /// What went wrong, in one line.
    public var description: String

    /// Creates the error with its one-line reason.
    public init(_ description: String) {
        self.description = description
    }
}
