import Foundation
import NIOWebSocket

/// A client's WebSocket frames after the handshake, turned into what replay compares: each message once, whole and
/// unmasked, however the client fragmented and masked it; its pings answered; its pongs and pings left out.
///
/// A message's canonical form is a tag naming its opcode and its reserved bits (RSV1 marks a permessage-deflate
/// compressed message, compared on its compressed bytes: deflate output is the same for the same messages), then
/// its unmasked payload: `{tapedeck:websocket:text}hello`. A close frame is compared the same way, on its code and
/// reason. A message's pieces are released when its last frame comes, and account for every raw byte
/// of its frames and of the control frames between them, in stream order.
///
/// What this cannot follow (a reserved opcode, a message too long) it gives up on: what it holds and everything
/// after passes verbatim, as without a lens.
///
/// ```swift
/// var stream = WebSocketClientStream()
/// let output = stream.feed(frameBytes)
/// for reply in output.replies { write(reply) }  // pongs
/// matcher.receive(output.canonical)
/// ```
struct WebSocketClientStream: Sendable {
    /// A message whose last frame has not come yet.
    private struct PendingMessage: Sendable {
        var opcode: WebSocketOpcode
        var reservedBits: WebSocketFrame.ReservedBits
        var payload: [UInt8] = []
        /// Its frames as sent, and the control frames between them: what a flush lets pass as it is.
        var raw: [UInt8] = []
        /// The canonical forms of close frames that came between its fragments, after the message's own.
        var trailing: [UInt8] = []
        /// A flush let its beginning pass verbatim: the rest of it passes verbatim too.
        var isReleased = false
    }

    /// The longest message followed; a longer one ends the following.
    let maximumMessage: Int
    private var reader: WebSocketFrameReader
    private var message: PendingMessage?
    /// How many of the reader's waiting bytes a flush already let pass verbatim.
    private var releasedOfBuffered = 0
    /// The stream made no sense as WebSocket frames, or went beyond a maximum: it passes verbatim from there on.
    private(set) var hasGivenUp = false

    init(maximumMessage: Int = 16 * 1024 * 1024) {
        self.maximumMessage = maximumMessage
        reader = WebSocketFrameReader(maximumPayload: maximumMessage)
    }

    /// Bytes are held: a frame not whole yet, or frames of a message whose last frame has not come.
    var isHolding: Bool {
        if reader.buffered.count > releasedOfBuffered { return true }
        guard let message, !message.isReleased else { return false }
        return !message.raw.isEmpty
    }

    /// The client's next bytes: the pieces of the messages they complete, and the pongs that answer their pings.
    mutating func feed(_ bytes: some Collection<UInt8>) -> LensOutput {
        guard !hasGivenUp else { return .verbatim(Data(bytes)) }
        reader.append(bytes)
        var output = LensOutput()
        while !hasGivenUp {
            let frame: WebSocketClientFrame?
            do {
                frame = try reader.next()
            } catch {
                giveUp(into: &output)
                break
            }
            guard let frame else { break }
            take(frame, into: &output)
        }
        return output
    }

    /// The client went quiet or ended: what is held passes as it is, and so does the rest of a message begun.
    mutating func flush() -> LensOutput {
        var output = LensOutput()
        if var pending = message, !pending.isReleased {
            message = nil
            Self.append(verbatim: pending.raw, to: &output)
            pending.raw = []
            pending.payload = []
            pending.trailing = []
            pending.isReleased = true
            message = pending
        }
        Self.append(verbatim: reader.buffered.dropFirst(releasedOfBuffered), to: &output)
        releasedOfBuffered = reader.buffered.count
        return output
    }

    private mutating func take(_ frame: WebSocketClientFrame, into output: inout LensOutput) {
        // The bytes of this frame a flush already let pass.
        let released = releasedOfBuffered
        releasedOfBuffered = 0
        if frame.opcode == .ping {
            // Answered whatever happens to the ping's bytes: replay is the only one that can.
            output.replies.append(Data(WebSocketClientFrame.unmaskedControlFrame(.pong, payload: frame.payload)))
        }
        if released > 0 {
            Self.append(verbatim: frame.raw.dropFirst(released), to: &output)
            if !frame.isControl {
                // The message this frame begins or goes on with passes verbatim to its end.
                if frame.fin {
                    message = nil
                } else if message == nil {
                    message = PendingMessage(opcode: frame.opcode, reservedBits: frame.reservedBits, isReleased: true)
                }
            }
            return
        }
        if frame.isControl {
            takeControl(frame, into: &output)
        } else {
            takeData(frame, into: &output)
        }
    }

