import Foundation

/// A mismatch of a replay report worked out against the recorded session closest to it: which exchange of that
/// session the client left it in, and the recorded and the live bytes of that exchange side by side.
///
/// A report keeps a few bytes around the first differing byte of each side (``ReplayReport/Mismatch``), in the form
/// replay compares streams in: normalized by the route's rules, with the listen address as `{tapedeck:listen}`.
/// The recorded side is shown in that form too, so that both sides line up. The bytes before the difference
/// matched, so the live side of the exchange is the recorded bytes up to the difference followed by the live
/// excerpt from it. The excerpt is found in the recorded stream, near the report's offset, to place the difference
/// exactly.
struct MismatchDiagnosis: Sendable, Encodable {
    /// One side's bytes of the exchange that differed.
    struct Side: Sendable, Hashable, Encodable {
        /// The bytes (base64 in JSON).
        var payload: Data
        /// The offset of the first byte in the client's stream.
        var start: Int
        /// The index in ``payload`` of the first byte that differs; the payload's length when this side ended
        /// before it.
        var difference: Int
    }

    /// The mismatch's number in the report, from 1.
    var index: Int
    /// The mismatch as the report has it.
    var mismatch: ReplayReport.Mismatch
    /// The recorded session closest to the connection, when there is one.
    var session: Int64?
    /// The client's exchange that differed, from 1: a new one each time the client speaks after the upstream did.
    var exchange: Int?
    /// The recorded event holding the first differing byte (or the client's last, when the live client went on
    /// past the recording).
    var seq: Int64?
    /// The first differing byte's offset in the recorded client stream.
    var recordedOffset: Int?
    /// The recorded client bytes of the exchange.
    var recorded: Side?
    /// What the live client sent in the exchange, as far as the report knows it.
    var live: Side

    /// The closest session's client stream as replay compares it: normalized by the route's rules and the
    /// recording listener's address (`{tapedeck:listen}`), the form a report's excerpts are in.
    struct ComparedStream: Sendable {
        /// The stream.
        var bytes: Data
        /// Where its exchanges start, ascending, from 0.
        var exchangeStarts: [Int]
        /// Each client read's event and where it ends in the stream, in order.
        var reads: [(seq: Int64, end: Int)]

        /// The stream of a session's replay script.
        init(_ script: ReplayScript, clientEvents: [Int64]) {
            bytes = script.clientStream
            exchangeStarts = script.exchangeStarts
            // A script keeps one arrival per client read; should a lens have merged some, no event is named.
            reads =
                script.clientArrivals.count == clientEvents.count
                ? zip(clientEvents, script.clientArrivals).map { ($0, $1.end) } : []
        }

        init(bytes: Data, exchangeStarts: [Int], reads: [(seq: Int64, end: Int)]) {
            self.bytes = bytes
            self.exchangeStarts = exchangeStarts
            self.reads = reads
        }
    }

    /// Works out mismatch `index` of a report against `compared`, the closest session's client stream (nil when
    /// the mismatch names no session or the tape has not got it).
    init(index: Int, mismatch: ReplayReport.Mismatch, compared: ComparedStream?) {
        self.index = index
        self.mismatch = mismatch
        let expected = ByteExcerpt.bytes(rendered: mismatch.expected)
        let actual = ByteExcerpt.bytes(rendered: mismatch.actual)
        let same = zip(expected, actual).prefix { $0 == $1 }.count
        guard let compared, mismatch.closestSession != nil else {
            live = Side(payload: actual, start: max(0, mismatch.offset - same), difference: same)
            return
        }
        session = mismatch.closestSession
        let stream = compared.bytes
        let offset = Self.recordedOffset(of: expected, same: same, near: mismatch.offset, in: stream)
        recordedOffset = offset
        // The exchange holding the first differing byte; the last one when the live client went on past the end.
        let exchangeIndex = max(
            0,
            (compared.exchangeStarts.lastIndex { $0 <= min(offset, max(0, stream.count - 1)) }) ?? 0
        )
        exchange = exchangeIndex + 1
        let start = compared.exchangeStarts.isEmpty ? 0 : compared.exchangeStarts[exchangeIndex]
        let end =
            exchangeIndex + 1 < compared.exchangeStarts.count
            ? compared.exchangeStarts[exchangeIndex + 1] : stream.count
        seq = compared.reads.first { $0.end > offset }?.seq ?? compared.reads.last?.seq
        let bytes = stream.subdata(in: start..<end)
        let difference = min(offset, end) - start
        recorded = Side(payload: bytes, start: start, difference: difference)
        live = Side(payload: bytes.prefix(difference) + actual.dropFirst(same), start: start, difference: difference)
    }

    /// Where the first differing byte is in the recorded client stream: where the recorded excerpt occurs nearest
    /// the report's offset, plus the bytes both excerpts share; the report's offset (within the stream) when the
    /// excerpt is not found or empty.
    static func recordedOffset(of expected: Data, same: Int, near offset: Int, in stream: Data) -> Int {
        let fallback = min(max(0, offset), stream.count)
        guard !expected.isEmpty else { return fallback }
        var best: Int?
        var searchFrom = stream.startIndex
        // Bounded: each step moves past one occurrence, and a stream has at most its length of them.
        while searchFrom < stream.endIndex,
            let range = stream.range(of: expected, options: [], in: searchFrom..<stream.endIndex)
        {
            let candidate = range.lowerBound - stream.startIndex + same
            if best.map({ abs($0 - offset) > abs(candidate - offset) }) ?? true { best = candidate }
            if candidate > offset { break }
            searchFrom = range.lowerBound + 1
        }
        return best ?? fallback
    }

    enum CodingKeys: String, CodingKey {
        case index, session, exchange, seq, recorded, live
        case recordedOffset = "recorded_offset"
    }

    /// The mismatch's fields (with its hint) and the diagnosis's, in one object.
    func encode(to encoder: any Encoder) throws {
        try mismatch.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(index, forKey: .index)
        try container.encode(session, forKey: .session)
        try container.encode(exchange, forKey: .exchange)
        try container.encode(seq, forKey: .seq)
        try container.encode(recordedOffset, forKey: .recordedOffset)
        try container.encode(recorded, forKey: .recorded)
        try container.encode(live, forKey: .live)
    }
}
