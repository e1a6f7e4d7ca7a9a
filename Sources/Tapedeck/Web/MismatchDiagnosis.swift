import Foundation

/// A mismatch of a replay report worked out against the recorded session closest to it: which exchange of that
/// session the client left it in, and the recorded and the live bytes of that exchange side by side.
///
/// A report keeps a few bytes around the first differing byte of each side (``ReplayReport/Mismatch``). The bytes
/// before the difference matched, so the live side of the exchange is the recorded bytes up to the difference
/// followed by the live excerpt from it. The excerpt is found in the recorded client stream, near the report's
/// offset, to place the difference exactly.
public struct MismatchDiagnosis: Sendable, Hashable, Encodable {
    /// One side's bytes of the exchange that differed.
    public struct Side: Sendable, Hashable, Encodable {
        /// The bytes (base64 in JSON).
        public var payload: Data
        /// The offset of the first byte in the client's stream.
        public var start: Int
        /// The index in ``payload`` of the first byte that differs; the payload's length when this side ended
        /// before it.
        public var difference: Int
    }

    /// The mismatch's number in the report, from 1.
    public var index: Int
    /// The mismatch as the report has it.
    public var mismatch: ReplayReport.Mismatch
    /// The recorded session closest to the connection, when there is one.
    public var session: Int64?
    /// The client's exchange that differed, from 1: a new one each time the client speaks after the upstream did.
    public var exchange: Int?
    /// The recorded event holding the first differing byte (or the client's last, when the live client went on
    /// past the recording).
    public var seq: Int64?
    /// The first differing byte's offset in the recorded client stream.
    public var recordedOffset: Int?
    /// The recorded client bytes of the exchange.
    public var recorded: Side?
    /// What the live client sent in the exchange, as far as the report knows it.
    public var live: Side

    /// A client data event of the closest session, placed in its stream and its exchange.
    private struct ClientChunk {
        var seq: Int64
        var start: Int
        var count: Int
        var exchange: Int
    }

    /// Works out mismatch `index` of a report against `events`, the closest session's events in order (empty when
    /// the mismatch names no session).
    public init(index: Int, mismatch: ReplayReport.Mismatch, events: [EventRecord]) {
        self.index = index
        self.mismatch = mismatch
        let expected = ByteExcerpt.bytes(rendered: mismatch.expected)
        let actual = ByteExcerpt.bytes(rendered: mismatch.actual)
        let same = zip(expected, actual).prefix { $0 == $1 }.count
        session = mismatch.closestSession
        guard mismatch.closestSession != nil else {
            live = Side(payload: actual, start: max(0, mismatch.offset - same), difference: same)
            return
        }
        var stream = Data()
        var chunks: [ClientChunk] = []
        var exchange = 0
        var upstreamSpoke = true
        for event in events where event.kind == .data {
            guard event.direction == .clientToUpstream else {
                upstreamSpoke = true
                continue
            }
            let payload = event.payload ?? Data()
            if upstreamSpoke { exchange += 1 }
            upstreamSpoke = false
            chunks.append(ClientChunk(seq: event.seq, start: stream.count, count: payload.count, exchange: exchange))
            stream.append(payload)
        }
        let offset = Self.recordedOffset(of: expected, same: same, near: mismatch.offset, in: stream)
        recordedOffset = offset
        guard let chunk = chunks.last(where: { $0.start <= offset }) ?? chunks.first else {
            live = Side(payload: actual, start: offset - same, difference: same)
            return
        }
        self.exchange = chunk.exchange
        seq = chunk.seq
        let inExchange = chunks.filter { $0.exchange == chunk.exchange }
        let start = inExchange.first?.start ?? chunk.start
        let end = inExchange.last.map { $0.start + $0.count } ?? stream.count
        let bytes = stream.subdata(in: start..<end)
        let difference = min(offset, end) - start
        recorded = Side(payload: bytes, start: start, difference: difference)
        live = Side(
            payload: bytes.prefix(difference) + actual.dropFirst(same),
            start: start,
            difference: difference
        )
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
    public func encode(to encoder: any Encoder) throws {
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
