import Foundation

/// Recognizes which protocol lens a recorded session needs from its first bytes, and resolves a route's lens
/// from its sessions.
enum LensRecognizer {
    /// How many bytes of each side's first data a session is recognized by.
    static let openingLength = 1024

    /// The HTTP/2 connection preface a client sends first (RFC 9113, 3.4).
    static let http2Preface = Data("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// The lens a session's first bytes call for, nil when none does: `client` and `upstream` are the first
    /// data each side sent (empty when it sent none).
    static func recognize(client: Data, upstream: Data) -> ProtocolLens? {
        if client.starts(with: http2Preface) { return .http2 }
        // Replay recognizes every session of a route at start (100,000 of them in a second or so): a request that
        // does not ask to upgrade is told by one search for "pgrade", without reading its head as text.
        if let first = client.first, (0x41...0x5A).contains(first) {
            guard contains(client.prefix(openingLength), "pgrade") else { return nil }
        }
        if let head = httpHead(client) {
            if head.contains("\r\nupgrade: h2c"), upstream.starts(with: Data("HTTP/1.1 101".utf8)) { return .http2 }
            if head.contains("\r\nupgrade: websocket"), head.contains("\r\nsec-websocket-key:") { return .websocket }
            return nil
        }
        if isMySQLGreeting(upstream) { return .mysql }
        return nil
    }

    /// The lens a route's sessions go through: the one named, or for `auto` the one most of its recognized
    /// sessions call for; `raw` when there is none.
    static func resolve(_ choice: ProtocolLens, openings: [(client: Data, upstream: Data)]) -> ProtocolLens {
        guard choice == .auto else { return choice }
        var counts: [ProtocolLens: Int] = [:]
        for opening in openings {
            if let lens = recognize(client: opening.client, upstream: opening.upstream) {
                counts[lens, default: 0] += 1
            }
        }
        // Ties go to the lens named first in ``ProtocolLens``, so that the choice never depends on dictionary order.
        let best = ProtocolLens.allCases.filter { counts[$0] != nil }.max { counts[$0]! < counts[$1]! }
        return best ?? .raw
    }

    /// A fresh byte-stream lens for one connection or recorded session of a route whose lens resolved to `lens`;
    /// nil for `raw`, and for HTTP/2, which replay serves with a codec of its own rather than through the matcher.
    static func makeStreamLens(_ lens: ProtocolLens) -> (any StreamLens)? {
        switch lens {
        case .mysql: return MySQLStreamLens()
        case .websocket: return WebSocketStreamLens()
        case .auto, .raw, .http2: return nil
        }
    }

    /// The head of an HTTP/1 request, lowercased, if `bytes` begin with one (as far as they go).
    private static func httpHead(_ bytes: Data) -> String? {
        let methods = ["GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH "]
        guard methods.contains(where: { bytes.starts(with: Data($0.utf8)) }) else { return nil }
        let head = bytes.prefix(openingLength)
        let end = head.range(of: Data("\r\n\r\n".utf8)).map { $0.lowerBound } ?? head.endIndex
        return String(decoding: head[head.startIndex..<end], as: UTF8.self).lowercased() + "\r\n"
    }

    /// Whether `needle` occurs in `bytes`: a plain scan for its first byte, then a comparison.
    private static func contains(_ bytes: Data, _ needle: StaticString) -> Bool {
        let count = needle.utf8CodeUnitCount
        let pattern = UnsafeBufferPointer(start: needle.utf8Start, count: count)
        return bytes.withUnsafeBytes { haystack in
            guard haystack.count >= count, let first = pattern.first else { return false }
            var index = 0
            while index <= haystack.count - count {
                if haystack[index] == first, zip(haystack[index..<(index + count)], pattern).allSatisfy({ $0 == $1 }) {
                    return true
                }
                index += 1
            }
            return false
        }
    }

    /// Whether `bytes` begin with a MySQL or MariaDB server greeting (packet 0, protocol version 10).
    private static func isMySQLGreeting(_ bytes: Data) -> Bool {
        guard bytes.count >= 5, bytes[bytes.startIndex + 3] == 0, bytes[bytes.startIndex + 4] == 0x0A else {
            return false
        }
        let start = bytes.startIndex
        let length = Int(bytes[start]) | Int(bytes[start + 1]) << 8 | Int(bytes[start + 2]) << 16
        guard bytes[start + 3] == 0, length >= 1, bytes.count >= 4 + length else { return false }
        return MySQLGreeting([UInt8](bytes[(start + 4)..<(start + 4 + length)])) != nil
    }
}
