import Foundation
import NIOWebSocket

/// Reads a recorded WebSocket session into messages for `--decode`: the handshake's request and response lines,
/// then each side's messages, unmasked and joined from their fragments, and its control frames.
struct WebSocketMessageDecoder: MessageDecoder {
    /// One direction: its HTTP head first, then frames.
    private struct Side: Sendable {
        let from: String
        var head: [UInt8] = []
        var headDone = false
        var reader = WebSocketFrameReader()
        /// The data frames of a message not finished yet.
        var message: (opcode: WebSocketOpcode, compressed: Bool, payload: [UInt8])?
        var broken = false

        init(from: String) { self.from = from }

        mutating func feed(_ bytes: Data) -> [DecodedMessage] {
            guard !broken else { return [] }
            var messages: [DecodedMessage] = []
            var rest = bytes[...]
            if !headDone {
                let searchFrom = max(0, head.count - 3)
                head += rest
                rest = Data()[...]
                guard let end = WebSocketUpgradeRequest.headLength(in: head, searchFrom: searchFrom) else {
                    if head.count > WebSocketUpgradeRequest.maximumHeadLength { broken = true }
                    return []
                }
                headDone = true
                let lines = String(decoding: head[..<end], as: UTF8.self)
                    .split(separator: "\r\n", omittingEmptySubsequences: true).map(String.init)
                messages.append(
                    DecodedMessage(
                        lens: "websocket",
                        from: from,
                        summary: lines.first ?? "",
                        details: Array(lines.dropFirst())
                    )
                )
                reader.append(head[end...])
                head = []
            } else {
                reader.append(rest)
            }
            do {
                while let frame = try reader.next() { messages += describe(frame) }
            } catch {
                broken = true
                messages.append(DecodedMessage(lens: "websocket", from: from, summary: "no longer decoded: \(error)"))
            }
            return messages
        }

        private mutating func describe(_ frame: WebSocketClientFrame) -> [DecodedMessage] {
            let from = self.from
            func decoded(_ summary: String) -> DecodedMessage {
                DecodedMessage(lens: "websocket", from: from, summary: summary)
            }
            switch frame.opcode {
            case .ping: return [decoded("ping" + Self.excerpt(frame.payload, prefix: " "))]
            case .pong: return [decoded("pong" + Self.excerpt(frame.payload, prefix: " "))]
            case .connectionClose:
                guard frame.payload.count >= 2 else { return [decoded("close")] }
                let code = Int(frame.payload[0]) << 8 | Int(frame.payload[1])
                return [decoded("close \(code)" + Self.excerpt(Array(frame.payload.dropFirst(2)), prefix: " "))]
            case .continuation:
                guard message != nil else { return [decoded("continuation without a message")] }
                self.message!.payload += frame.payload
            default:
                self.message = (frame.opcode, frame.reservedBits.contains(.rsv1), frame.payload)
            }
            guard frame.fin, let whole = self.message else { return [] }
            self.message = nil
            let kind = whole.opcode == .text ? "text" : whole.opcode == .binary ? "binary" : "\(whole.opcode)"
            if whole.compressed {
                return [decoded("\(kind) message, \(whole.payload.count) bytes compressed (permessage-deflate)")]
            }
            if whole.opcode == .text {
                return [decoded("text \(Self.excerpt(whole.payload, prefix: ""))")]
            }
            return [
                decoded("\(kind) message, \(whole.payload.count) bytes" + Self.excerpt(whole.payload, prefix: ": "))
            ]
        }

        private static func excerpt(_ payload: [UInt8], prefix: String) -> String {
            payload.isEmpty ? "" : prefix + ByteExcerpt.render(Data(payload.prefix(512)))
        }
    }

    private var client = Side(from: "client")
    private var upstream = Side(from: "upstream")

    mutating func client(_ bytes: Data) -> [DecodedMessage] { client.feed(bytes) }
    mutating func upstream(_ bytes: Data) -> [DecodedMessage] { upstream.feed(bytes) }
}
