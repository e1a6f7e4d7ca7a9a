import Foundation
import NIOConcurrencyHelpers

/// The recorded sessions of one route, indexed so that a connection finds its candidates without a scan.
///
/// Sessions are kept sorted by the bytes their clients sent. The sessions consistent with what a connection's
/// client has sent so far are then one contiguous range, narrowed by binary search as bytes arrive: the cost of
/// choosing a session grows with the log of the number of sessions, not with the number. Over that sorted order
/// two min-trees give the earliest recorded session in a range that is still unused, and that no other live
/// connection has claimed.
///
/// It also keeps which exchanges (a client's request and the upstream's reply) connections played, for
/// regrouping a connection pool's exchanges and for telling sessions replayed in part from unused ones.
final class SessionCatalog: Sendable {
    /// The scripts in recording order; a script's index is its rank in that order.
    let scripts: [ReplayScript]
    /// Script indices sorted by client stream.
    private let sorted: [Int]
    /// For each script index, its position in `sorted`.
    private let positions: [Int]
    private let repeatable: Bool
    /// Where upstream bytes left in the tape are read, to compare what two sessions' upstreams said.
    private let payloads: UpstreamPayloadSource?
    private let availability: NIOLockedValueBox<Availability>

    private struct Availability {
        /// Earliest script index per range among sessions never replayed (all of them with `--repeat`).
        var unused: MinTree
        /// The same, among those no live connection has claimed either.
        var free: MinTree
        var replays: [Int]
        var claims: [Int]
        /// Exchanges played by a connection that ended without a mismatch, or regrouped into: as (script index,
        /// exchange start).
        var played: Set<ExchangeKey> = []
        /// Sessions a connection was regrouped into.
        var regroupedInto: [Bool]
        /// Every exchange that starts with client bytes, sorted by its first bytes; built at the first regroup,
        /// so that a replay which never regroups never pays for it.
        var exchangeIndex: [ExchangeKey]?
        /// Each session's handshake group (see ``handshakeGroup(of:)``); built at the first regroup too.
        var handshakeGroups: [Int?]?
    }

    /// How many of an exchange's first client bytes its place in the exchange index goes by.
    private static let exchangeKeyLength = 256

    private struct ExchangeKey: Hashable {
        var script: Int
        var start: Int
    }

    /// Which sessions a regrouped connection may go on in, by handshake (see ``handshakeGroup(of:)``).
    enum HandshakeFilter: Equatable {
        /// The connection made the handshake of this group (nil: none): only sessions of the same group.
        case known(Int?)
        /// The connection is still in its first exchange: any session's first exchange, or any exchange of a
        /// session without a handshake.
        case unknown
    }

    /// Where a regrouped connection goes on: a script, the start of the exchange in it, and how many of the
    /// client's pending bytes that exchange takes (all of them, or the whole exchange when the client sent more).
    struct RegroupTarget {
        var script: Int
        var start: Int
        var matched: Int
    }

