import Foundation

/// How fast replay plays the upstream's part.
public enum ReplayPace: Sendable, Hashable, CustomStringConvertible {
    /// No waits: each reply as soon as the client's bytes call for it.
    case fast
    /// The recorded delays divided by `factor`: 1 is as recorded, 2 twice as fast, 0.5 half as fast.
    case recorded(factor: Double)

    /// The factors a pace accepts: a thousand times slower to a million times faster. Beyond them, delays
    /// either overflow or round to nothing, and `fast` says the latter plainly.
    public static let factorRange: ClosedRange<Double> = 0.001...1_000_000

    /// Parses `fast`, `recorded`, or a factor such as `2x` or `0.5x`.
    ///
    /// - Throws: ``TapedeckError`` for anything else, or a factor outside ``factorRange``.
    public init(parsing text: String) throws {
        switch text {
        case "fast": self = .fast
        case "recorded": self = .recorded(factor: 1)
        default:
            guard text.hasSuffix("x"), let factor = Double(text.dropLast()), factor.isFinite, factor > 0 else {
                throw TapedeckError(
                    .invalidArgument,
                    "invalid pace '\(text)': use fast, recorded, or a factor such as 2x or 0.5x"
                )
            }
            guard Self.factorRange.contains(factor) else {
                throw TapedeckError(
                    .invalidArgument,
                    "invalid pace '\(text)': the factor must be from 0.001x to 1000000x"
                )
            }
            self = .recorded(factor: factor)
        }
    }

    public var description: String {
        switch self {
        case .fast: return "fast"
        case .recorded(let factor):
            if factor == 1 { return "recorded" }
            // Int(_:) traps on a factor too large for Int, which the library does not stop a caller from making.
            return factor == factor.rounded() && abs(factor) < 1e15 ? "\(Int(factor))x" : "\(factor)x"
        }
    }

    /// A recorded delay at this pace, saturating at `Int64.max` rather than trapping: a tape is untrusted input,
    /// and a library caller may pass any factor.
    func scale(_ nanoseconds: Int64) -> Int64 {
        switch self {
        case .fast: return 0
        case .recorded(let factor):
            let scaled = Double(max(0, nanoseconds)) / factor
            guard scaled.isFinite, scaled < 9.2e18 else { return scaled.isNaN ? 0 : .max }
            return max(0, Int64(scaled))
        }
    }
}

/// Plays one client connection against the recorded sessions of a route: the channel-free heart of replay.
///
/// The client's bytes choose the session. The matcher keeps the range of candidate sessions whose clients sent
/// the same bytes so far, follows the earliest recorded of them (the lead), and says the lead's upstream part
/// as it comes due. Bytes are compared as streams, so how the client splits its writes never matters. When the
/// lead stops matching, the earliest other candidate that also agrees with everything already sent takes over;
/// when none is left, the connection has said something the tape never heard.
///
/// Unless a recorded exchange elsewhere fits: when the client's bytes leave the lead at the start of an
/// exchange (after the lead's reply to everything before), the matcher looks among all recorded exchanges for
/// one whose client began the same way and goes on from there (regrouping). A connection pool carries its
/// requests over whichever connection is free, so each connection's sequence of exchanges differs from run to
/// run even when every exchange is as recorded.
struct ReplayMatcher {
    /// What the connection should do next, in order.
    enum Action: Equatable {
        case send(UpstreamBytes, delay: Int64)
        /// Send held bytes with some stretches filled with live values (see ``UpstreamEdit``): client values are
        /// found by their position in the connection's normalized stream.
        case sendEdited(Data, edits: [UpstreamEdit], delay: Int64)
        case halfClose(delay: Int64)
        case close(delay: Int64)
        case reset(delay: Int64)
        /// The client diverged from every recorded session: report, then reset.
        case mismatch(Mismatch)
    }

    /// Where and how a connection left the tape.
    struct Mismatch: Equatable, Sendable {
        var closestSessionID: Int64?
        var offset: Int
        var expected: Data
        var actual: Data
        var reason: String
    }

    /// Which recorded session the connection follows, and how.
    enum Lead: Equatable {
        /// None yet, or none any more: before ``start()`` and after ``connectionClosed()``.
        case none
        /// Following a session from its start, among the candidates that agree with every byte the client
        /// sent: the connection holds the claim on it, and gives it back when it leaves or finishes it.
        case following(SessionLedger.Claim)
        /// No session was free when the connection came: `placeholder` stands in until the client's first
        /// bytes are regrouped into an exchange. No claim.
        case waitingToRegroup(placeholder: Int)
        /// Regrouped into the exchange of `script` that starts at `from`: followed by its stream alone, no
        /// longer by the candidate range, and with no claim.
        case regrouped(script: Int, from: Int)

