import Foundation

/// Finds events whose payload contains a byte string or matches a regular expression: `tapedeck grep`.
public struct TapeSearch: Sendable {
    /// What to look for.
    public enum Pattern: Sendable {
        /// These exact bytes.
        case bytes(Data)
        /// A regular expression, matched against the payload read as Latin-1 (one character per byte), so it
        /// works on binary payloads too.
        case regex(String)

        /// The bytes of `text` with `\r`, `\n`, `\t`, `\\` and `\xNN` turned into bytes, so binary needles can be
        /// typed: the pattern of `tapedeck grep` and of the web inspector's search.
        ///
        /// - Throws: ``TapedeckError`` for an escape it does not know.
        public static func bytes(escaped text: String) throws -> Pattern {
            var bytes: [UInt8] = []
            var characters = Array(text.utf8)[...]
            while let byte = characters.popFirst() {
                guard byte == UInt8(ascii: "\\"), let next = characters.popFirst() else {
                    bytes.append(byte)
                    continue
                }
                switch next {
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "\\"): bytes.append(0x5C)
                case UInt8(ascii: "x"):
                    guard characters.count >= 2,
                        let value = UInt8(String(decoding: characters.prefix(2), as: UTF8.self), radix: 16)
                    else {
                        throw TapedeckError(
                            .invalidArgument,
                            "invalid escape in '\(text)': use \\xNN with two hex digits"
                        )
                    }
                    bytes.append(value)
                    characters = characters.dropFirst(2)
                default:
                    throw TapedeckError(
                        .invalidArgument,
                        "invalid escape '\\\(Character(Unicode.Scalar(next)))' in '\(text)'"
                    )
                }
            }
            return .bytes(Data(bytes))
        }
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
    /// How long a regular expression may work on one payload.
    let regexTimeLimit: Duration

    /// The time a regular expression gets per payload unless told otherwise.
    public static let defaultRegexTimeLimit: Duration = .seconds(1)

    /// - Parameters:
    ///   - regexTimeLimit: How long a regular expression may work on one payload before the search gives up:
    ///     a backtracking engine can take exponential time (`(.*a){20}`), and a search must end.
    /// - Throws: ``TapedeckError`` for a regular expression that does not compile.
    public init(_ pattern: Pattern, regexTimeLimit: Duration = Self.defaultRegexTimeLimit) throws {
        self.pattern = pattern
        self.regexTimeLimit = regexTimeLimit
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
    ///
    /// - Throws: ``RegexTimeout`` when a regular expression works on the payload longer than the time limit.
    func firstMatch(in payload: Data) throws -> (offset: Int, length: Int)? {
        switch pattern {
        case .bytes(let needle):
            guard !needle.isEmpty, let range = payload.range(of: needle) else { return nil }
            return (range.lowerBound - payload.startIndex, needle.count)
        case .regex:
            guard let regex else { return nil }
            let text = String(decoding: payload.map { UInt16($0) }, as: UTF16.self)
            var found: NSRange?
            var timedOut = false
            var progressCalls = 0
            let deadline = ContinuousClock.now.advanced(by: regexTimeLimit)
            // With reportProgress the engine calls back every few thousand steps and at every start position,
            // and stops when told to: the only way to bound a backtracking match from outside. Reading the
            // clock on every call would double the cost of a plain scan, so only every 64th call does.
            regex.enumerateMatches(
                in: text,
                options: .reportProgress,
                range: NSRange(location: 0, length: (text as NSString).length)
            ) { result, _, stop in
                if let result {
                    found = result.range
                    stop.pointee = true
                    return
                }
                progressCalls &+= 1
                if progressCalls & 63 == 0, ContinuousClock.now >= deadline {
                    timedOut = true
                    stop.pointee = true
                }
            }
            if timedOut { throw RegexTimeout() }
            return found.map { ($0.location, $0.length) }
        }
    }

    /// Calls `body` for each matching event of the tape (or of one session), in tape order, streaming.
    ///
    /// - Throws: ``TapedeckError`` naming the pattern and the event when a regular expression works on one
    ///   payload longer than its time limit; the matches before it have been passed to `body`.
    public func forEachMatch(in tape: Tape, session: Int64? = nil, _ body: (Match) throws -> Void) throws {
        try tape.forEachEventInOrder(session: session) { event in
            guard event.kind == .data, let payload = event.payload else { return }
            let found: (offset: Int, length: Int)?
            do {
                found = try firstMatch(in: payload)
            } catch is RegexTimeout {
                throw timeoutError(session: event.sessionID, seq: event.seq)
            }
            guard let found else { return }
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

    /// A protocol message that matched, read through its session's lens (see ``SessionDecoder``).
    public struct DecodedMatch: Sendable, Hashable {
        /// The session it belongs to.
        public var sessionID: Int64
        /// The event that completed it.
        public var seq: Int64
        /// Who sent it.
        public var direction: Direction
        /// The message.
        public var message: DecodedMessage
    }

    /// Calls `body` for each protocol message, read through its session's lens, whose text (summary and details)
    /// matches, in tape order; sessions without a lens have no messages.
    ///
    /// - Throws: ``TapedeckError`` as ``forEachMatch(in:session:_:)`` does.
    public func forEachDecodedMatch(
        in tape: Tape,
        session: Int64? = nil,
        _ body: (DecodedMatch) throws -> Void
    ) throws {
        let lenses = try SessionDecoder.lenses(in: tape)
        var decoders: [Int64: SessionDecoder] = [:]
        try tape.forEachEventInOrder(session: session) { event in
            guard event.kind == .data, event.payload != nil, let lens = lenses[event.sessionID] else { return }
            if decoders[event.sessionID] == nil {
                // Sessions come one after another: a finished one's decoder is no longer needed.
                decoders.removeAll()
                decoders[event.sessionID] = SessionDecoder(lens: lens)
            }
            guard var decoder = decoders[event.sessionID] else { return }
            let messages = decoder.messages(of: event)
            decoders[event.sessionID] = decoder
            for message in messages {
                do {
                    guard try firstMatch(in: Data(message.text.utf8)) != nil else { continue }
                } catch is RegexTimeout {
                    throw timeoutError(session: event.sessionID, seq: event.seq)
                }
                try body(
                    DecodedMatch(
                        sessionID: event.sessionID,
                        seq: event.seq,
                        direction: event.direction,
                        message: message
                    )
                )
            }
        }
    }

    /// A regular expression ran out of time on one payload.
    struct RegexTimeout: Error {}

    private func timeoutError(session: Int64, seq: Int64) -> TapedeckError {
        guard case .regex(let source) = pattern else { return TapedeckError(.invalidArgument, "search took too long") }
        return TapedeckError(
            .invalidArgument,
            "regular expression '\(source)' took too long: stopped after \(DurationText.format(regexTimeLimit)) "
                + "on session \(session), event \(seq)"
        )
    }
}
