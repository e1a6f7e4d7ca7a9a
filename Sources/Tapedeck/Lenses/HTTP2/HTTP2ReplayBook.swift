import Foundation
import NIOConcurrencyHelpers

/// An HTTP/2 route's recorded streams, pooled over all its sessions, and what live streams have used of them.
///
/// Built once when replay starts; shared by the route's connections on every event loop, so one lock guards what
/// changes (as in ``DatagramReplayBook``). A live stream finds its candidates by request key, then holds a claim on
/// the one it follows, so that concurrent identical requests get distinct recorded streams; a stream is replayed
/// at most once unless sessions repeat.
final class HTTP2ReplayBook: Sendable {
    private struct State {
        /// Times each stream was served whole.
        var served: [Int]
        /// Live streams following each stream now.
        var claims: [Int]
    }

    /// The route's name.
    let route: String
    /// Every recorded stream, session by session in recording order, each session's in the order they began.
    let streams: [HTTP2RecordedStream]
    /// The sessions of the route that were HTTP/2 (began with the preface), in recording order.
    let sessionIDs: [Int64]
    /// Whether a stream may be served again once it was.
    let repeatable: Bool
    private let streamsOfKey: [HTTP2RequestKey: [Int]]
    private let state: NIOLockedValueBox<State>

    /// - Parameters:
    ///   - sessions: The route's HTTP/2 sessions, decoded, in recording order.
    ///   - repeatable: Whether a stream may be served more than once (`--repeat`).
    convenience init(route: String, sessions: [HTTP2SessionDecoder], repeatable: Bool) {
        self.init(
            route: route,
            streams: sessions.flatMap(\.streams),
            sessionIDs: sessions.map(\.sessionID),
            repeatable: repeatable
        )
    }

    /// - Parameters:
    ///   - streams: The recorded streams, in recording order.
    ///   - sessionIDs: The HTTP/2 sessions they came from, in recording order, with those that had no stream.
    init(route: String, streams: [HTTP2RecordedStream], sessionIDs: [Int64], repeatable: Bool) {
        self.route = route
        self.repeatable = repeatable
        self.sessionIDs = sessionIDs
        self.streams = streams
        var streamsOfKey: [HTTP2RequestKey: [Int]] = [:]
        for (index, stream) in streams.enumerated() { streamsOfKey[stream.key, default: []].append(index) }
        self.streamsOfKey = streamsOfKey
        state = NIOLockedValueBox(
            State(
                served: [Int](repeating: 0, count: streams.count),
                claims: [Int](repeating: 0, count: streams.count)
            )
        )
    }

    /// The recorded streams whose request has `key`, in recording order.
    func candidates(for key: HTTP2RequestKey) -> [Int] {
        streamsOfKey[key] ?? []
    }

    /// Chooses the stream a live stream follows among `candidates` that `accepts`, and moves the live stream's
    /// claim to it: `current` while it is acceptable, else the earliest no live stream follows and none was served,
    /// then the earliest not served; with repeats, then the earliest no live stream follows, then any. Nil when
    /// none is acceptable (the claim on `current`, if any, is given back).
    func choose(among candidates: [Int], current: Int?, where accepts: (HTTP2RecordedStream) -> Bool) -> Int? {
        if let current, accepts(streams[current]) { return current }
        let acceptable = candidates.filter { $0 != current && accepts(streams[$0]) }
        return state.withLockedValue { state in
            let chosen =
                acceptable.first { state.claims[$0] == 0 && state.served[$0] == 0 }
                ?? acceptable.first { state.served[$0] == 0 }
                ?? (repeatable ? acceptable.first { state.claims[$0] == 0 } ?? acceptable.first : nil)
            if let current { state.claims[current] -= 1 }
            if let chosen { state.claims[chosen] += 1 }
            return chosen
        }
    }

    /// A live stream served stream `index` (its response went out whole, or ended where the recorded one did):
    /// gives its claim back and counts the replay.
    ///
    /// - Returns: False when another live stream served it first and streams do not repeat.
    @discardableResult
    func finish(_ index: Int) -> Bool {
        state.withLockedValue { state in
            state.claims[index] -= 1
            state.served[index] += 1
            return repeatable || state.served[index] == 1
        }
    }

    /// A live stream stopped following stream `index` without serving it.
    func release(_ index: Int) {
        state.withLockedValue { $0.claims[index] -= 1 }
    }

    // MARK: Diagnostics and the report

    /// The recorded stream most like a request with `key`, for a mismatch: the same method and path, then the same
    /// path, then the same method, preferring one not served yet; nil when the route has none.
    func closest(to key: HTTP2RequestKey) -> Int? {
        let served = state.withLockedValue { $0.served }
        let order = streams.indices.sorted { (served[$0] > 0 ? 1 : 0) < (served[$1] > 0 ? 1 : 0) }
        let path = key.value(of: ":path")
        let method = key.value(of: ":method")
        return order.first {
            streams[$0].key.value(of: ":path") == path && streams[$0].key.value(of: ":method") == method
        }
            ?? order.first { streams[$0].key.value(of: ":path") == path }
            ?? order.first { streams[$0].key.value(of: ":method") == method }
            ?? order.first
    }

    /// HTTP/2 sessions none of whose streams was served. A session without streams counts as served: there was
    /// nothing in it to ask for.
    var unusedSessionIDs: [Int64] {
        let served = state.withLockedValue { $0.served }
        var withStreams: Set<Int64> = []
        var anyServed: Set<Int64> = []
        for (index, stream) in streams.enumerated() {
            withStreams.insert(stream.sessionID)
            if served[index] > 0 { anyServed.insert(stream.sessionID) }
        }
        return sessionIDs.filter { withStreams.contains($0) && !anyServed.contains($0) }
    }

    /// HTTP/2 sessions some of whose streams were served and some not (a client left out a call), with where the
    /// first stream never served began in the recorded client's stream.
    var incompleteSessions: [(session: Int64, offset: Int)] {
        let served = state.withLockedValue { $0.served }
        var anyServed: Set<Int64> = []
        var firstUnserved: [Int64: Int] = [:]
        for (index, stream) in streams.enumerated() {
            if served[index] > 0 {
                anyServed.insert(stream.sessionID)
            } else if firstUnserved[stream.sessionID] == nil {
                firstUnserved[stream.sessionID] = stream.clientOffset
            }
        }
        return sessionIDs.compactMap { session in
            guard anyServed.contains(session), let offset = firstUnserved[session] else { return nil }
            return (session, offset)
        }
    }
}
