/// One HTTP/2 frame as it was on the wire (RFC 9113 §4.1): the nine-byte header's fields and the payload, padding
/// and priority fields still in it.
struct HTTP2WireFrame: Sendable, Hashable {
    /// The frame types replay reads; others (PRIORITY, GOAWAY, extensions) are carried by their number alone.
    enum Kind: UInt8, Sendable {
        case data = 0x0
        case headers = 0x1
        case priority = 0x2
        case resetStream = 0x3
        case settings = 0x4
        case pushPromise = 0x5
        case ping = 0x6
        case goAway = 0x7
        case windowUpdate = 0x8
        case continuation = 0x9
    }

    /// The flags replay reads.
    enum Flag {
        static let endStream: UInt8 = 0x1
        static let ack: UInt8 = 0x1
        static let endHeaders: UInt8 = 0x4
        static let padded: UInt8 = 0x8
        static let priority: UInt8 = 0x20
    }

    /// The frame's type number.
    var type: UInt8
    /// The frame's flags.
    var flags: UInt8
    /// The stream it belongs to; 0 for the connection.
    var streamID: UInt32
    /// The payload, as sent.
    var payload: [UInt8]

    /// The type, when it is one replay knows.
    var kind: Kind? { Kind(rawValue: type) }

    /// Whether `flag` is set.
    func has(_ flag: UInt8) -> Bool { flags & flag != 0 }

    /// The payload of a DATA or HEADERS frame without its padding, and for HEADERS without the priority fields;
    /// nil when the padding or the fields are longer than the payload (a malformed frame).
    var content: ArraySlice<UInt8>? {
        var start = 0
        var end = payload.count
        if has(Flag.padded), kind == .data || kind == .headers {
            guard let padding = payload.first.map(Int.init), padding < payload.count else { return nil }
            start = 1
            end = payload.count - padding
        }
        if kind == .headers, has(Flag.priority) { start += 5 }
        guard start <= end else { return nil }
        return payload[start..<end]
    }
}

/// Splits one direction of an HTTP/2 connection into frames, without a channel: the recorded streams of a tape are
/// decoded offline, where NIOHTTP2's own frame decoder (internal to it) cannot be used.
///
/// A channel-free state machine: feed it bytes as they arrived, split anywhere, and it hands back each frame once
/// its last byte is in, holding the rest. A frame's length is 24 bits, so what it holds is bounded by
/// ``maximumFrameLength`` (16 MiB by default); a longer frame fails the stream (``failed``), and so does a stream
/// that is not HTTP/2 at all, since everything after a bad frame is noise.
///
/// ```swift
/// var reader = HTTP2FrameReader(expectingPreface: true)
/// for frame in reader.feed(chunk) { print(frame.kind, frame.streamID) }
/// ```
struct HTTP2FrameReader: Sendable {
    /// What a client sends before its first frame (RFC 9113 §3.4).
    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// The longest frame HTTP/2 can frame: its length field is 24 bits.
    static let maximumFrameLength = (1 << 24) - 1

    private let maximumFrameLength: Int
    /// Bytes of the preface still expected, or 0 once it was read (or never expected).
    private var prefaceLeft: Int
    private var pending: [UInt8] = []
    /// Why the stream cannot be read further, once it cannot: every later byte is ignored.
    private(set) var failed: String?

    /// - Parameters:
    ///   - expectingPreface: Whether the stream starts with the client preface (a client's stream does).
    ///   - maximumFrameLength: The longest frame payload accepted.
    init(expectingPreface: Bool, maximumFrameLength: Int = HTTP2FrameReader.maximumFrameLength) {
        prefaceLeft = expectingPreface ? Self.preface.count : 0
        self.maximumFrameLength = maximumFrameLength
    }

    /// Bytes are held that do not yet make a whole frame.
    var hasPendingBytes: Bool { !pending.isEmpty }

    /// Takes the next bytes of the stream.
    ///
    /// - Returns: The frames these bytes complete, in order.
    mutating func feed(_ bytes: some Collection<UInt8>) -> [HTTP2WireFrame] {
        guard failed == nil else { return [] }
        pending.append(contentsOf: bytes)
        var offset = 0
        if prefaceLeft > 0 {
            let start = Self.preface.count - prefaceLeft
            let available = min(prefaceLeft, pending.count)
            guard pending[0..<available].elementsEqual(Self.preface[start..<(start + available)]) else {
                return fail("the client did not start with the HTTP/2 preface")
            }
            prefaceLeft -= available
            offset = available
        }
        var frames: [HTTP2WireFrame] = []
        while pending.count - offset >= 9 {
            let length = Int(pending[offset]) << 16 | Int(pending[offset + 1]) << 8 | Int(pending[offset + 2])
            guard length <= maximumFrameLength else {
                return frames + fail("a frame of \(length) bytes, more than \(maximumFrameLength)")
            }
            guard pending.count - offset - 9 >= length else { break }
            let streamID =
                (UInt32(pending[offset + 5]) << 24 | UInt32(pending[offset + 6]) << 16
                    | UInt32(pending[offset + 7]) << 8 | UInt32(pending[offset + 8])) & 0x7FFF_FFFF
            frames.append(
                HTTP2WireFrame(
                    type: pending[offset + 3],
                    flags: pending[offset + 4],
                    streamID: streamID,
                    payload: Array(pending[(offset + 9)..<(offset + 9 + length)])
                )
            )
            offset += 9 + length
        }
        // One removal per feed, not per frame, so a chunk of many small frames costs linear time.
        if offset > 0 { pending.removeFirst(offset) }
        return frames
    }

    private mutating func fail(_ reason: String) -> [HTTP2WireFrame] {
        failed = reason
        pending = []
        return []
    }
}
