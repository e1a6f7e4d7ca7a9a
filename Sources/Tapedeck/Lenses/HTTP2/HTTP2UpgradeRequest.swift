import Foundation
import NIOHPACK

/// An HTTP/1.1 request that asks to continue as HTTP/2 without TLS (`Upgrade: h2c`, RFC 7540 3.2): the request
/// becomes stream 1 of the HTTP/2 connection, whose response the upstream sends as HTTP/2 after `101 Switching
/// Protocols`. Channel-free: read from the request's head, recorded or live, the same way, so a recorded stream 1
/// and a live one compare on the same headers.
struct HTTP2UpgradeRequest: Sendable, Hashable {
    /// The request as HTTP/2 headers: `:method`, `:scheme`, `:authority` (from `Host`), `:path`, then the other
    /// headers, lower-cased, without those that belong to the HTTP/1.1 connection.
    var headers: HPACKHeaders
    /// The request body's length, from `Content-Length`.
    var contentLength: Int

    /// The longest head looked at; a longer one is not an upgrade.
    static let maximumHeadLength = 64 * 1024

    /// The headers of the HTTP/1.1 connection, which HTTP/2 has no place for.
    static let connectionHeaders: Set<String> = [
        "connection", "upgrade", "http2-settings", "host", "keep-alive", "proxy-connection", "transfer-encoding",
    ]

    /// What `101 Switching Protocols` replay answers an upgrade with.
    static let switchingProtocols = Array(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".utf8
    )

    /// The length of the head at the start of `bytes` (through its empty line), nil while it is not complete.
    static func headLength(in bytes: some Collection<UInt8>) -> Int? {
        var state = 0
        var count = 0
        for byte in bytes {
            count += 1
            switch (state, byte) {
            case (0, 0x0D), (2, 0x0D): state += 1
            case (1, 0x0A), (3, 0x0A): state += 1
            default: state = byte == 0x0D ? 1 : 0
            }
            if state == 4 { return count }
            if count > maximumHeadLength { return nil }
        }
        return nil
    }

    /// Reads a request head (through its empty line); nil unless it is an HTTP/1.1 request asking for `h2c`.
    init?(head: some Collection<UInt8>) {
        let text = String(decoding: head, as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        guard !lines.isEmpty else { return nil }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true)
        guard requestLine.count == 3, requestLine[2] == "HTTP/1.1" else { return nil }
        var fields: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            fields.append((name, value))
        }
        func tokens(_ name: String) -> [String] {
            fields.filter { $0.name == name }.flatMap { $0.value.lowercased().split(separator: ",") }
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
        guard tokens("upgrade").contains("h2c"), tokens("connection").contains("upgrade") else { return nil }
        var headers = HPACKHeaders()
        headers.add(name: ":method", value: String(requestLine[0]))
        headers.add(name: ":scheme", value: "http")
        if let host = fields.first(where: { $0.name == "host" }) { headers.add(name: ":authority", value: host.value) }
        headers.add(name: ":path", value: String(requestLine[1]))
        for field in fields where !Self.connectionHeaders.contains(field.name) {
            headers.add(name: field.name, value: field.value)
        }
        self.headers = headers
        self.contentLength = fields.first { $0.name == "content-length" }.flatMap { Int($0.value) } ?? 0
        guard contentLength >= 0, contentLength <= 16 << 20 else { return nil }
    }

    /// Stream 1's request as HTTP/2 frames, as if the client had sent them: a HEADERS frame (HPACK literals
    /// without indexing, so the client's and replay's header tables stay as they are) and the body as DATA.
    func frames(body: some Collection<UInt8>) -> [UInt8] {
        var block: [UInt8] = []
        for header in headers {
            block.append(0x00)
            Self.appendString(Array(header.name.utf8), to: &block)
            Self.appendString(Array(header.value.utf8), to: &block)
        }
        let bodyBytes = Array(body)
        var frames = Self.frame(type: 0x01, flags: 0x04 | (bodyBytes.isEmpty ? 0x01 : 0), streamID: 1, payload: block)
        var rest = bodyBytes[...]
        while !rest.isEmpty {
            let chunk = rest.prefix(16_384)
            rest = rest.dropFirst(chunk.count)
            frames += Self.frame(type: 0x00, flags: rest.isEmpty ? 0x01 : 0, streamID: 1, payload: Array(chunk))
        }
        return frames
    }

    /// An HPACK string literal without Huffman coding: a 7-bit prefixed length, then the bytes.
    private static func appendString(_ bytes: [UInt8], to block: inout [UInt8]) {
        var length = bytes.count
        if length < 127 {
            block.append(UInt8(length))
        } else {
            block.append(127)
            length -= 127
            while length >= 128 {
                block.append(UInt8(length & 0x7F) | 0x80)
                length >>= 7
            }
            block.append(UInt8(length))
        }
        block += bytes
    }

    private static func frame(type: UInt8, flags: UInt8, streamID: UInt32, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + [
                UInt8(streamID >> 24 & 0x7F), UInt8(streamID >> 16 & 0xFF), UInt8(streamID >> 8 & 0xFF),
                UInt8(streamID & 0xFF),
            ]
            + payload
    }
}
