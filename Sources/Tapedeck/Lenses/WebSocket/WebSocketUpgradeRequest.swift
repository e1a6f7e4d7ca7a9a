import Crypto
import Foundation

/// A client's WebSocket opening handshake (RFC 6455, section 4.1): an HTTP GET whose head asks for
/// `Upgrade: websocket` and carries a fresh random `Sec-WebSocket-Key`, which the upstream answers with a digest of
/// it in `Sec-WebSocket-Accept`.
///
/// Replay compares the head on ``canonical``: the head as sent, byte for byte and in its order, but for the key's
/// value, which is a new random nonce on every connection.
///
/// ```swift
/// if let end = WebSocketUpgradeRequest.headLength(in: bytes),
///     let request = WebSocketUpgradeRequest(head: bytes[..<end])
/// {
///     print(String(decoding: request.key, as: UTF8.self), request.accept)
/// }
/// ```
struct WebSocketUpgradeRequest: Sendable, Hashable {
    /// The `Sec-WebSocket-Key` value, without the whitespace around it.
    var key: [UInt8]
    /// The head with every `Sec-WebSocket-Key` value replaced by ``keyToken``.
    var canonical: [UInt8]

    /// What a key's value becomes in ``canonical``.
    static let keyToken = Array("{tapedeck:websocket-key}".utf8)

    /// The GUID RFC 6455 appends to the key before hashing it into the accept value.
    static let acceptGUID = Array("258EAFA5-E914-47DA-95CA-C5AB0DC85B11".utf8)

    /// The longest head worth waiting for: a head that has not ended by then is not a handshake this lens follows.
    static let maximumHeadLength = 64 * 1024

    /// The length of the request head at the start of `bytes`, through the empty line that ends it; nil while it
    /// has not ended.
    ///
    /// - Parameter searchFrom: Where in `bytes` to begin looking: a head's end cannot be before it.
    static func headLength(in bytes: [UInt8], searchFrom: Int = 0) -> Int? {
        var index = max(0, searchFrom)
        while index + 3 < bytes.count {
            if bytes[index + 3] != 0x0A {
                // The end is CR LF CR LF: a byte other than LF at index + 3 rules out index, and one other than CR
                // or LF there rules out the next three as well.
                index += bytes[index + 3] == 0x0D ? 1 : 4
                continue
            }
            if bytes[index] == 0x0D, bytes[index + 1] == 0x0A, bytes[index + 2] == 0x0D { return index + 4 }
            index += 1
        }
        return nil
    }

    /// Whether `bytes`, the first a client sent, can still begin a GET: a stream that cannot is no handshake, and
    /// passes at once, without waiting for a head's end.
    static func mayBeginHandshake(_ bytes: some Collection<UInt8>) -> Bool {
        zip(bytes, "GET ".utf8).allSatisfy { $0 == $1 }
    }

    /// Reads a request head (`headLength(in:)` bytes, through its empty line); nil unless it is a GET that asks
    /// for `Upgrade: websocket` with a `Sec-WebSocket-Key`. Header names are compared without regard to case, as
    /// HTTP says.
    init?(head: some Collection<UInt8>) {
        let head = Array(head)
        guard Self.mayBeginHandshake(head), head.count >= 4 else { return nil }
        var upgradesToWebSocket = false
        var key: [UInt8]?
        var canonical: [UInt8] = []
        canonical.reserveCapacity(head.count)
        var lineStart = 0
        var isRequestLine = true
        while lineStart < head.count {
            let lineEnd = Self.lineEnd(in: head, from: lineStart)
            let line = head[lineStart..<lineEnd]
            let next = min(head.count, lineEnd + 2)
            defer {
                lineStart = next
                isRequestLine = false
            }
            guard !isRequestLine, let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                canonical += head[lineStart..<next]
                continue
            }
            let name = Self.lowercased(line[lineStart..<colon])
            let valueRange = Self.trimmed(line[(colon + 1)...])
            if name == Array("upgrade".utf8) {
                let tokens = head[valueRange].split(separator: UInt8(ascii: ","))
                upgradesToWebSocket =
                    upgradesToWebSocket
                    || tokens.contains { Self.lowercased(head[Self.trimmed($0)]) == Array("websocket".utf8) }
            } else if name == Array("sec-websocket-key".utf8), !valueRange.isEmpty {
                if key == nil { key = Array(head[valueRange]) }
                canonical += head[lineStart..<valueRange.lowerBound]
                canonical += Self.keyToken
                canonical += head[valueRange.upperBound..<next]
                continue
            }
            canonical += head[lineStart..<next]
        }
        guard upgradesToWebSocket, let key else { return nil }
        self.key = key
        self.canonical = canonical
    }

    /// The `Sec-WebSocket-Accept` value that answers this request's key.
    var accept: [UInt8] { Self.accept(forKey: key) }

    /// The `Sec-WebSocket-Accept` value that answers `key`: base64 of the SHA-1 of the key and ``acceptGUID``. SHA-1
    /// is what RFC 6455 prescribes here; it proves nothing secret, it only shows the upstream read the handshake.
    static func accept(forKey key: some Collection<UInt8>) -> [UInt8] {
        Array(Data(Insecure.SHA1.hash(data: Array(key) + acceptGUID)).base64EncodedString().utf8)
    }

    /// Where the line that begins at `start` ends: at its CR LF, or at the end of `head`.
    private static func lineEnd(in head: [UInt8], from start: Int) -> Int {
        var index = start
        while index + 1 < head.count {
            if head[index] == 0x0D, head[index + 1] == 0x0A { return index }
            index += 1
        }
        return head.count
    }

    /// `bytes`' range without the spaces and tabs around it.
    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> Range<Int> {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        let start = bytes.firstIndex { !isSpace($0) } ?? bytes.endIndex
        let end = bytes.lastIndex { !isSpace($0) }.map { $0 + 1 } ?? start
        return start..<max(start, end)
    }

    /// ASCII letters in lower case, the rest as it is.
    private static func lowercased(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        bytes.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
    }
}