    /// - Parameters:
    ///   - scripts: The route's sessions, in recording order.
    ///   - repeatable: Whether a session may be replayed more than once.
    ///   - payloads: Where the scripts' `.stored` upstream bytes are read; nil when every byte is held.
    init(scripts: [ReplayScript], repeatable: Bool, payloads: UpstreamPayloadSource? = nil) {
        self.scripts = scripts
        self.repeatable = repeatable
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
        let leaves = sorted
        availability = NIOLockedValueBox(
            Availability(
                unused: MinTree(leaves: leaves),
                free: MinTree(leaves: leaves),
                replays: [Int](repeating: 0, count: scripts.count),
                claims: [Int](repeating: 0, count: scripts.count),
                regroupedInto: [Bool](repeating: false, count: scripts.count)
            )
        )
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
    private static func equalRange(in range: Range<Int>, order: (Int) -> Int) -> Range<Int> {
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

    /// Claims the earliest recorded session in `range` that `accepts`, preferring one whose upstream began as
    /// `told` (what this connection was already told: the first `count` upstream bytes of script `script`),
    /// then any; and among each, one no live connection holds before one merely not yet replayed. Returns its
    /// script index.
    ///
    /// A session whose upstream said something else so far (a different process id in a PostgreSQL handshake,
    /// say) may still take over: if the client's bytes depended on the difference, they will not match it.
    func claim(
        in range: Range<Int>,
        told: (script: Int, count: Int)? = nil,
        where accepts: (ReplayScript) -> Bool = { _ in true }
    ) -> Int? {
        availability.withLockedValue { state in
            for requireSameServer in [true, false] {
                for preferFree in [true, false] {
                    func acceptable(_ index: Int) -> Bool {
                        accepts(scripts[index])
                            && (!requireSameServer
                                || told.map { upstreamAgrees(index, $0.script, count: $0.count) }
                                    ?? true)
                    }
                    // Read the tree in place: a copy held across the update below would be copied on write,
                    // which costs as much as a scan.
                    let chosen =
                        preferFree
                        ? earliest(in: range, of: state.free, where: acceptable)
                        : earliest(in: range, of: state.unused, where: acceptable)
                    if let chosen {
                        state.claims[chosen] += 1
                        update(&state, chosen)
                        return chosen
                    }
                }
            }
            return nil
        }
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

    /// The earliest recorded session present in `tree` within `range` that `acceptable` takes.
    private func earliest(in range: Range<Int>, of tree: borrowing MinTree, where acceptable: (Int) -> Bool) -> Int? {
        if let first = tree.minimum(in: range), acceptable(first) { return first }
        // The earliest does not fit: look further, in recording order.
        var chosen: Int?
        for position in range where tree.isPresent(at: position) {
            let index = sorted[position]
            if chosen.map({ index < $0 }) ?? true, acceptable(index) { chosen = index }
        }
        return chosen
    }

    /// Finds where a connection goes on when its own session does not continue with what its client is
    /// sending: the earliest recorded exchange, in any session, whose client began with `pending` (the bytes
    /// of the connection's current exchange so far), taking at least `minimum` of them. A connection pool may
    /// carry the recorded exchanges over its connections in another grouping than when recording; this puts
    /// each exchange back with its reply.
    ///
    /// Only an exchange not counted as played yet qualifies (a connection still open counts what it played when
    /// it ends or regroups), or any when sessions repeat. Counts the exchanges of `current`
    /// that the connection played, those starting in `played`, as played, and gives back its claim on `current`
    /// if it had one (it followed `current` from the start). The target's session is not claimed: a connection
    /// that follows it from the start may still come, for the exchanges before this one.
    ///
    /// A reply recorded under one handshake (a login to one database, as one user) is never served to a
    /// connection that made another: only sessions of the connection's handshake group qualify (`handshake`).
    func regroup(
        _ pending: Data,
        minimum: Int,
        leaving current: Int,
        played: Range<Int>,
        releasingClaim: Bool,
        handshake: HandshakeFilter = .unknown
    ) -> RegroupTarget? {
        availability.withLockedValue { state in
            // What this connection played of its old lead is no longer there to be regrouped into.
            let marked = markPlayed(&state, current, played)
            if state.exchangeIndex == nil { state.exchangeIndex = makeExchangeIndex() }
            let index = state.exchangeIndex!
            let groups = handshakeGroups(&state)
            func sameHandshake(_ key: ExchangeKey) -> Bool {
                switch handshake {
                case .known(let group): return groups[key.script] == group
                case .unknown: return key.start == 0 || groups[key.script] == nil
                }
            }
            var best: (rank: Int, target: RegroupTarget)?
            // The index finds the exchanges that begin with all of `pending`. One that is all of it and
            // shorter (the client sent the next exchange in the same write) is looked for among all only when
            // none is found: the rest is then regrouped in turn.
            let first = candidates(in: index, startingWith: pending)
            for key in first + (first.isEmpty ? index[...] : []) {
                let rank = state.played.contains(key) ? 1 : 0
                guard rank == 0 || repeatable, sameHandshake(key) else { continue }
                if let best, (best.rank, best.target.script, best.target.start) <= (rank, key.script, key.start) {
                    continue
                }
                let matched = min(pending.count, exchangeBytes(of: key).count)
                guard matched >= minimum, exchangeBytes(of: key).prefix(matched).elementsEqual(pending.prefix(matched))
                else { continue }
                best = (rank, RegroupTarget(script: key.script, start: key.start, matched: matched))
            }
            guard let target = best?.target else {
                // The connection mismatches: it played nothing, as with any mismatch.
                state.played.subtract(marked)
                return nil
            }
            if releasingClaim { state.claims[current] -= 1 }
            update(&state, current)
            state.played.insert(ExchangeKey(script: target.script, start: target.start))
            state.regroupedInto[target.script] = true
            update(&state, target.script)
            return target
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
        availability.withLockedValue { state in handshakeGroups(&state)[index] }
    }

    private func handshakeGroups(_ state: inout Availability) -> [Int?] {
        if let groups = state.handshakeGroups { return groups }
        var later = Set<Data>()
        var opening: [Data: [Int]] = [:]
        for (index, script) in scripts.enumerated() {
            let starts = exchangeStarts(of: index)
            for start in starts {
                let bytes = Data(exchangeBytes(of: ExchangeKey(script: index, start: start)))
                if start == 0 { opening[bytes, default: []].append(index) } else { later.insert(bytes) }
            }
        }
        var groups = [Int?](repeating: nil, count: scripts.count)
        for (bytes, sessions) in opening where sessions.count >= 2 && !later.contains(bytes) {
            let group = sessions.min()!
            for session in sessions { groups[session] = group }
        }
        state.handshakeGroups = groups
        return groups
    }

    /// The client's bytes of one exchange: from its start to the next exchange's, or to the end of the stream.
    private func exchangeBytes(of key: ExchangeKey) -> Data.SubSequence {
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

    /// Whether a connection was regrouped into one of this session's exchanges: the rest of the session may then
    /// have gone over other connections.
    func wasRegroupedInto(_ index: Int) -> Bool {
        availability.withLockedValue { $0.regroupedInto[index] }
    }

    /// Counts the exchanges of a session starting in `played` as played; returns those that were not before.
    @discardableResult
    private func markPlayed(_ state: inout Availability, _ index: Int, _ played: Range<Int>) -> [ExchangeKey] {
        var marked: [ExchangeKey] = []
        for start in scripts[index].exchangeStarts where played.contains(start) {
            if state.played.insert(ExchangeKey(script: index, start: start)).inserted {
                marked.append(ExchangeKey(script: index, start: start))
            }
        }
        return marked
    }

    /// Records the exchanges of a session that a regrouped connection played, those starting in `played`.
    func finishRegrouped(_ index: Int, played: Range<Int>) {
        availability.withLockedValue { state in
            markPlayed(&state, index, played)
            update(&state, index)
        }
    }

    /// Gives back a claim the connection no longer needs, without counting a replay.
    func release(_ index: Int) {
        availability.withLockedValue { state in
            state.claims[index] -= 1
            update(&state, index)
        }
    }

    /// Records that a connection replayed the session, playing the exchanges that start in `played` (all of
    /// them unless it was regrouped): it is no longer a candidate unless sessions repeat.
    ///
    /// - Returns: False if another connection finished the same session first and sessions do not repeat: two
    ///   connections that said the same thing at once both followed it, and only the first may count.
    @discardableResult
    func finish(_ index: Int, played: Range<Int> = 0..<Int.max) -> Bool {
        availability.withLockedValue { state in
            let first = repeatable || state.replays[index] == 0
            markPlayed(&state, index, played)
            state.claims[index] -= 1
            state.replays[index] += 1
            update(&state, index)
            return first
        }
    }

    /// Why the earliest recorded session in `range` cannot serve another connection, if it is taken: it was
    /// replayed already, or a live connection follows it. Nil when sessions repeat or it is free.
    func whyTaken(in range: Range<Int>) -> (index: Int, alreadyReplayed: Bool)? {
        guard !repeatable, !range.isEmpty else { return nil }
        return availability.withLockedValue { state in
            guard let earliest = range.map({ sorted[$0] }).min() else { return nil }
            if state.replays[earliest] > 0 || state.played.contains(ExchangeKey(script: earliest, start: 0)) {
                return (earliest, true)
            }
            return state.claims[earliest] > 0 ? (earliest, false) : nil
        }
    }

    private func update(_ state: inout Availability, _ index: Int) {
        // A session whose first exchange a connection played before being regrouped elsewhere is no longer new:
        // a new connection following it would play that exchange twice and leave another unplayed.
        let unused =
            repeatable
            || (state.replays[index] == 0 && !state.played.contains(ExchangeKey(script: index, start: 0)))
        let position = positions[index]
        if unused { state.unused.insert(index, at: position) } else { state.unused.remove(at: position) }
        if unused && state.claims[index] == 0 {
            state.free.insert(index, at: position)
        } else {
            state.free.remove(at: position)
        }
    }

    /// Sessions never replayed, by tape id: none of their exchanges played (or, for a session whose client sent
    /// nothing, no connection served). Recorded probes are never required, so never unused.
    var unusedSessionIDs: [Int64] {
        availability.withLockedValue { state in
            scripts.indices.filter { index in
                guard !scripts[index].isProbe else { return false }
                let starts = exchangeStarts(of: index)
                guard !starts.isEmpty else { return state.replays[index] == 0 }
                return !starts.contains { state.played.contains(ExchangeKey(script: index, start: $0)) }
            }.map { scripts[$0].sessionID }
        }
    }

    /// Sessions played in part: some exchanges played, and the first one not, as (tape id, client offset). A
    /// connection pool's exchanges regrouped over its connections leave none; a client that skipped a call its
    /// session made leaves one.
    var incompleteSessions: [(session: Int64, offset: Int)] {
        availability.withLockedValue { state in
            scripts.indices.compactMap { index in
                let starts = exchangeStarts(of: index)
                let unplayed = starts.filter { !state.played.contains(ExchangeKey(script: index, start: $0)) }
                guard let first = unplayed.first, unplayed.count < starts.count else { return nil }
                return (scripts[index].sessionID, first)
            }
        }
    }

    /// Where the exchanges of a session start that carry client bytes.
    private func exchangeStarts(of index: Int) -> [Int] {
        scripts[index].exchangeStarts.filter { $0 < scripts[index].clientStream.count }
    }
}

/// A segment tree of minimums over positions, where each position holds a value or nothing.
struct MinTree: Sendable {
    private var nodes: [Int]
    private let size: Int
    private static let empty = Int.max

    init(leaves: [Int]) {
        var size = 1
        while size < max(1, leaves.count) { size *= 2 }
        self.size = size
        nodes = [Int](repeating: Self.empty, count: 2 * size)
        for (position, value) in leaves.enumerated() { nodes[size + position] = value }
        for node in stride(from: size - 1, to: 0, by: -1) { nodes[node] = min(nodes[2 * node], nodes[2 * node + 1]) }
    }

    func isPresent(at position: Int) -> Bool { nodes[size + position] != Self.empty }

    mutating func remove(at position: Int) { set(Self.empty, at: position) }

    mutating func insert(_ value: Int, at position: Int) { set(value, at: position) }

    private mutating func set(_ value: Int, at position: Int) {
        var node = size + position
        nodes[node] = value
        node /= 2
        while node >= 1 {
            nodes[node] = min(nodes[2 * node], nodes[2 * node + 1])
            node /= 2
        }
    }

    /// The smallest value over `range`, or nil if every position in it is empty.
    func minimum(in range: Range<Int>) -> Int? {
        var low = range.lowerBound + size
        var high = range.upperBound + size
        var result = Self.empty
        while low < high {
            if low & 1 == 1 {
                result = min(result, nodes[low])
                low += 1
            }
            if high & 1 == 1 {
                high -= 1
                result = min(result, nodes[high])
            }
            low /= 2
            high /= 2
        }
        return result == Self.empty ? nil : result
    }
}
