import Foundation

/// Rewrites the `Sec-WebSocket-Accept` value in the recorded upstream's response head (the `101 Switching
/// Protocols`) to the one that answers the live client's key, as the recorded bytes go out, however the recording
/// split them: a header name in one send and its value in the next is rewritten all the same.
///
/// An accept value is always 28 characters (base64 of a SHA-1 digest), so the rewrite changes no length and needs
/// to hold nothing back. After the head's end every byte passes as recorded: the upstream's frames are not masked,
/// and replay sends them as they are.
///
/// ```swift
/// var rewriter = WebSocketAcceptRewriter()
/// rewriter.accept = WebSocketUpgradeRequest.accept(forKey: liveKey)
/// let forTheClient = rewriter.rewrite(recordedSend)
/// ```
struct WebSocketAcceptRewriter: Sendable {
    /// Where the current line of the head is.
    private enum Line: Sendable, Hashable {
        /// In the header name: the bytes so far, lower-cased (kept up to the length of the name looked for).
        case name([UInt8])
        /// After `Sec-WebSocket-Accept:`, in the spaces before its value.
        case beforeValue
        /// In the accept value: how many of its bytes went by.
        case value(Int)
        /// In a line that is not the accept header.
        case other
    }

    /// The value to put in place of the recorded one; nil while the live key is not known, when nothing is
    /// rewritten.
    var accept: [UInt8]?
    /// The response head has ended (or ran past ``WebSocketUpgradeRequest/maximumHeadLength``): nothing more to
    /// rewrite.
    private(set) var isDone = false
    private var line = Line.name([])
    /// Bytes of the current line so far: none, or a lone CR, before its LF is the empty line that ends the head.
    private var lineLength = 0
    private var lineIsCR = false
    private var headLength = 0

    private static let header = Array("sec-websocket-accept:".utf8)

    init() {}

    /// Recorded upstream bytes, rewritten for the live client.
    mutating func rewrite(_ bytes: Data) -> Data {
        guard !isDone else { return bytes }
        var output: [UInt8]?
        var offset = 0
        for byte in bytes {
            defer { offset += 1 }
            headLength += 1
            if byte == 0x0A {
                if lineLength == 0 || (lineLength == 1 && lineIsCR) {
                    isDone = true
                    break
                }
                line = .name([])
                lineLength = 0
                continue
            }
            lineLength += 1
            lineIsCR = lineLength == 1 && byte == 0x0D
            if let replacement = advance(over: byte), replacement != byte {
                if output == nil { output = Array(bytes) }
                output![offset] = replacement
            }
            if headLength >= WebSocketUpgradeRequest.maximumHeadLength {
                isDone = true
                break
            }
        }
        return output.map { Data($0) } ?? bytes
    }

    /// Moves the line's state past `byte`; returns what the byte becomes when it is part of the accept value.
    private mutating func advance(over byte: UInt8) -> UInt8? {
        switch line {
        case .name(var name):
            let lower = (0x41...0x5A).contains(byte) ? byte | 0x20 : byte
            guard name.count < Self.header.count, Self.header[name.count] == lower else {
                line = .other
                return nil
            }
            name.append(lower)
            line = name.count == Self.header.count ? .beforeValue : .name(name)
            return nil
        case .beforeValue:
            if byte == 0x20 || byte == 0x09 { return nil }
            line = .value(0)
            return advance(over: byte)
        case .value(let index):
            guard let accept, index < accept.count, byte != 0x0D else {
                line = .other
                return nil
            }
            line = .value(index + 1)
            return accept[index]
        case .other:
            return nil
        }
    }
}