        /// The script followed, if any.
        var script: Int? {
            switch self {
            case .none: return nil
            case .following(let claim): return claim.script
            case .waitingToRegroup(let placeholder): return placeholder
            case .regrouped(let script, _): return script
            }
        }
    }

    /// How a connection ended, once it did.
    enum Ending: Equatable {
        /// The lead's part is played out and the connection closed (or being closed).
        case playedOut
        /// The client left the tape.
        case mismatched(Mismatch)
        /// The connection ended without a byte either way: a readiness probe (`nc -z`, a health check), which
        /// is neither a replay of a session nor a mismatch.
        case probe
    }

    private let catalog: SessionCatalog
    private var index: SessionIndex { catalog.index }
    private var ledger: SessionLedger { catalog.ledger }
    private let pace: ReplayPace
    private var range: Range<Int>
    private var received = 0
    /// Client bytes received minus the lead's position: nonzero once regrouped into another exchange.
    private var shift = 0
    /// How many times this connection went on in another recorded exchange than its lead's next one.
    private(set) var regroupedExchanges = 0
    /// The last bytes received, for the excerpt of a mismatch.
    private var recent = Data()
    private(set) var lead: Lead = .none
    private(set) var ending: Ending?
    private var nextStep = 0
    /// Bytes of `steps[nextStep]` already sent, when a new lead takes over in the middle of a send.
    private var partialSend = 0
    private var sentCount = 0

    /// Bytes of the upstream's part already sent to the client.
    var upstreamBytesSent: Int { sentCount }
    private var performedControl = false
    private var lastOffset: Int64 = 0
    private(set) var clientEnded = false
    /// The connection ended, or is ending, one way or another.
    var finished: Bool { ending != nil }
    /// Where the client left the tape, if it did.
    var mismatch: Mismatch? {
        if case .mismatched(let mismatch) = ending { return mismatch }
        return nil
    }
    /// The connection was a readiness probe.
    var probe: Bool { ending == .probe }
    /// Following the lead by its stream alone, regrouped or waiting to be, with no claim on it.
    private var regrouped: Bool {
        switch lead {
        case .waitingToRegroup, .regrouped: return true
        case .none, .following: return false
        }
    }
    private var provisional: Bool {
        if case .waitingToRegroup = lead { return true }
        return false
    }
    /// Where in the lead this connection began following it: 0, or the exchange it was regrouped into.
    private var followedFrom: Int {
        if case .regrouped(_, let from) = lead { return from }
        return 0
    }
    /// The session this connection played out had been finished by another connection first, which said the
    /// same at the same time; set by ``connectionClosed()``.
    private(set) var replayedTwice: Mismatch?
    /// The handshake group of this connection, once it is known: that of the session it followed through its
    /// first exchange, or of the first exchange it was regrouped into. Nil inside: not known yet.
    private var handshake: Int??
    /// The earliest session that matches every byte the client sent but was taken (replayed, or followed by
    /// another connection), to say so if the connection finds no other.
    private var takenCandidate: (index: Int, alreadyReplayed: Bool)?

    static let excerptLength = 48

    init(catalog: SessionCatalog, pace: ReplayPace) {
        self.catalog = catalog
        self.pace = pace
        self.range = catalog.index.all
    }

    /// The session being followed, by tape id.
    var sessionID: Int64? { lead.script.map { index.script(at: $0).sessionID } }

    /// A client connected: pick the earliest recorded session and say what its upstream says first.
    mutating func start() -> [Action] {
        guard let claim = ledger.claim(in: range) else {
            // Every session is in use or used up, but an exchange of one may still be unplayed: a pool opening
            // more connections than when recording. Wait for the client's bytes and regroup them, as long as
            // the upstream waited for the client too.
            if let silent = index.scripts.indices.first(where: { index.script(at: $0).firstStep(after: 0) == 0 }) {
                lead = .waitingToRegroup(placeholder: silent)
                return []
            }
            return fail(
                Mismatch(
                    closestSessionID: nil,
                    offset: 0,
                    expected: Data(),
                    actual: Data(),
                    reason: "no unused recorded session"
                )
            )
        }
        lead = .following(claim)
        let script = index.script(at: claim.script)
        if script.connectFailed {
            ending = .playedOut
            return [.reset(delay: pace.scale(script.connectFailureDelay))]
        }
        return dueActions()
    }

