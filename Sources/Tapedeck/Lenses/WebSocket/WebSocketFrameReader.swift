import NIOWebSocket

/// Cuts a client's WebSocket stream into frames as its bytes arrive, however the reads split them: a channel-free
/// frame parser (NIOWebSocket's `WebSocketFrameDecoder` needs a channel).
///
/// ```swift
/// var reader = WebSocketFrameReader()
/// reader.append(bytes)
/// while let frame = try reader.next() { print(frame.opcode, frame.payload.count) }
/// ```
struct WebSocketFrameReader: Sendable {
    /// A stream this reader cannot follow: a reserved opcode, a control frame that is fragmented or longer than
    /// 125 bytes, a length beyond the maximum or with its top bit set.
    struct Malformed: Error, Sendable, Hashable {
        var reason: String
    }

    /// The longest payload a control frame may have.
    static let maximumControlPayload = 125

    /// The longest payload a frame may announce.
    let maximumPayload: Int
    /// Bytes not yet read into frames: a frame's first part, waiting for the rest.
    private var buffer: [UInt8] = []
    /// Where the unread bytes begin in `buffer`.
    private var start = 0

    init(maximumPayload: Int = 16 * 1024 * 1024) {
        self.maximumPayload = maximumPayload
    }

    /// Bytes waiting for the rest of their frame.
    var buffered: ArraySlice<UInt8> { buffer[start...] }

    /// The client's next bytes.
    mutating func append(_ bytes: some Collection<UInt8>) {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Forgets the bytes waiting: a lens that gave up on the stream passed them on as they are.
    mutating func removeAll() {
        buffer = []
        start = 0
    }

    /// The next whole frame, unmasked; nil while its bytes have not all come.
    ///
    /// - Throws: ``Malformed`` for a frame no client may send; the reader is not to be used after that.
    mutating func next() throws(Malformed) -> WebSocketClientFrame? {
        let available = buffer.count - start
        guard available >= 2 else { return nil }
        let first = buffer[start]
        let second = buffer[start + 1]
        let opcodeBits = first & 0x0F
        // Opcodes 3 to 7 and 0xB to 0xF are reserved: no extension this lens knows defines them.
        guard (0x0...0x2).contains(opcodeBits) || (0x8...0xA).contains(opcodeBits),
            let opcode = WebSocketOpcode(encodedWebSocketOpcode: opcodeBits)
        else { throw Malformed(reason: "reserved opcode \(opcodeBits)") }
        let fin = first & 0x80 != 0
        let isMasked = second & 0x80 != 0
        let shortLength = Int(second & 0x7F)
        let lengthBytes = shortLength == 126 ? 2 : shortLength == 127 ? 8 : 0
        let headerLength = 2 + lengthBytes + (isMasked ? 4 : 0)
        guard available >= headerLength else { return nil }
        var length: UInt64 = UInt64(shortLength)
        if lengthBytes > 0 {
            length = 0
            for index in 0..<lengthBytes { length = length << 8 | UInt64(buffer[start + 2 + index]) }
        }
        guard length >> 63 == 0 else { throw Malformed(reason: "a 64-bit length with its top bit set") }
        if opcode.isControlOpcode {
            guard fin else { throw Malformed(reason: "a fragmented control frame") }
            guard length <= UInt64(Self.maximumControlPayload) else {
                throw Malformed(reason: "a control frame of \(length) bytes")
            }
        }
        guard length <= UInt64(maximumPayload) else {
            throw Malformed(reason: "a frame of \(length) bytes, over the maximum of \(maximumPayload)")
        }
        let payloadLength = Int(length)
        guard available - headerLength >= payloadLength else { return nil }
        let payloadStart = start + headerLength
        var payload = Array(buffer[payloadStart..<(payloadStart + payloadLength)])
        if isMasked, let mask = WebSocketMaskingKey(buffer[(payloadStart - 4)..<payloadStart]) {
            for index in payload.indices { payload[index] ^= mask[index & 3] }
        }
        let end = payloadStart + payloadLength
        defer { start = end }
        return WebSocketClientFrame(
            fin: fin,
            reservedBits: WebSocketFrame.ReservedBits(rawValue: first & 0x70),
            opcode: opcode,
            payload: payload,
            raw: Array(buffer[start..<end])
        )
    }
}
