import Foundation
import NIOConcurrencyHelpers

/// The recorded sessions of one route, indexed so that a connection finds its candidates without a scan: the
/// part of replay's catalog that never changes while replaying. What connections did with the sessions is kept
/// by the ``SessionLedger``.
///
/// Sessions are kept sorted by the bytes their clients sent. The sessions consistent with what a connection's
/// client has sent so far are then one contiguous range, narrowed by binary search as bytes arrive: the cost of
/// choosing a session grows with the log of the number of sessions, not with the number.
///
/// For regrouping a connection pool's exchanges, the index also finds recorded exchanges by their first client
/// bytes, and tells which sessions share a handshake. Both are built at the first regroup, so that a replay
/// which never regroups never pays for them.
final class SessionIndex: Sendable {
    /// An exchange: a script index, and where its client bytes start in the script's client stream.
    struct ExchangeKey: Hashable, Sendable {
        var script: Int
        var start: Int
    }

    /// The scripts in recording order; a script's index is its rank in that order.
    let scripts: [ReplayScript]
    /// Script indices sorted by client stream.
    let sorted: [Int]
    /// For each script index, its position in `sorted`.
    let positions: [Int]
    /// Where upstream bytes left in the tape are read, to compare what two sessions' upstreams said.
    private let payloads: UpstreamPayloadSource?
    /// The exchange index and handshake groups, built once, on first use.
    private let derived = NIOLockedValueBox(Derived())

    private struct Derived {
        var exchangeIndex: [ExchangeKey]?
        var handshakeGroups: [Int?]?
    }

    /// How many of an exchange's first client bytes its place in the exchange index goes by.
    private static let exchangeKeyLength = 256

    /// - Parameters:
    ///   - scripts: The route's sessions, in recording order.
    ///   - payloads: Where the scripts' `.stored` upstream bytes are read; nil when every byte is held.
    init(scripts: [ReplayScript], payloads: UpstreamPayloadSource? = nil) {
        self.scripts = scripts
        self.payloads = payloads
        let sorted = scripts.indices.sorted { left, right in
            let a = scripts[left].clientStream
            let b = scripts[right].clientStream
            return a.lexicographicallyPrecedes(b) || (a == b && left < right)
        }
        self.sorted = sorted
        var positions = [Int](repeating: 0, count: scripts.count)
        for (position, index) in sorted.enumerated() { positions[index] = position }
        self.positions = positions
    }

    /// Every position: the candidates before the client has said anything.
    var all: Range<Int> { 0..<sorted.count }

    func script(at index: Int) -> ReplayScript { scripts[index] }

    /// Whether script `index` is among the candidates in `range`.
    func contains(_ range: Range<Int>, script index: Int) -> Bool {
        range.contains(positions[index])
    }

    /// Narrows `range`, whose sessions all agree on the client's first `offset` bytes, to those whose client
    /// also sent `chunk` next.
    func narrow(_ range: Range<Int>, offset: Int, chunk: Data) -> Range<Int> {
        // Within the range every stream agrees up to `offset`, so order by the next bytes alone.
        func order(_ position: Int) -> Int {
            let stream = scripts[sorted[position]].clientStream
            let available = max(0, min(chunk.count, stream.count - offset))
            let start = stream.startIndex + offset
            let theirs = stream[start..<(start + available)]
            if theirs.elementsEqual(chunk.prefix(available)) {
                return available == chunk.count ? 0 : -1  // a shorter stream sorts first
            }
            return theirs.lexicographicallyPrecedes(chunk.prefix(available)) ? -1 : 1
        }
        return Self.equalRange(in: range, order: order)
    }

    /// The positions in `range` where `order` is 0, given that it is -1 before them and 1 after: two binary
    /// searches.
    static func equalRange(in range: Range<Int>, order: (Int) -> Int) -> Range<Int> {
        var low = range.lowerBound
        var high = range.upperBound
        while low < high {
            let middle = (low + high) / 2
            if order(middle) < 0 { low = middle + 1 } else { high = middle }
        }
        let lower = low
        high = range.upperBound
        while low < high {
            let middle = (low + high) / 2
            if order(middle) <= 0 { low = middle + 1 } else { high = middle }
        }
        return lower..<low
    }

    /// Whether the upstreams of two scripts sent the same first `count` bytes. Bytes left in the tape are read
    /// from it; a tape that cannot be read agrees with nothing.
    func upstreamAgrees(_ first: Int, _ second: Int, count: Int) -> Bool {
        guard count > 0, first != second else { return true }
        var left = UpstreamReader(script: scripts[first], payloads: payloads)
        var right = UpstreamReader(script: scripts[second], payloads: payloads)
        guard scripts[first].upstreamByteCount >= count, scripts[second].upstreamByteCount >= count else {
            return false
        }
        var compared = 0
        var mine = Data()
        var theirs = Data()
        while compared < count {
            if mine.isEmpty { mine = left.next() ?? Data() }
            if theirs.isEmpty { theirs = right.next() ?? Data() }
            let length = min(mine.count, theirs.count, count - compared)
            guard length > 0, mine.prefix(length) == theirs.prefix(length) else { return false }
            mine = mine.dropFirst(length)
            theirs = theirs.dropFirst(length)
            compared += length
        }
        return true
    }

