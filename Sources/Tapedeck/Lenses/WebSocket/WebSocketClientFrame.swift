import NIOWebSocket

/// One frame a WebSocket client sent (RFC 6455, section 5.2), read from the stream with its payload unmasked.
///
/// A client masks every frame with a fresh random key, so the same message is new bytes on every run; replay
/// compares what the mask hides.
struct WebSocketClientFrame: Sendable, Equatable {
    /// Whether this frame ends its message.
    var fin: Bool
    /// The RSV1 to RSV3 bits: an extension's (permessage-deflate sets RSV1 on a compressed message's first frame).
    var reservedBits: WebSocketFrame.ReservedBits
    var opcode: WebSocketOpcode
    /// The payload, unmasked.
    var payload: [UInt8]
    /// The frame as it was in the stream, header, mask and masked payload, for a lens that must let it pass as it
    /// is.
    var raw: [UInt8]

    /// Whether this is a ping, pong or close, which may come between the fragments of a message.
    var isControl: Bool { opcode.isControlOpcode }

    /// An unmasked frame from the upstream's side: how replay answers a client's ping with a pong of its own.
    ///
    /// - Parameter payload: At most 125 bytes, as a control frame's must be.
    static func unmaskedControlFrame(_ opcode: WebSocketOpcode, payload: [UInt8]) -> [UInt8] {
        precondition(payload.count <= WebSocketFrameReader.maximumControlPayload, "a control frame's payload is short")
        return [0x80 | UInt8(webSocketOpcode: opcode), UInt8(payload.count)] + payload
    }
}
