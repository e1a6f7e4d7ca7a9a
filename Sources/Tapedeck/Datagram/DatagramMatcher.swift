import Foundation

/// Follows one live UDP flow through a route's recorded flows: for each client datagram, the recorded exchange
/// to answer it from, or nothing when the tape never saw it. Channel-free; the replay handler drives it.
///
/// Candidates narrow as the flow goes on: the recorded flows whose datagrams the live one has matched so far, and
/// in each the exchange it reached. A datagram is looked for first at each candidate's next exchange, then
/// anywhere in the candidates (a retransmission, or datagrams the network reordered), then in every recorded
/// flow; so concurrent clients, and flows recorded in any order, find their own.
struct DatagramMatcher {
    /// What to do with a live datagram.
    enum Outcome {
        /// Answer with the exchange's replies, after putting the live values of volatile spans where the replies
        /// echo the recorded ones.
        case answer(RecordedFlow.Exchange, sessionID: Int64, echoes: [(recorded: Data, live: Data)])
        /// The tape never saw this datagram.
        case mismatch
    }

    let book: DatagramReplayBook
    /// The recorded flow the live flow follows, once one answered it.
    private(set) var current: Int?
    /// Recorded flows consistent with the live flow so far (nil before its first datagram: all of them).
    private var candidates: Set<Int>?
    /// The next exchange of each candidate.
    private var next: [Int: Int] = [:]

    init(book: DatagramReplayBook) {
        self.book = book
    }

    /// The session of the recorded flow followed, if any.
    var currentSessionID: Int64? {
        current.map { book.flows[$0].sessionID }
    }

    /// Finds the exchange that answers `datagram`.
    mutating func match(_ datagram: Data) -> Outcome {
        let normalized = StreamNormalizer.normalize(datagram, rules: book.rules)
        let key = normalized.bytes
        var pool: [DatagramReplayBook.ExchangeReference] = []
        // The common case costs one comparison per candidate: each one's next exchange.
        if let candidates {
            for flow in candidates.sorted() {
                let position = next[flow] ?? 0
                let exchanges = book.flows[flow].exchanges
                if position < exchanges.count, exchanges[position].key == key {
                    pool.append(.init(flow: flow, exchange: position))
                }
            }
        }
        if pool.isEmpty {
            let everywhere = book.firstExchanges(withKey: key)
            let amongCandidates = candidates.map { set in everywhere.filter { set.contains($0.flow) } } ?? everywhere
            pool = amongCandidates.isEmpty ? everywhere : amongCandidates
        }
        guard !pool.isEmpty else { return .mismatch }
        let chosen = book.choose(among: pool, current: current)
        current = chosen.flow
        candidates = Set(pool.map(\.flow))
        for reference in pool { next[reference.flow] = reference.exchange + 1 }
        let exchange = book.exchange(chosen)
        return .answer(
            exchange,
            sessionID: book.flows[chosen.flow].sessionID,
            echoes: Self.echoes(recorded: exchange, live: datagram, liveSpans: normalized.replacements)
        )
    }

    /// The live flow ended: its recorded flow is free for others.
    mutating func end() {
        if let current { book.release(current) }
        current = nil
    }

    /// Pairs the recorded request's volatile values with the live one's, in order; values of fewer than four
    /// bytes are left alone, since they would be found by chance in replies that do not echo them.
    private static func echoes(
        recorded: RecordedFlow.Exchange,
        live: Data,
        liveSpans: [StreamNormalizer.Replacement]
    ) -> [(recorded: Data, live: Data)] {
        let liveVolatile = liveSpans.compactMap { span -> Range<Int>? in
            if case .volatile = span.meaning { return span.raw }
            return nil
        }
        return zip(recorded.volatile, liveVolatile).compactMap { recordedRange, liveRange in
            let recordedValue = recorded.request.subdata(in: recordedRange.shifted(by: recorded.request.startIndex))
            let liveValue = live.subdata(in: liveRange.shifted(by: live.startIndex))
            guard recordedValue.count >= 4, recordedValue != liveValue else { return nil }
            return (recordedValue, liveValue)
        }
    }

    /// `reply` with every recorded volatile value it echoes replaced by the live one.
    static func applying(_ echoes: [(recorded: Data, live: Data)], to reply: Data) -> Data {
        var output = reply
        for echo in echoes {
            var searchStart = output.startIndex
            while let found = output.range(of: echo.recorded, in: searchStart..<output.endIndex) {
                output.replaceSubrange(found, with: echo.live)
                searchStart = found.lowerBound + echo.live.count
            }
        }
        return output
    }
}

extension Range where Bound == Int {
    /// The range moved by `offset`.
    fileprivate func shifted(by offset: Int) -> Range<Int> {
        (lowerBound + offset)..<(upperBound + offset)
    }
}
