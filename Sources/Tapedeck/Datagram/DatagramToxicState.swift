import NIOCore

/// One toxic as one UDP flow meets it: whether it was drawn for the flow, its random source there, the fate of the
/// last datagram it considered (for `correlation`), and whether the current exchange matches it.
struct DatagramToxicState {
    /// The toxic.
    let toxic: Toxic
    /// Whether the toxic acts on this flow at all: its `toxicity` drawn for the flow, and its `session`.
    let isDrawn: Bool
    /// Where its chances and its jitter come from; seeded per route, flow and toxic.
    private var generator: SeededGenerator
    /// Whether the last datagram it considered was affected; nil before the first, which is drawn with the plain
    /// probability.
    private var previous: Bool?
    /// The regular expression of a `match_regex`, compiled once.
    private let regex: Regex<AnyRegexOutput>?
    /// Whether the current exchange's client datagram holds the toxic's `match` (or matches its `match_regex`).
    private(set) var exchangeMatches = false
    /// Whether it has fired in this flow, so that the first firing is logged louder than the rest.
    var hasFired = false

    /// The state of `toxic` in the flow of order `session` on the route `faults` holds.
    init(_ toxic: Toxic, faults: RouteFaults, session: Int) {
        self.toxic = toxic
        isDrawn = (toxic.placement.session.map { $0 == session } ?? true) && faults.draws(toxic, session: session)
        generator = faults.generator(for: toxic, session: session)
        // Validated when the toxic was added; one that does not compile matches nothing.
        regex = toxic.placement.matchRegex.flatMap { try? Regex($0) }
    }

    /// The client spoke: a new exchange starts with `datagram`, which holds the toxic's `match` or not.
    mutating func clientSpoke(_ datagram: ByteBuffer) {
        if let match = toxic.placement.match {
            exchangeMatches = datagram.withUnsafeReadableBytes { bytes in
                match.withUnsafeBytes { ByteSearch.contains($0, in: bytes) }
            }
        } else if let regex {
            // Bytes read as Latin-1: one character per byte, whatever they hold.
            let text = String(String.UnicodeScalarView(datagram.readableBytesView.map { Unicode.Scalar($0) }))
            exchangeMatches = (try? regex.firstMatch(in: text)) != nil
        }
    }

    /// Whether the toxic acts on a datagram of `stream`, of exchange `exchange`, starting `start` bytes into the
    /// exchange's bytes that way (or into the flow's, when the toxic is not placed on exchanges) and `count` long,
    /// on a flow served from `recordedSession` (replay only).
    func acts(on stream: ToxicStream, exchange: Int, start: Int, count: Int, recordedSession: Int64?) -> Bool {
        guard isDrawn, toxic.stream == stream else { return false }
        let placement = toxic.placement
        if let pinned = placement.recordedSession, pinned != recordedSession { return false }
        if let pinned = placement.exchange, pinned != exchange { return false }
        if placement.match != nil || placement.matchRegex != nil, !exchangeMatches || exchange == 0 { return false }
        // A datagram cannot be cut: the one that holds byte `offset` is the first the toxic acts on.
        if let offset = placement.offset, start + max(count, 1) <= offset { return false }
        return true
    }

    /// Draws whether the toxic affects the next datagram it considers: with `probability`, pulled toward the last
    /// datagram's fate by `correlation` (`c * last + (1 - c) * probability`, as netem correlates), so that with a
    /// high correlation losses come in bursts while their share stays `probability`.
    mutating func drawsDatagram() -> Bool {
        let probability = toxic.attributes.probability
        let correlation = toxic.attributes.correlation
        let chance: Double
        if let previous {
            chance = correlation * (previous ? 1 : 0) + (1 - correlation) * probability
        } else {
            chance = probability
        }
        // Drawn even when the chance is certain, so that the numbers each datagram gets do not depend on it.
        let affected = Double.random(in: 0..<1, using: &generator) < chance
        previous = affected
        return affected
    }

    /// The delay of a `latency` toxic for one datagram, in nanoseconds: `latency` ms plus or minus up to `jitter`
    /// ms, never below 0.
    mutating func latencyNanoseconds() -> Int64 {
        var milliseconds = Int64(toxic.attributes.latency)
        let jitter = Int64(toxic.attributes.jitter)
        if jitter > 0 { milliseconds += Int64.random(in: -jitter...jitter, using: &generator) }
        return max(0, milliseconds) * 1_000_000
    }
}
