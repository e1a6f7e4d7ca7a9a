import Foundation

/// A regular expression over bytes: ICU's engine run over the bytes as ISO Latin-1 text, where each byte is one
/// UTF-16 unit, so a match's range is its range of bytes.
///
/// Besides finding matches, it says where a match may have begun that the next read could complete
/// (``holdStart(_:text:offset:scan:)``), so that the spans of a stream read piece by piece are found even when a read
/// splits one. Two cheap tests keep the expression from running where it cannot match: what a match must
/// contain (``Required``), and how the end of the bytes may begin one (``Tail``).
struct BytePattern: Sendable {
    /// What every match contains: bytes without it are never given to the expression.
    enum Required: Sendable, Hashable {
        /// No cheap test: the expression always runs.
        case none
        /// One of these byte strings (ASCII letters in any case when `caseInsensitive`).
        case anyOf([[UInt8]], caseInsensitive: Bool)
        /// A run of at least this many ASCII digits.
        case digitRun(Int)
        /// A UUID's shape: four dashes, 5 bytes apart.
        case uuidShape
        /// An ISO 8601 date: `dddd-dd-dd`.
        case isoDate
        /// A compact date-time: eight digits and `T`.
        case compactTimestamp
        /// A Unix epoch in seconds or milliseconds from 2001 to 2033: a run of exactly 10 or 13 digits starting with 1.
        case epoch
    }

    /// How the last bytes read may be the beginning of a match that the next read completes.
    enum Tail: Sendable, Hashable {
        /// Only a match already found that reaches the end may go on.
        case none
        /// The bytes end with the beginning of one of these (in any case when `caseInsensitive`).
        case literals([[UInt8]], caseInsensitive: Bool)
        /// The bytes end with a run of bytes of this class, at most `maximum` long: digits and the punctuation
        /// of dates and times, or hex digits and dashes.
        case run(ByteClass, maximum: Int)
    }

    /// A set of bytes a trailing run is made of.
    enum ByteClass: Sendable, Hashable {
        case timestamp
        case uuid