    /// A ping or pong leaves the match (the ping answered by replay, the pong answering an upstream ping replay
    /// sent as recorded); a close is compared on its code and reason.
    private mutating func takeControl(_ frame: WebSocketClientFrame, into output: inout LensOutput) {
        let canonical = frame.opcode == .connectionClose ? Self.canonical(frame.opcode, [], frame.payload) : []
        if var pending = message, !pending.isReleased {
            // Between the fragments of a message: its bytes go with the message's. (Taken out of `message` while
            // it grows, so that its bytes are not copied.)
            message = nil
            pending.raw += frame.raw
            pending.trailing += canonical
            message = pending
            return
        }
        output.pieces.append(.replaced(rawCount: frame.raw.count, canonical: Data(canonical)))
    }

    private mutating func takeData(_ frame: WebSocketClientFrame, into output: inout LensOutput) {
        if frame.opcode == .continuation {
            guard message != nil else { return giveUp(into: &output, after: frame.raw) }
        } else {
            guard message == nil else { return giveUp(into: &output, after: frame.raw) }
            if frame.fin {
                // A message in one frame, by far the most common: no need to keep its bytes.
                let canonical = Self.canonical(frame.opcode, frame.reservedBits, frame.payload)
                output.pieces.append(.replaced(rawCount: frame.raw.count, canonical: Data(canonical)))
                return
            }
            message = PendingMessage(opcode: frame.opcode, reservedBits: frame.reservedBits)
        }
        var pending = message!
        message = nil
        if pending.isReleased {
            Self.append(verbatim: frame.raw, to: &output)
            if !frame.fin { message = pending }
            return
        }
        pending.raw += frame.raw
        pending.payload += frame.payload
        guard pending.payload.count <= maximumMessage else {
            message = pending
            return giveUp(into: &output)
        }
        guard frame.fin else {
            message = pending
            return
        }
        let canonical = Self.canonical(pending.opcode, pending.reservedBits, pending.payload) + pending.trailing
        output.pieces.append(.replaced(rawCount: pending.raw.count, canonical: Data(canonical)))
    }

    /// Lets pass what is held, as it is; from here on every byte passes verbatim. For a stream that made no sense
    /// (a malformed frame; a continuation with no message begun, or a new message inside another), or a message
    /// too long to hold.
    ///
    /// - Parameter frame: A frame the reader already moved past, which passes in its place: after the message
    ///   held, before the bytes still waiting.
    private mutating func giveUp(into output: inout LensOutput, after frame: [UInt8] = []) {
        if let pending = message, !pending.isReleased { Self.append(verbatim: pending.raw, to: &output) }
        Self.append(verbatim: frame, to: &output)
        message = nil
        Self.append(verbatim: reader.buffered.dropFirst(releasedOfBuffered), to: &output)
        reader.removeAll()
        releasedOfBuffered = 0
        hasGivenUp = true
    }

    private static func append(verbatim bytes: some Collection<UInt8>, to output: inout LensOutput) {
        guard !bytes.isEmpty else { return }
        output.pieces.append(.verbatim(Data(bytes)))
    }

    /// A message's or close frame's canonical form: `{tapedeck:websocket:KIND[+rsvN]}` and the unmasked payload.
    /// The tag marks where each message begins, so two messages never compare equal to one; it carries no length,
    /// so that a volatile rule's span of another length inside an uncompressed message still matches.
    static func canonical(
        _ opcode: WebSocketOpcode,
        _ reservedBits: WebSocketFrame.ReservedBits,
        _ payload: [UInt8]
    ) -> [UInt8] {
        var kind: String
        switch opcode {
        case .text: kind = "text"
        case .binary: kind = "binary"
        case .connectionClose: kind = "close"
        default: kind = "opcode-\(UInt8(webSocketOpcode: opcode))"
        }
        for (bit, name) in [(WebSocketFrame.ReservedBits.rsv1, "rsv1"), (.rsv2, "rsv2"), (.rsv3, "rsv3")]
        where reservedBits.contains(bit) {
            kind += "+" + name
        }
        return Array("{tapedeck:websocket:\(kind)}".utf8) + payload
    }
}