    /// A script's upstream bytes, send by send, read from the tape where they were left there.
    private struct UpstreamReader {
        var steps: ArraySlice<ReplayScript.Step>
        let payloads: UpstreamPayloadSource?

        init(script: ReplayScript, payloads: UpstreamPayloadSource?) {
            steps = script.steps[...]
            self.payloads = payloads
        }

        /// The next send's bytes; nil at the end, or when they cannot be read.
        mutating func next() -> Data? {
            while let step = steps.popFirst() {
                guard case .send(let bytes) = step.action else { continue }
                switch bytes {
                case .inline(let data): return data
                case .stored(let payload): return try? payloads?.bytes(of: payload)
                }
            }
            return nil
        }
    }

    // MARK: Exchanges

    /// The exchanges whose client bytes begin with `pending` as far as the index goes, or every exchange with
    /// client bytes when none does (the client may have sent the next exchange in the same write).
    func exchanges(startingWith pending: Data) -> (matching: ArraySlice<ExchangeKey>, all: [ExchangeKey]) {
        let index = exchangeIndex
        return (candidates(in: index, startingWith: pending), index)
    }

    private var exchangeIndex: [ExchangeKey] {
        derived.withLockedValue { derived in
            if let index = derived.exchangeIndex { return index }
            let index = makeExchangeIndex()
            derived.exchangeIndex = index
            return index
        }
    }

    /// The handshake group of a session: the index of the earliest session whose client opened with the same
    /// exchange, when that exchange is a handshake; nil when the session has none.
    ///
    /// An exchange is taken for a handshake when it opens at least two sessions and is never made later in
    /// any session: a database login (startup message with user and database) opens every connection that logs
    /// in alike and is never sent again. Requests of a keep-alive pool, where which request comes first varies,
    /// are not: either one also comes later somewhere, or each opens one session only.
    func handshakeGroup(of index: Int) -> Int? {
        handshakeGroups[index]
    }

    /// Every session's handshake group (see ``handshakeGroup(of:)``).
    var handshakeGroups: [Int?] {
        derived.withLockedValue { derived in
            if let groups = derived.handshakeGroups { return groups }
            var later = Set<Data>()
            var opening: [Data: [Int]] = [:]
            for index in scripts.indices {
                for start in exchangeStarts(of: index) {
                    let bytes = Data(exchangeBytes(of: ExchangeKey(script: index, start: start)))
                    if start == 0 { opening[bytes, default: []].append(index) } else { later.insert(bytes) }
                }
            }
            var groups = [Int?](repeating: nil, count: scripts.count)
            for (bytes, sessions) in opening where sessions.count >= 2 && !later.contains(bytes) {
                guard let group = sessions.min() else { continue }
                for session in sessions { groups[session] = group }
            }
            derived.handshakeGroups = groups
            return groups
        }
    }

    /// The client's bytes of one exchange: from its start to the next exchange's, or to the end of the stream.
    func exchangeBytes(of key: ExchangeKey) -> Data.SubSequence {
        let script = scripts[key.script]
        let stream = script.clientStream
        let end = script.exchangeStarts.first { $0 > key.start } ?? stream.count
        return stream[(stream.startIndex + key.start)..<(stream.startIndex + end)]
    }

    private func makeExchangeIndex() -> [ExchangeKey] {
        var keys: [ExchangeKey] = []
        for (index, script) in scripts.enumerated() {
            for start in script.exchangeStarts where start < script.clientStream.count {
                keys.append(ExchangeKey(script: index, start: start))
            }
        }
        return keys.sorted { left, right in
            let a = exchangeBytes(of: left).prefix(Self.exchangeKeyLength)
            let b = exchangeBytes(of: right).prefix(Self.exchangeKeyLength)
            return a.lexicographicallyPrecedes(b)
                || (a.elementsEqual(b) && (left.script, left.start) < (right.script, right.start))
        }
    }

    /// The exchanges whose first bytes agree with `pending` as far as the index goes: one range of it.
    private func candidates(in index: [ExchangeKey], startingWith pending: Data) -> ArraySlice<ExchangeKey> {
        let probe = pending.prefix(Self.exchangeKeyLength)
        func order(_ position: Int) -> Int {
            let key = exchangeBytes(of: index[position]).prefix(Self.exchangeKeyLength)
            if key.starts(with: probe) { return 0 }
            return key.lexicographicallyPrecedes(probe) ? -1 : 1
        }
        return index[Self.equalRange(in: index.indices, order: order)]
    }

    /// Where the exchanges of a session start that carry client bytes.
    func exchangeStarts(of index: Int) -> [Int] {
        scripts[index].exchangeStarts.filter { $0 < scripts[index].clientStream.count }
    }
}
