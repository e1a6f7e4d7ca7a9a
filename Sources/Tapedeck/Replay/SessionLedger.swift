import Foundation
import NIOConcurrencyHelpers

/// What the connections of a replay did with a route's recorded sessions: which sessions live connections
/// follow (claims), which were replayed, and which exchanges were played. One lock guards it, since connections
/// on every event loop use it.
///
/// A connection that follows a session from its start holds a ``Claim`` on it, and gives it back exactly once:
/// by ``release(_:)`` when it leaves the session, or by ``finish(_:played:)`` when it replayed it. A token
/// given back twice, or one the ledger never issued, changes nothing, so a claim can never be counted twice.
///
/// Over the sessions in client-byte order, two min-trees give the earliest recorded session in a candidate
/// range that is still unused, and that no live connection has claimed either.
final class SessionLedger: Sendable {
    /// A live connection's hold on a session it follows from the start.
    struct Claim: Hashable, Sendable {
        /// The script the claim is on.
        let script: Int
        /// Which claim: every claim the ledger issues has its own.
        fileprivate let serial: UInt64
        /// Whether the session's upstream began as the claim's `told` said (always, when nothing was told):
        /// found while choosing, so that the taker need not compare, and read from the tape, again.
        let agreesWithTold: Bool
    }

    /// Where a regrouped connection goes on: a script, the start of the exchange in it, and how many of the
    /// client's pending bytes that exchange takes (all of them, or the whole exchange when the client sent more).
    struct RegroupTarget {
        var script: Int
        var start: Int
        var matched: Int
    }

    /// Which sessions a regrouped connection may go on in, by handshake (see ``SessionIndex/handshakeGroup(of:)``).
    enum HandshakeFilter: Equatable {
        /// The connection made the handshake of this group (nil: none): only sessions of the same group.
        case known(Int?)
        /// The connection is still in its first exchange: any session's first exchange, or any exchange of a
        /// session without a handshake.
        case unknown
    }

    private typealias ExchangeKey = SessionIndex.ExchangeKey

    private struct State {
        /// Earliest script index per range among sessions never replayed (all of them with `--repeat`).
        var unused: MinTree
        /// The same, among those no live connection has claimed either.
        var free: MinTree
        var replays: [Int]
        /// Live claims per script.
        var claims: [Int]
        /// Claims issued and not given back yet, by serial.
        var outstanding: Set<UInt64> = []
        var nextSerial: UInt64 = 0
        /// Exchanges played by a connection that ended without a mismatch, or regrouped into.
        var played: Set<ExchangeKey> = []
        /// Sessions a connection was regrouped into.
        var regroupedInto: [Bool]
    }

    let index: SessionIndex
    private let repeatable: Bool
    private let state: NIOLockedValueBox<State>

    /// - Parameters:
    ///   - index: The route's sessions.
    ///   - repeatable: Whether a session may be replayed more than once.
    init(index: SessionIndex, repeatable: Bool) {
        self.index = index
        self.repeatable = repeatable
        let count = index.scripts.count
        state = NIOLockedValueBox(
            State(
                unused: MinTree(leaves: index.sorted),
                free: MinTree(leaves: index.sorted),
                replays: [Int](repeating: 0, count: count),
                claims: [Int](repeating: 0, count: count),
                regroupedInto: [Bool](repeating: false, count: count)
            )
        )
    }

    // MARK: Claims

