import Foundation

@testable import Tapedeck

/// A tape holding conversations written out by hand: the Redis fixture with its events replaced, one session per
/// conversation, each read an event of its own.
enum ConversationTape {
    /// One read: who sent it and its bytes.
    struct Read {
        var direction: Direction
        var bytes: [UInt8]

        static func client(_ text: String) -> Read { Read(direction: .clientToUpstream, bytes: Array(text.utf8)) }
        static func upstream(_ text: String) -> Read { Read(direction: .upstreamToClient, bytes: Array(text.utf8)) }
        static func client(bytes: [UInt8]) -> Read { Read(direction: .clientToUpstream, bytes: bytes) }
    }

    /// Writes a tape at `path` whose session `n` (from 1) holds `conversations[n - 1]`, its reads numbered from 0.
    static func make(at path: String, _ conversations: [[Read]]) throws {
        // The fixture has sessions 1 to 3; more are copies of session 1, fewer leave the rest without events.
        var sql = "DELETE FROM events;\n"
        for id in 4..<max(4, conversations.count + 1) {
            sql += """
                INSERT INTO sessions (id, run_id, route_id, route, client_address, upstream_address, started_at,
                    ended_at, duration_ns, outcome, client_bytes, upstream_bytes, event_count)
                SELECT \(id), run_id, route_id, route, client_address, upstream_address, started_at, ended_at,
                    duration_ns, outcome, client_bytes, upstream_bytes, event_count FROM sessions WHERE id = 1;

                """
        }
        for (index, reads) in conversations.enumerated() {
            for (seq, read) in reads.enumerated() {
                let hex = read.bytes.map { String(format: "%02x", $0) }.joined()
                sql += """
                    INSERT INTO events (session_id, seq, offset_ns, direction, kind, payload)
                    VALUES (\(index + 1), \(seq), \(seq * 1000), \(read.direction.code), 0, X'\(hex)');

                    """
            }
        }
        try CraftedTape.make(at: path, sql)
    }

    /// The findings in a tape of these conversations, with streams cut into chunks as `limits` says.
    static func findings(
        _ conversations: [[Read]],
        limits: SecretStream.Limits = SecretStream.Limits()
    ) throws -> [SecretFinding] {
        let directory = try TemporaryDirectory()
        return try withExtendedLifetime(directory) {
            let path = directory.path("conversations.tape")
            try make(at: path, conversations)
            let tape = try Tape(readingAt: path)
            defer { try? tape.close() }
            return try SecretScanner(limits: limits).findings(in: tape)
        }
    }
}
