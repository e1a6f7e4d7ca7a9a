import Foundation
import GRDB

/// Finds events whose payload contains a byte string or matches a regular expression: `tapedeck grep`.
public struct TapeSearch: Sendable {
    /// What to look for.
    public enum Pattern: Sendable {
        /// These exact bytes.
        case bytes(Data)
        /// A regular expression, matched against the payload read as Latin-1 (one character per byte), so it
        /// works on binary payloads too.
        case regex(String)
    }

    /// One event that matched.
    public struct Match: Sendable, Hashable {
        /// The session it belongs to.
        public var sessionID: Int64
        /// The event's position in the session.
        public var seq: Int64
        /// Who sent it.
        public var direction: Direction
        /// Offset of the match in the payload.
        public var offset: Int
        /// The match with some bytes around it.
        public var excerpt: Data
    }

    let pattern: Pattern
    private let regex: NSRegularExpression?

    /// - Throws: ``TapedeckError`` for a regular expression that does not compile.
    public init(_ pattern: Pattern) throws {
        self.pattern = pattern
        if case .regex(let source) = pattern {
            do {
                regex = try NSRegularExpression(pattern: source)
            } catch {
                throw TapedeckError(.invalidArgument, "invalid regular expression '\(source)'")
            }
        } else {
            regex = nil
        }
    }

    /// Bytes shown on each side of a match.
    static let context = 24

    /// The first match in `payload`, if any.
    func firstMatch(in payload: Data) -> (offset: Int, length: Int)? {
        switch pattern {
        case .bytes(let needle):
            guard !needle.isEmpty, let range = payload.range(of: needle) else { return nil }
            return (range.lowerBound - payload.startIndex, needle.count)
        case .regex:
            let text = String(decoding: payload.map { UInt16($0) }, as: UTF16.self)
            guard let regex,
                let found = regex.firstMatch(in: text, range: NSRange(location: 0, length: (text as NSString).length))
            else { return nil }
            return (found.range.location, found.range.length)
        }
    }

    /// Calls `body` for each matching event of the tape (or of one session), in tape order, streaming.
    public func forEachMatch(in tape: Tape, session: Int64? = nil, _ body: (Match) throws -> Void) throws {
        let filter = session == nil ? "" : "WHERE session_id = ?"
        let arguments: StatementArguments = session.map { [$0] } ?? []
        try tape.reading { db in
            let cursor = try EventRecord.fetchCursor(
                db,
                sql: EventRecord.selectSQL + " \(filter) ORDER BY session_id, seq",
                arguments: arguments
            )
            while let event = try cursor.next() {
                guard event.kind == .data, let payload = event.payload, let found = firstMatch(in: payload) else {
                    continue
                }
                let start = max(0, found.offset - Self.context)
                let end = min(payload.count, found.offset + found.length + Self.context)
                let excerpt = payload.subdata(in: (payload.startIndex + start)..<(payload.startIndex + end))
                try body(
                    Match(
                        sessionID: event.sessionID,
                        seq: event.seq,
                        direction: event.direction,
                        offset: found.offset,
                        excerpt: excerpt
                    )
                )
            }
        }
    }
}
