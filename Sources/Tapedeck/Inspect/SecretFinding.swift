import Foundation

/// A likely secret in a tape, as `tapedeck scan` reports it: where it starts, what it is, and the bytes around
/// it with the secret masked.
///
/// Each direction of a session is scanned as one stream, so a secret may run on into later events; ``seq`` and
/// ``offset`` name the event where it starts.
///
/// ```swift
/// for finding in try SecretScanner().findings(in: try Tape(readingAt: "fixtures/api.tape")) {
///     print(finding.line)  // session 3 event 4 offset 17 client redis-auth  *2\r\n$4\r\nAUTH\r\n$8\r\n********
/// }
/// ```
public struct SecretFinding: Sendable, Hashable, Codable {
    /// The session it was found in.
    public var sessionID: Int64
    /// The event where it starts.
    public var seq: Int64
    /// Where it starts in that event's payload.
    public var offset: Int
    /// Who sent it.
    public var direction: Direction
    /// What it is.
    public var kind: SecretKind
    /// Up to ``SecretFinding/contextBytes`` bytes either side of it, with every secret in them masked (all but
    /// the first and last 2 bytes of one 12 bytes or longer, all of a shorter one), escaped as ``ByteExcerpt`` renders payloads: printable ASCII only, safe for a terminal
    /// and a CI log.
    public var excerpt: String

    /// Creates a finding from its parts.
    public init(sessionID: Int64, seq: Int64, offset: Int, direction: Direction, kind: SecretKind, excerpt: String) {
        self.sessionID = sessionID
        self.seq = seq
        self.offset = offset
        self.direction = direction
        self.kind = kind
        self.excerpt = excerpt
    }

    // The same names `show --json` and the jsonl export use for an event's session, seq and direction.
    enum CodingKeys: String, CodingKey {
        case seq, offset, direction, kind, excerpt
        case sessionID = "session"
    }

    /// Bytes of context shown on each side of a secret, as `tapedeck grep` shows around a match.
    public static let contextBytes = 24

    /// The most of a secret an excerpt shows (masked): a private key block runs to kilobytes of stars otherwise.
    static let longestShownSpan = 64

    /// The shortest secret whose first and last 2 bytes are shown: enough for a reviewer to recognise a token,
    /// too few to guess a short password from.
    static let shortestRevealed = 12

    /// The finding as one line: `session 3 event 4 offset 17 client redis-auth  <excerpt>`.
    public var line: String {
        let sender = direction == .clientToUpstream ? "client" : "upstream"
        return "session \(sessionID) event \(seq) offset \(offset) \(sender) \(kind.rawValue)  \(excerpt)"
    }

    /// Whether the byte at `position` of a secret occupying `span` stays visible: its first and last 2 bytes
    /// when it is ``shortestRevealed`` or longer, none otherwise.
    static func reveals(_ position: Int, of span: Range<Int>) -> Bool {
        span.count >= shortestRevealed && (position < span.lowerBound + 2 || position >= span.upperBound - 2)
    }

    /// Masks a secret at `span` (relative to `bytes`, and maybe reaching past them) as an excerpt shows it:
    /// `hunter2` becomes `*******`, `AKIAIOSFODNN7EXAMPLE` becomes `AK****************LE`.
    static func mask(_ bytes: inout [UInt8], span: Range<Int>) {
        for position in span.clamped(to: bytes.indices) where !reveals(position, of: span) {
            bytes[position] = UInt8(ascii: "*")
        }
    }
}