    /// Bytes from the client.
    mutating func receive(_ chunk: Data) -> [Action] {
        guard !finished, let current = lead.script, !chunk.isEmpty else { return [] }
        if provisional { return leaveLead(current, chunk: chunk) }
        if regrouped {
            let position = received - shift
            guard chunk.count <= index.script(at: current).clientStream.count - position,
                Self.commonPrefix(chunk, index.script(at: current).clientStream, at: position) == chunk.count
            else { return leaveLead(current, chunk: chunk) }
        } else {
            let narrowed = index.narrow(range, offset: received, chunk: chunk)
            guard !narrowed.isEmpty else { return leaveLead(current, chunk: chunk) }
            let before = range
            range = narrowed
            if !index.contains(range, script: current) {
                guard !performedControl, takeOver(where: { _ in true }) != nil else {
                    takenCandidate = ledger.whyTaken(in: narrowed)
                    // The lead stays, so the range must keep it: leaving the lead replays the part of the chunk
                    // that it matches, which a range without it would send straight back here.
                    range = before
                    return leaveLead(current, chunk: chunk)
                }
            }
        }
        accept(chunk)
        return dueActions()
    }

    private mutating func accept(_ chunk: Data) {
        received += chunk.count
        recent.append(chunk)
        if recent.count > Self.excerptLength { recent.removeFirst(recent.count - Self.excerptLength) }
    }

    private static func commonPrefix(_ chunk: Data, _ stream: Data, at position: Int) -> Int {
        var same = 0
        for (mine, recorded) in zip(chunk, stream.dropFirst(position)) {
            guard mine == recorded else { break }
            same += 1
        }
        return same
    }

    // MARK: Regrouping

    /// The client's bytes part from the lead's: play the lead up to its last exchange start within what still
    /// matches, then go on in another recorded exchange that fits, or report the mismatch.
    private mutating func leaveLead(_ current: Int, chunk: Data) -> [Action] {
        let script = index.script(at: current)
        let position = received - shift
        guard !performedControl, !clientEnded else { return diverged(from: current, chunk: chunk) }
        let same = Self.commonPrefix(chunk, script.clientStream, at: position)
        let start = script.exchangeStart(atOrBefore: position + same)
        if start > position, !provisional {
            // A later exchange of the lead begins within the bytes that still match: play up to it first.
            let head = chunk.prefix(start - position)
            return receive(Data(head)) + receive(Data(chunk.dropFirst(head.count)))
        }
        let exchangeStart = script.exchangeStart(atOrBefore: position)
        let pending =
            Data(
                script.clientStream[(script.clientStream.startIndex + exchangeStart)...].prefix(
                    position - exchangeStart
                )
            ) + chunk
        let already = position - exchangeStart
        // A connection past its first exchange made the handshake of the session it followed there.
        if handshake == nil, !provisional, exchangeStart > 0 { handshake = .some(index.handshakeGroup(of: current)) }
        let filter: SessionLedger.HandshakeFilter = handshake.map { .known($0) } ?? .unknown
        var held: SessionLedger.Claim?
        if case .following(let claim) = lead { held = claim }
        guard
            let target = ledger.regroup(
                pending,
                minimum: already + 1,
                leaving: current,
                played: followedFrom..<exchangeStart,
                releasing: held,
                handshake: filter
            )
        else {
            guard !provisional else {
                if let taken = ledger.whyTaken(in: index.narrow(index.all, offset: 0, chunk: chunk)) {
                    return fail(takenMismatch(taken, chunk: chunk))
                }
                return fail(
                    Mismatch(
                        closestSessionID: nil,
                        offset: 0,
                        expected: Data(),
                        actual: Data(chunk.prefix(Self.excerptLength)),
                        reason: "no unused recorded session or exchange begins with the client's bytes"
                    )
                )
            }
            return diverged(from: current, chunk: chunk)
        }
        takenCandidate = nil
        if handshake == nil {
            // Regrouped within its first exchange: its handshake is the one it went on in, if it opened a session.
            handshake = .some(target.start == 0 ? index.handshakeGroup(of: target.script) : nil)
        }
        let next = index.script(at: target.script)
        lead = .regrouped(script: target.script, from: target.start)
        regroupedExchanges += 1
        // The current exchange began `already` bytes ago; in the new lead it begins at `target.start`.
        shift = received - already - target.start
        nextStep = next.firstStep(after: target.start)
        partialSend = 0
        lastOffset = next.recordedArrival(ofPosition: target.start)
        let taken = target.matched - already
        accept(Data(chunk.prefix(taken)))
        var actions = dueActions()
        if taken < chunk.count { actions += receive(Data(chunk.dropFirst(taken))) }
        return actions
    }

