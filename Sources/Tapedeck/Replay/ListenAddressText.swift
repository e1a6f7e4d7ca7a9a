import Foundation

/// The address a client connected to, as text in what it sends, replaced by one fixed token before replay
/// compares bytes.
///
/// Clients write the address they connect to into their requests: HTTP's `Host: 127.0.0.1:41234`, absolute
/// URLs, some database handshakes. A route listening on port 0 gets a new port every run, so without this a
/// session recorded on one port would never match a client of another. Each side is normalized with its own
/// address (the recording's listener, stored in the tape, and the replay's), read by read: an address split
/// across two reads is left as it is.
struct ListenAddressText: Sendable {
    /// What each occurrence becomes.
    static let token = Data("{tapedeck:listen}".utf8)

    /// The spellings of the address: `HOST:PORT` (`[HOST]:PORT` for IPv6) and `localhost:PORT`.
    let spellings: [Data]
    /// The listener's port.
    let port: Int

    /// The spellings of a TCP listen address with a real port; `nil` for a Unix socket or port 0, which no
    /// client can have written.
    init?(_ listen: Endpoint) {
        guard case .tcp(_, let port) = listen, port != 0 else { return nil }
        self.port = port
        let spellings = ["\(listen)", "localhost:\(port)"]
        self.spellings = Array(Set(spellings)).sorted { $0.count > $1.count }.map { Data($0.utf8) }
    }

    /// The spellings as one byte pattern, for the rules that normalize a client's stream: found there even when
    /// a read splits one.
    func pattern() throws -> BytePattern {
        let alternatives = spellings.map { "\\Q" + String(decoding: $0, as: UTF8.self) + "\\E" }
        return try BytePattern(
            alternatives.joined(separator: "|"),
            required: .anyOf([Array(":\(port)".utf8)], caseInsensitive: false),
            tail: .literals(spellings.map { Array($0) }, caseInsensitive: false)
        )
    }

    /// `bytes` with every whole occurrence of the address replaced by ``token``.
    func normalize(_ bytes: Data) -> Data {
        // Most reads hold no spelling: they are searched once per spelling, with the C library's memmem, and
        // returned as they are.
        guard spellings.contains(where: { Self.occurs($0, in: bytes) }) else { return bytes }
        var result = bytes
        for spelling in spellings {
            var searchStart = result.startIndex
            while let found = result.range(of: spelling, in: searchStart..<result.endIndex) {
                result.replaceSubrange(found, with: Self.token)
                searchStart = found.lowerBound + Self.token.count
            }
        }
        return result
    }

    private static func occurs(_ needle: Data, in haystack: Data) -> Bool {
        haystack.withUnsafeBytes { haystack in needle.withUnsafeBytes { ByteSearch.contains($0, in: haystack) } }
    }
}
