import NIOHPACK

/// What a request is matched on: its header block without the headers that change from run to run of the same
/// client, names in lower case, in any order.
///
/// `:authority` and `host` are left out, since the client of a replay connects to another address than the
/// recorded one (the listen address is normalized away for byte-level replay in the same spirit); so are
/// `grpc-timeout`, a deadline counting down from the call's start, and `te`. Everything else counts, `user-agent`
/// and `content-length` included: the same client sends the same.
struct HTTP2RequestKey: Sendable, Hashable, CustomStringConvertible {
    /// The headers that never take part.
    static let volatile: Set<String> = [":authority", "host", "grpc-timeout", "te"]

    /// The remaining headers, sorted by name, then value.
    let headers: [Header]

    /// One header of the key.
    struct Header: Sendable, Hashable, Comparable {
        var name: String
        var value: String

        static func < (lhs: Header, rhs: Header) -> Bool {
            (lhs.name, lhs.value) < (rhs.name, rhs.value)
        }
    }

    init(_ block: HPACKHeaders) {
        headers = block.compactMap { header in
            let name = header.name.lowercased()
            return Self.volatile.contains(name) ? nil : Header(name: name, value: header.value)
        }.sorted()
    }

    /// A pseudo-header's value (`:method`, `:path`), for messages.
    func value(of name: String) -> String? {
        headers.first { $0.name == name }?.value
    }

    /// `POST /pkg.Service/Method`: the method and path, what a mismatch names first.
    var line: String {
        "\(value(of: ":method") ?? "?") \(value(of: ":path") ?? "?")"
    }

    /// The headers one per line as `name: value`.
    var description: String {
        headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }
}
