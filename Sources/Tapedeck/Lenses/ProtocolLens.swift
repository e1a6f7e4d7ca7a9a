/// Which protocol lens a route's sessions are seen through at replay (`--protocol NAME`, config key `protocol`).
///
/// A lens is the protocol-aware layer between the socket and the matcher, for clients that put fresh values
/// inside framed messages, where a volatile span would also change a length prefix, a mask or compressed state:
/// MySQL and MariaDB logins, HTTP/2 (and gRPC over it), WebSocket. Lenses are on by default: each recognizes its
/// protocol from a session's first bytes. Naming one makes every session of the route go through it; `raw`
/// turns lenses off, so that the route replays byte for byte as without them.
///
/// The tape always keeps the exact bytes: a lens changes how replay compares and answers, never what is recorded.
public enum ProtocolLens: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Recognize each session's protocol from its first bytes (the default).
    case auto
    /// No lens: byte-exact matching.
    case raw
    /// MySQL and MariaDB: logins matched on user, database and capabilities, not on the salted auth response or
    /// per-process connect attributes.
    case mysql
    /// HTTP/2 and gRPC: streams matched on decoded headers and body; replay answers SETTINGS, PING and
    /// WINDOW_UPDATE itself and re-encodes recorded responses for the live connection.
    case http2
    /// WebSocket: the handshake key and frame masks leave the match; the accept value is computed from the live key.
    case websocket

    /// Parses a lens name as given to `--protocol`.
    ///
    /// - Throws: ``TapedeckError`` naming the lenses there are.
    public init(parsing text: String) throws {
        guard let lens = ProtocolLens(rawValue: text.lowercased()) else {
            throw TapedeckError(
                .invalidArgument,
                "unknown protocol '\(text)': use \(Self.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        self = lens
    }

    public var description: String { rawValue }
}