    /// The client shut down its write half (or closed, or reset).
    mutating func endOfInput(reset: Bool) -> [Action] {
        guard !finished, var current = lead.script else { return [] }
        // Nothing either way, not even from the upstream's side of the tape: a probe that checks the port is
        // open. A reset ends it; a FIN ends it too, unless a recorded session ended just so.
        let silent = received == 0 && sentCount == 0 && regroupedExchanges == 0 && !performedControl
        if silent, reset || provisional {
            ending = .probe
            return []
        }
        var script = index.script(at: current)
        let position = received - shift
        if position < script.clientStream.count, !performedControl, !regrouped,
            let successor = takeOver(where: { [received] in $0.clientStream.count == received })
        {
            // Another candidate's client stopped right here, as this one did.
            current = successor
            script = index.script(at: successor)
        }
        clientEnded = true
        if position < script.clientStream.count, silent {
            ending = .probe
            return [.close(delay: 0)]
        }
        if position < script.clientStream.count {
            if !performedControl, script.exchangeStart(atOrBefore: position) == position,
                regrouped || ledger.wasRegroupedInto(current)
            {
                // Between exchanges, in a session whose exchanges went over several connections: the rest of
                // this one went over others.
                ending = .playedOut
                return reset ? [] : [.close(delay: 0)]
            }
            let expected = script.clientStream.dropFirst(position).prefix(Self.excerptLength)
            return fail(
                Mismatch(
                    closestSessionID: script.sessionID,
                    offset: received,
                    expected: Data(expected),
                    actual: Data(),
                    reason:
                        "the client ended after \(received) bytes; the recorded client sent \(script.clientStream.count)"
                )
            )
        }
        if reset {
            ending = .playedOut
            return []
        }
        return dueActions()
    }

    /// A toxic cut the connection: the session it followed is given back unplayed, and the connection counts as
    /// neither replayed nor mismatched.
    ///
    /// - Returns: The recorded session it followed, if any.
    @discardableResult
    mutating func abandon() -> Int64? {
        let session = sessionID
        if case .following(let claim) = lead { ledger.release(claim) }
        lead = .none
        return session
    }

    /// The connection is gone: the session counts as replayed if it was followed without a mismatch.
    mutating func connectionClosed() -> Int64? {
        let closing = lead
        let played = followedFrom..<max(followedFrom, received - shift)
        lead = .none
        switch closing {
        case .none, .waitingToRegroup:
            // Nothing was served: the client left before saying anything.
            return nil
        case .following(let claim):
            guard ending != .probe, mismatch == nil else {
                ledger.release(claim)
                return nil
            }
            // Every exchange it entered counts as played; one it never reached does not.
            guard ledger.finish(claim, played: played) else {
                replayedTwice = takenMismatch((claim.script, true), chunk: Data())
                return nil
            }
            return index.script(at: claim.script).sessionID
        case .regrouped(let script, _):
            guard ending != .probe, mismatch == nil else { return nil }
            ledger.finishRegrouped(script, played: played)
            return index.script(at: script).sessionID
        }
    }

    // MARK: Following the lead

    /// The earliest other candidate that `accepts`, preferring one that agrees with every byte already sent,
    /// resuming where the old lead was: what was due before the client's latest bytes has been played.
    /// Returns the new lead's script; only a connection following its session from the start takes over.
    private mutating func takeOver(where accepts: (ReplayScript) -> Bool) -> Int? {
        guard case .following(let held) = lead else { return nil }
        let current = held.script
        let told = (script: current, count: sentCount)
        guard let claim = ledger.claim(in: range, told: told, where: accepts) else { return nil }
        ledger.release(held)
        lead = .following(claim)
        let successor = claim.script
        let steps = index.script(at: successor).steps
        nextStep = 0
        partialSend = 0
        if claim.agreesWithTold {
            // Same upstream so far: skip exactly the bytes already sent, even in the middle of a step.
            var done = 0
            while nextStep < steps.count, case .send(let bytes) = steps[nextStep].action,
                done + bytes.count <= sentCount
            {
                done += bytes.count
                nextStep += 1
            }
            partialSend = sentCount - done
        } else {
            // A different upstream so far: its steps up to this point of the client's stream count as played.
            sentCount = 0
            while nextStep < steps.count, steps[nextStep].clientPosition <= received,
                !steps[nextStep].afterClientEnd || clientEnded
            {
                if case .send(let bytes) = steps[nextStep].action { sentCount += bytes.count }
                nextStep += 1
            }
        }
        return successor
    }