        func contains(_ byte: UInt8) -> Bool {
            switch self {
            case .timestamp:
                return byte &- 0x30 < 10 || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ":")
                    || byte == UInt8(ascii: "T") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "+")
            case .uuid:
                return byte &- 0x30 < 10 || (byte | 0x20) &- 0x61 < 6 || byte == UInt8(ascii: "-")
            }
        }
    }

    /// The expression. NSRegularExpression is immutable and documented as safe to use from many threads.
    nonisolated(unsafe) let expression: NSRegularExpression
    /// How many capture groups the expression has: their ranges are the spans, or the whole match without any.
    let groupCount: Int
    let required: Required
    let tail: Tail
    /// A byte-by-byte matcher that finds what the expression finds, used instead of it.
    let native: NativeMatcher?

    /// How far before the end of the bytes read so far a match in progress is held back for.
    static let holdWindow = 512

    /// Compiles `pattern`. Without `required` and `tail`, a literal beginning of the pattern (after its flags)
    /// gives both.
    ///
    /// - Throws: ``TapedeckError`` (`invalidArgument`) naming the expression.
    init(_ pattern: String, required: Required? = nil, tail: Tail? = nil) throws {
        do {
            expression = try NSRegularExpression(pattern: pattern, options: [])
        } catch {
            throw TapedeckError(.invalidArgument, "invalid regular expression '\(pattern)': it does not compile")
        }
        groupCount = expression.numberOfCaptureGroups
        let literal = Self.leadingLiteral(of: pattern)
        self.required = required ?? literal.map { .anyOf([$0.bytes], caseInsensitive: $0.caseInsensitive) } ?? .none
        self.tail = tail ?? literal.map { .literals([$0.bytes], caseInsensitive: $0.caseInsensitive) } ?? .none
        native = NativeMatcher.forPattern(pattern)
    }

    /// The literal bytes every match begins with, when the pattern plainly starts with three or more ASCII
    /// characters (simple escapes such as `\r` and `\$` included), after `(?i)`-style flags; and whether the
    /// flags make case not matter.
    static func leadingLiteral(of pattern: String) -> (bytes: [UInt8], caseInsensitive: Bool)? {
        var characters = Array(pattern.unicodeScalars)
        var caseInsensitive = false
        if characters.starts(with: ["(", "?"]), let close = characters.firstIndex(of: ")") {
            let flags = characters[2..<close]
            guard flags.allSatisfy({ "imsx".unicodeScalars.contains($0) }) else { return nil }
            caseInsensitive = flags.contains("i")
            if flags.contains("x") { return nil }
            characters.removeFirst(close + 1)
        }
        guard !characters.contains("|") else { return nil }
        var literal: [UInt8] = []
        var index = 0
        scanning: while index < characters.count {
            let character = characters[index]
            switch character {
            case "\\":
                guard index + 1 < characters.count else { break scanning }
                let escaped = characters[index + 1]
                switch escaped {
                case "r": literal.append(13)
                case "n": literal.append(10)
                case "t": literal.append(9)
                default:
                    guard escaped.isASCII, !escaped.properties.isAlphabetic, !("0"..."9").contains(escaped) else {
                        break scanning
                    }
                    literal.append(UInt8(escaped.value))
                }
                index += 2
                continue
            case "?", "*", "{":
                // A quantifier makes the character before it optional.
                if !literal.isEmpty { literal.removeLast() }
                break scanning
            case "^", "$", ".", "+", "(", ")", "[", "]", "}":
                break scanning
            default:
                guard character.isASCII else { break scanning }
                literal.append(UInt8(character.value))
                index += 1
            }
        }
        // A quantifier right after the literal applies to its last character.
        if index < characters.count, "?*{".unicodeScalars.contains(characters[index]), !literal.isEmpty {
            literal.removeLast()
        }
        guard literal.count >= 3 else { return nil }
        return (caseInsensitive ? literal.map(Self.lowercased) : literal, caseInsensitive)
    }

    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte &- 0x41 < 26 ? byte | 0x20 : byte
    }

    /// Whether `bytes` may hold a match, or the start of one at their end.
    func mayMatch(_ bytes: Data) -> Bool {
        bytes.withUnsafeBytes { mayMatch($0) }
    }

    /// Whether `raw` may hold a match, or the start of one at its end.
    func mayMatch(_ raw: UnsafeRawBufferPointer) -> Bool {
        let bytes = raw.bindMemory(to: UInt8.self)
        if Self.test(required, bytes) { return true }
        return tailStart(bytes) != nil
    }

    private static func test(_ required: Required, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        switch required {
        case .none:
            return true
        case .anyOf(let literals, let caseInsensitive):
            return literals.contains { find($0, in: bytes, caseInsensitive: caseInsensitive) }
        case .digitRun(let length):
            var run = 0
            for byte in bytes {
                if byte &- 0x30 < 10 {
                    run += 1
                    if run >= length { return true }
                } else {
                    run = 0
                }
            }
            return false
        case .uuidShape:
            let count = bytes.count
            var index = 0
            while index + 15 < count {
                if bytes[index] == UInt8(ascii: "-"), bytes[index + 5] == UInt8(ascii: "-"),
                    bytes[index + 10] == UInt8(ascii: "-"), bytes[index + 15] == UInt8(ascii: "-")
                {
                    return true
                }
                index += 1
            }
            return false
        case .isoDate:
            return shape(bytes, [.digit, .digit, .digit, .digit, .dash, .digit, .digit, .dash, .digit, .digit])
        case .compactTimestamp:
            return shape(bytes, [.digit, .digit, .digit, .digit, .digit, .digit, .digit, .digit, .letterT])
        case .epoch:
            var run = 0
            var first: UInt8 = 0
            for index in 0...bytes.count {
                if index < bytes.count, bytes[index] &- 0x30 < 10 {
                    if run == 0 { first = bytes[index] }
                    run += 1
                } else {
                    if (run == 10 || run == 13) && first == UInt8(ascii: "1") { return true }
                    run = 0
                }
            }
            return false
        }
    }

    private enum ShapeByte {
        case digit, dash, letterT

        func matches(_ byte: UInt8) -> Bool {
            switch self {
            case .digit: return byte &- 0x30 < 10
            case .dash: return byte == UInt8(ascii: "-")
            case .letterT: return byte == UInt8(ascii: "T")
            }
        }
    }

    /// Whether `shape` occurs somewhere in `bytes`.
    private static func shape(_ bytes: UnsafeBufferPointer<UInt8>, _ shape: [ShapeByte]) -> Bool {
        guard bytes.count >= shape.count else { return false }
        var start = 0
        while start <= bytes.count - shape.count {
            var same = 0
            while same < shape.count, shape[same].matches(bytes[start + same]) { same += 1 }
            if same == shape.count { return true }
            start += 1
        }
        return false
    }

    private static func find(_ needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>, caseInsensitive: Bool) -> Bool
    {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        guard caseInsensitive else {
            return needle.withUnsafeBytes { ByteSearch.contains($0, in: UnsafeRawBufferPointer(haystack)) }
        }
        let last = haystack.count - needle.count
        var start = 0
        while start <= last {
            var same = 0
            while same < needle.count, lowercased(haystack[start + same]) == needle[same] { same += 1 }
            if same == needle.count { return true }
            start += 1
        }
        return false
    }

    /// Where the bytes' end may begin a match, by the tail test alone.
    private func tailStart(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        switch tail {
        case .none:
            return nil
        case .literals(let literals, let caseInsensitive):
            var earliest: Int?
            for literal in literals {
                let longest = min(literal.count - 1, bytes.count)
                // A literal that begins a line (a header name after its newline) is held for only once its first
                // letter came: every request ends with a newline, and holding that would hold every request.
                let shortest = literal.first == UInt8(ascii: "\n") ? 2 : 1
                guard longest >= shortest else { continue }
                for length in stride(from: longest, through: shortest, by: -1) {
                    let start = bytes.count - length
                    var same = true
                    for offset in 0..<length {
                        let byte = caseInsensitive ? Self.lowercased(bytes[start + offset]) : bytes[start + offset]
                        if byte != literal[offset] {
                            same = false
                            break
                        }
                    }
                    if same {
                        earliest = min(earliest ?? start, start)
                        break
                    }
                }
            }
            return earliest
        case .run(let byteClass, let maximum):
            var start = bytes.count
            while start > 0, bytes.count - start < maximum, byteClass.contains(bytes[start - 1]) { start -= 1 }
            return start < bytes.count ? start : nil
        }
    }

    /// Where bytes from on may belong to a match the next read completes, or nil when none may: the start of the
    /// last match when matching it ran into the end (more bytes may extend it), the last place the pattern's
    /// literal beginning occurs when a match from there runs into the end unfinished, or where the end may begin
    /// one.
    ///
    /// - Parameters:
    ///   - bytes: The bytes not yet released.
    ///   - text: ``text(_:)`` of the bytes before them (`offset` of them) and the bytes.
    ///   - scan: What ``scan(_:in:)`` found in them.
    func holdStart(_ bytes: Data, text: () -> String, offset: Int, scan: Scan) -> Int? {
        var candidates: [Int] = []
        if let last = scan.lastMatch, scan.lastMatchHitEnd { candidates.append(last.location - offset) }
        if let start = bytes.withUnsafeBytes({ tailStart($0.bindMemory(to: UInt8.self)) }) { candidates.append(start) }
        if case .literals(let literals, let caseInsensitive) = tail {
            let from = max(0, bytes.count - Self.holdWindow)
            for literal in literals {
                guard
                    let start = Self.lastOccurrence(
                        of: literal,
                        in: bytes,
                        from: from,
                        caseInsensitive: caseInsensitive
                    ),
                    matchRunsIntoEnd(text(), from: offset + start)
                else { continue }
                candidates.append(start)
            }
        }
        return candidates.min()
    }

    /// Whether a match attempt at `position` alone runs into the end of the text: unfinished, or able to grow.
    private func matchRunsIntoEnd(_ text: String, from position: Int) -> Bool {
        var hitEnd = false
        expression.enumerateMatches(
            in: text,
            options: [.anchored, .reportCompletion, .withTransparentBounds, .withoutAnchoringBounds],
            range: NSRange(location: position, length: text.utf16.count - position)
        ) { _, flags, stop in
            hitEnd = flags.contains(.hitEnd)
            stop.pointee = true
        }
        return hitEnd
    }

    private static func lastOccurrence(of literal: [UInt8], in bytes: Data, from: Int, caseInsensitive: Bool) -> Int? {
        guard !literal.isEmpty, bytes.count - from >= literal.count else { return nil }
        return bytes.withUnsafeBytes { raw -> Int? in
            let buffer = raw.bindMemory(to: UInt8.self)
            var start = buffer.count - literal.count
            while start >= from {
                var same = 0
                while same < literal.count,
                    (caseInsensitive ? lowercased(buffer[start + same]) : buffer[start + same]) == literal[same]
                {
                    same += 1
                }
                if same == literal.count { return start }
                start -= 1
            }
            return nil
        }
    }

    /// Bytes as text the expression runs over: one character, and one UTF-16 unit, per byte.
    static func text(_ bytes: Data) -> String {
        // ASCII is its own UTF-8; a byte from 0x80 up is the Latin-1 character of that code, two bytes in UTF-8.
        guard bytes.contains(where: { $0 >= 0x80 }) else { return String(decoding: bytes, as: UTF8.self) }
        var utf8: [UInt8] = []
        utf8.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            if byte < 0x80 {
                utf8.append(byte)
            } else {
                utf8.append(0xC0 | (byte >> 6))
                utf8.append(0x80 | (byte & 0x3F))
            }
        }
        return String(decoding: utf8, as: UTF8.self)
    }

    /// The byte ranges of every span in `bytes`, read as one whole stream.
    func spans(in bytes: Data) -> [Range<Int>] {
        guard mayMatch(bytes) else { return [] }
        return scan(bytes, from: 0) { Self.text(bytes) }.spans.map { $0.location..<($0.location + $0.length) }
    }

    /// The spans of the matches that start at `from` or later in `bytes`, the bytes before seen only by lookarounds
    /// and `\b`: by the native matcher when there is one, otherwise by the expression over `text()`.
    func scan(_ bytes: Data, from: Int, text: () -> String) -> Scan {
        guard let native else { return scan(text(), in: NSRange(location: from, length: bytes.count - from)) }
        let found = bytes.withUnsafeBytes { native.scan($0.bindMemory(to: UInt8.self), in: from..<bytes.count) }
        var scan = Scan()
        for match in found.matches {
            let range = NSRange(location: match.lowerBound, length: match.count)
            scan.spans.append(range)
            scan.matches.append(range)
        }
        scan.lastMatch = scan.matches.last
        scan.lastMatchHitEnd = found.lastHitEnd
        return scan
    }

    /// The result of scanning text.
    struct Scan {
        /// The spans found, in order: capture groups that took part, or whole matches.
        var spans: [NSRange] = []
        /// The whole match each span belongs to.
        var matches: [NSRange] = []
        /// The last whole match.
        var lastMatch: NSRange?
        /// Matching the last match ran into the end of the text: more bytes might extend it.
        var lastMatchHitEnd = false
    }

    /// The spans in `range` of `text`; the text around the range is seen by lookarounds and `\b` but never
    /// matched.
    func scan(_ text: String, in range: NSRange) -> Scan {
        var scan = Scan()
        expression.enumerateMatches(
            in: text,
            options: [.withTransparentBounds, .withoutAnchoringBounds],
            range: range
        ) { match, flags, _ in
            guard let match else { return }
            scan.lastMatch = match.range
            scan.lastMatchHitEnd = flags.contains(.hitEnd)
            if groupCount == 0 {
                if match.range.length > 0 {
                    scan.spans.append(match.range)
                    scan.matches.append(match.range)
                }
                return
            }
            for group in 1...groupCount {
                let span = match.range(at: group)
                if span.location != NSNotFound, span.length > 0 {
                    scan.spans.append(span)
                    scan.matches.append(match.range)
                }
            }
        }
        return scan
    }
}