    /// Claims the earliest recorded session in `range` that `accepts`, preferring one whose upstream began as
    /// `told` (what this connection was already told: the first `count` upstream bytes of script `script`),
    /// then any; and among each, one no live connection holds before one merely not yet replayed.
    ///
    /// A session whose upstream said something else so far (a different process id in a PostgreSQL handshake,
    /// say) may still take over: if the client's bytes depended on the difference, they will not match it.
    func claim(
        in range: Range<Int>,
        told: (script: Int, count: Int)? = nil,
        where accepts: (ReplayScript) -> Bool = { _ in true }
    ) -> Claim? {
        state.withLockedValue { state in
            for requireSameUpstream in [true, false] {
                for preferFree in [true, false] {
                    func acceptable(_ script: Int) -> Bool {
                        accepts(index.scripts[script])
                            && (!requireSameUpstream
                                || told.map { index.upstreamAgrees(script, $0.script, count: $0.count) } ?? true)
                    }
                    // Read the tree in place: a copy held across the update below would be copied on write,
                    // which costs as much as a scan.
                    let chosen =
                        preferFree
                        ? earliest(in: range, of: state.free, where: acceptable)
                        : earliest(in: range, of: state.unused, where: acceptable)
                    if let chosen {
                        state.claims[chosen] += 1
                        // A session chosen without the upstream condition does not agree: one that did would have
                        // been chosen with it, from the same candidates.
                        let claim = Claim(
                            script: chosen,
                            serial: state.nextSerial,
                            agreesWithTold: requireSameUpstream
                        )
                        state.nextSerial += 1
                        state.outstanding.insert(claim.serial)
                        update(&state, chosen)
                        return claim
                    }
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
            let script = index.sorted[position]
            if chosen.map({ script < $0 }) ?? true, acceptable(script) { chosen = script }
        }
        return chosen
    }

    /// Gives back a claim the connection no longer needs, without counting a replay.
    func release(_ claim: Claim) {
        state.withLockedValue { state in giveBack(&state, claim) }
    }

    /// Records that a connection replayed the session it claimed, playing the exchanges that start in `played`:
    /// it is no longer a candidate unless sessions repeat.
    ///
    /// - Returns: False if another connection finished the same session first and sessions do not repeat: two
    ///   connections that said the same thing at once both followed it, and only the first may count.
    @discardableResult
    func finish(_ claim: Claim, played: Range<Int> = 0..<Int.max) -> Bool {
        state.withLockedValue { state in
            let script = claim.script
            let first = repeatable || state.replays[script] == 0
            markPlayed(&state, script, played)
            guard giveBack(&state, claim) else { return first }
            state.replays[script] += 1
            update(&state, script)
            return first
        }
    }

    /// Takes a claim back from the outstanding ones; false if it was not outstanding (given back before).
    @discardableResult
    private func giveBack(_ state: inout State, _ claim: Claim) -> Bool {
        guard state.outstanding.remove(claim.serial) != nil else { return false }
        state.claims[claim.script] -= 1
        update(&state, claim.script)
        return true
    }

    // MARK: Regrouping

    /// Finds where a connection goes on when its own session does not continue with what its client is
    /// sending: the earliest recorded exchange, in any session, whose client began with `pending` (the bytes
    /// of the connection's current exchange so far), taking at least `minimum` of them. A connection pool may
    /// carry the recorded exchanges over its connections in another grouping than when recording; this puts
    /// each exchange back with its reply.
    ///
    /// Only an exchange not counted as played yet qualifies (a connection still open counts what it played when
    /// it ends or regroups), or any when sessions repeat. Counts the exchanges of `current` that the connection
    /// played, those starting in `played`, as played, and gives back `claim` if the connection held one (it
    /// followed `current` from the start). The target's session is not claimed: a connection that follows it
    /// from the start may still come, for the exchanges before this one.
    ///
    /// A reply recorded under one handshake (a login to one database, as one user) is never served to a
    /// connection that made another: only sessions of the connection's handshake group qualify (`handshake`).
    func regroup(
        _ pending: Data,
        minimum: Int,
        leaving current: Int,
        played: Range<Int>,
        releasing claim: Claim?,
        handshake: HandshakeFilter = .unknown
    ) -> RegroupTarget? {
        // Built outside the lock: the first regroup of a replay builds the exchange index.
        let (matching, all) = index.exchanges(startingWith: pending)
        let groups = index.handshakeGroups
        return state.withLockedValue { state in
            // What this connection played of its old lead is no longer there to be regrouped into.
            let marked = markPlayed(&state, current, played)
            func sameHandshake(_ key: ExchangeKey) -> Bool {
                switch handshake {
                case .known(let group): return groups[key.script] == group
                case .unknown: return key.start == 0 || groups[key.script] == nil
                }
            }
            var best: (rank: Int, target: RegroupTarget)?
            // One exchange that is all of `pending` and shorter (the client sent the next exchange in the same
            // write) is looked for among all only when none begins with all of it: the rest is then regrouped
            // in turn.
            for key in matching + (matching.isEmpty ? all[...] : []) {
                let rank = state.played.contains(key) ? 1 : 0
                guard rank == 0 || repeatable, sameHandshake(key) else { continue }
                if let best, (best.rank, best.target.script, best.target.start) <= (rank, key.script, key.start) {
                    continue
                }
                let bytes = index.exchangeBytes(of: key)
                let matched = min(pending.count, bytes.count)
                guard matched >= minimum, bytes.prefix(matched).elementsEqual(pending.prefix(matched)) else {
                    continue
                }
                best = (rank, RegroupTarget(script: key.script, start: key.start, matched: matched))
            }
            guard let target = best?.target else {
                // The connection mismatches: it played nothing, as with any mismatch.
                state.played.subtract(marked)
                return nil
            }
            if let claim { giveBack(&state, claim) }
            update(&state, current)
            state.played.insert(ExchangeKey(script: target.script, start: target.start))
            state.regroupedInto[target.script] = true
            update(&state, target.script)
            return target
        }
    }

    /// Whether a connection was regrouped into one of this session's exchanges: the rest of the session may then
    /// have gone over other connections.
    func wasRegroupedInto(_ script: Int) -> Bool {
        state.withLockedValue { $0.regroupedInto[script] }
    }

    /// Records the exchanges of a session that a regrouped connection played, those starting in `played`.
    func finishRegrouped(_ script: Int, played: Range<Int>) {
        state.withLockedValue { state in
            markPlayed(&state, script, played)
            update(&state, script)
        }
    }

    /// Counts the exchanges of a session starting in `played` as played; returns those that were not before.
    @discardableResult
    private func markPlayed(_ state: inout State, _ script: Int, _ played: Range<Int>) -> [ExchangeKey] {
        var marked: [ExchangeKey] = []
        for start in index.scripts[script].exchangeStarts where played.contains(start) {
            if state.played.insert(ExchangeKey(script: script, start: start)).inserted {
                marked.append(ExchangeKey(script: script, start: start))
            }
        }
        return marked
    }

    // MARK: Why a session is taken, and the report

    /// Why the earliest recorded session in `range` cannot serve another connection, if it is taken: it was
    /// replayed already, or a live connection follows it. Nil when sessions repeat or it is free.
    func whyTaken(in range: Range<Int>) -> (index: Int, alreadyReplayed: Bool)? {
        guard !repeatable, !range.isEmpty else { return nil }
        return state.withLockedValue { state in
            guard let earliest = range.map({ index.sorted[$0] }).min() else { return nil }
            if state.replays[earliest] > 0 || state.played.contains(ExchangeKey(script: earliest, start: 0)) {
                return (earliest, true)
            }
            return state.claims[earliest] > 0 ? (earliest, false) : nil
        }
    }

    private func update(_ state: inout State, _ script: Int) {
        // A session whose first exchange a connection played before being regrouped elsewhere is no longer new:
        // a new connection following it would play that exchange twice and leave another unplayed.
        let unused =
            repeatable
            || (state.replays[script] == 0 && !state.played.contains(ExchangeKey(script: script, start: 0)))
        let position = index.positions[script]
        if unused { state.unused.insert(script, at: position) } else { state.unused.remove(at: position) }
        if unused && state.claims[script] == 0 {
            state.free.insert(script, at: position)
        } else {
            state.free.remove(at: position)
        }
    }

    /// Sessions never replayed, by tape id: none of their exchanges played (or, for a session whose client sent
    /// nothing, no connection served). Recorded probes are never required, so never unused.
    var unusedSessionIDs: [Int64] {
        state.withLockedValue { state in
            index.scripts.indices.filter { script in
                guard !index.scripts[script].isProbe else { return false }
                let starts = index.exchangeStarts(of: script)
                guard !starts.isEmpty else { return state.replays[script] == 0 }
                return !starts.contains { state.played.contains(ExchangeKey(script: script, start: $0)) }
            }.map { index.scripts[$0].sessionID }
        }
    }

    /// Sessions played in part: some exchanges played, and the first one not, as (tape id, client offset). A
    /// connection pool's exchanges regrouped over its connections leave none; a client that skipped a call its
    /// session made leaves one.
    var incompleteSessions: [(session: Int64, offset: Int)] {
        state.withLockedValue { state in
            index.scripts.indices.compactMap { script in
                let starts = index.exchangeStarts(of: script)
                let unplayed = starts.filter { !state.played.contains(ExchangeKey(script: script, start: $0)) }
                guard let first = unplayed.first, unplayed.count < starts.count else { return nil }
                return (index.scripts[script].sessionID, first)
            }
        }
    }
}