    private mutating func dueActions() -> [Action] {
        guard let current = lead.script else { return [] }
        let script = index.script(at: current)
        var actions: [Action] = []
        while nextStep < script.steps.count {
            let step = script.steps[nextStep]
            guard step.clientPosition <= received - shift, !step.afterClientEnd || clientEnded else { break }
            let base = max(lastOffset, script.recordedArrival(ofPosition: step.clientPosition))
            // Offsets come from the tape, which may hold anything: a difference that overflows is no delay at all
            // or the longest one, never a trap.
            let (difference, overflow) = step.offset.subtractingReportingOverflow(base)
            let delay = pace.scale(overflow ? (step.offset < base ? 0 : .max) : difference)
            lastOffset = max(lastOffset, step.offset)
            nextStep += 1
            switch step.action {
            case .send(let bytes):
                let rest = bytes.dropFirst(partialSend)
                sentCount += rest.count
                if !step.edits.isEmpty, partialSend == 0, case .inline(let data) = bytes {
                    // Echoes are found by where the recorded client sent their values; this connection sent
                    // them `shift` bytes later.
                    let edits = step.edits.map { edit -> UpstreamEdit in
                        guard case .clientValue(let position) = edit.source else { return edit }
                        return UpstreamEdit(range: edit.range, source: .clientValue(position: position + shift))
                    }
                    actions.append(.sendEdited(data, edits: edits, delay: delay))
                } else if !rest.isEmpty {
                    actions.append(.send(rest, delay: delay))
                }
                partialSend = 0
            case .halfClose:
                performedControl = true
                actions.append(.halfClose(delay: delay))
            case .close:
                performedControl = true
                ending = .playedOut
                actions.append(.close(delay: delay))
                return actions
            case .reset:
                performedControl = true
                ending = .playedOut
                actions.append(.reset(delay: delay))
                return actions
            }
        }
        // The recorded upstream said all it had to say and never closed: the relay closed it when the client
        // left. Close once this client has left too.
        if nextStep == script.steps.count, clientEnded, !finished {
            ending = .playedOut
            actions.append(.close(delay: 0))
        }
        return actions
    }

    private mutating func diverged(from current: Int, chunk: Data) -> [Action] {
        if let takenCandidate { return fail(takenMismatch(takenCandidate, chunk: chunk)) }
        let script = index.script(at: current)
        let position = received - shift
        let theirs = script.clientStream.dropFirst(position)
        let same = Self.commonPrefix(chunk, script.clientStream, at: position)
        let offset = received + same
        let context = min(16, same + recent.count, position + same)
        let actualBefore = (recent + chunk.prefix(same)).suffix(context)
        let expected = script.clientStream.dropFirst(position + same - context).prefix(context + Self.excerptLength)
        let actual = actualBefore + chunk.dropFirst(same).prefix(Self.excerptLength)
        let reason =
            theirs.count <= same
            ? "the client sent more than the \(script.clientStream.count) bytes recorded"
            : "the client's bytes differ from every recorded session"
        return fail(
            Mismatch(
                closestSessionID: script.sessionID,
                offset: offset,
                expected: Data(expected),
                actual: Data(actual),
                reason: reason
            )
        )
    }

    /// The mismatch of a connection whose bytes only a taken session matches.
    private func takenMismatch(_ taken: (index: Int, alreadyReplayed: Bool), chunk: Data) -> Mismatch {
        let id = index.script(at: taken.index).sessionID
        return Mismatch(
            closestSessionID: id,
            offset: received,
            expected: Data(),
            actual: Data((recent + chunk).suffix(Self.excerptLength)),
            reason: taken.alreadyReplayed
                ? "session \(id) was already replayed; --repeat allows it again"
                : "session \(id) is being replayed to another connection; --repeat allows it again"
        )
    }

    /// The connection cannot go on (the tape could not be read): it ends as a mismatch with `reason`, at the
    /// client bytes received so far.
    mutating func abandon(reason: String) -> Mismatch {
        let mismatch = Mismatch(
            closestSessionID: sessionID,
            offset: received,
            expected: Data(),
            actual: Data(),
            reason: reason
        )
        _ = fail(mismatch)
        return mismatch
    }

    private mutating func fail(_ mismatch: Mismatch) -> [Action] {
        ending = .mismatched(mismatch)
        return [.mismatch(mismatch)]
    }
}
