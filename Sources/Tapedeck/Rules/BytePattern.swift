import Foundation

/// A regular expression over bytes: ICU's engine run over the bytes as ISO Latin-1 text, where each byte is one
/// UTF-16 unit, so a match's range is its range of bytes.
///
/// Besides finding matches, it says where a match could still begin that more bytes might complete: the spans
/// of a stream read piece by piece are found even when a read splits one (`hold`).
struct BytePattern: Sendable {
    /// A cheap test that rules a stretch of bytes out before the expression runs.
    enum Prefilter: Sendable, Hashable {
        /// A match contains these bytes.
        case literal([UInt8])
        /// A match contains a run of at least this many ASCII digits.
        case digitRun(Int)
        /// A match is shaped as a UUID: dashes 5 bytes apart, four of them.
        case uuidShape
    }

    /// The expression. NSRegularExpression is immutable and documented as safe to use from many threads.
    nonisolated(unsafe) let expression: NSRegularExpression
    /// Whether the expression has capture groups, whose ranges are the spans.
    let groupCount: Int
    let prefilter: Prefilter?

    /// How far before the end of the bytes read so far a match still in progress is looked for; a span that
    /// began further back and is split by a read is missed.
    static let holdWindow = 512

    /// Compiles `pattern`.
    ///
    /// - Throws: ``TapedeckError`` (`invalidArgument`) naming the expression and ICU's reason.
    init(_ pattern: String, prefilter: Prefilter? = nil) throws {
        do {
            expression = try NSRegularExpression(pattern: pattern, options: [])
        } catch {
            throw TapedeckError(.invalidArgument, "invalid regular expression '\(pattern)': it does not compile")
        }
        groupCount = expression.numberOfCaptureGroups
        self.prefilter = prefilter ?? Self.leadingLiteral(of: pattern).map { .literal($0) }
    }

    /// The literal bytes a match must begin with, when the pattern plainly starts with three or more: no flags,
    /// no alternation, no escape or class before them.
    static func leadingLiteral(of pattern: String) -> [UInt8]? {
        guard !pattern.contains("|"), !pattern.hasPrefix("(?") else { return nil }
        let special = Set("\\^$.|?*+()[]{}")
        var literal: [Character] = []
        for character in pattern {
            if special.contains(character) {
                // A quantifier applies to the character before it, which is then not required.
                if "?*{".contains(character), !literal.isEmpty { literal.removeLast() }
                break
            }
            literal.append(character)
        }
        let bytes = String(literal).unicodeScalars.compactMap { $0.value < 0x80 ? UInt8($0.value) : nil }
        guard bytes.count == literal.count, bytes.count >= 3 else { return nil }
        return bytes
    }

    /// Whether `bytes` may hold a match, or the start of one at their end.
    func mayMatch(_ bytes: Data) -> Bool {
        guard let prefilter else { return true }
        return bytes.withUnsafeBytes { raw in
            let buffer = raw.bindMemory(to: UInt8.self)
            switch prefilter {
            case .literal(let literal):
                return Self.contains(literal, in: buffer) || Self.endsWithPrefix(of: literal, in: buffer)
            case .digitRun(let length):
                var run = 0
                for byte in buffer {
                    if byte &- 0x30 < 10 {
                        run += 1
                        if run >= length { return true }
                    } else {
                        run = 0
                    }
                }
                // A run cut off by the end may go on in the next read.
                return run > 0
            case .uuidShape:
                let count = buffer.count
                var index = 0
                while index < count {
                    if buffer[index] == UInt8(ascii: "-") {
                        // The first dash of a UUID, or one the end cuts off.
                        var dashes = 1
                        var next = index + 5
                        while dashes < 4, next < count, buffer[next] == UInt8(ascii: "-") {
                            dashes += 1
                            next += 5
                        }
                        if dashes == 4 || next >= count { return true }
                    }
                    index += 1
                }
                // Hex digits at the end may begin one.
                if let last = buffer.last { return Self.isHexDigit(last) }
                return false
            }
        }
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        byte &- 0x30 < 10 || (byte | 0x20) &- 0x61 < 6
    }

    private static func contains(_ needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>) -> Bool {
        needle.withUnsafeBytes { ByteSearch.contains($0, in: UnsafeRawBufferPointer(haystack)) }
    }

    /// Whether the bytes end with a proper prefix of `literal`: a match the next read may complete.
    private static func endsWithPrefix(of literal: [UInt8], in haystack: UnsafeBufferPointer<UInt8>) -> Bool {
        let longest = min(literal.count - 1, haystack.count)
        guard longest > 0 else { return false }
        for length in stride(from: longest, through: 1, by: -1)
        where haystack[(haystack.count - length)...].elementsEqual(literal[..<length]) {
            return true
        }
        return false
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
        let text = Self.text(bytes)
        return scan(text, in: NSRange(location: 0, length: bytes.count)).spans.map {
            $0.location..<($0.location + $0.length)
        }
    }

    /// The result of scanning text.
    struct Scan {
        /// The spans found, in order: capture groups that took part, or whole matches.
        var spans: [NSRange] = []
        /// Whether a match attempt ran into the end of the text: more bytes might change what matched.
        var hitEnd = false
    }

    /// The spans in `range` of `text`; the text around the range is seen by lookarounds and `\b` but never
    /// matched.
    func scan(_ text: String, in range: NSRange) -> Scan {
        var scan = Scan()
        expression.enumerateMatches(
            in: text,
            options: [.reportCompletion, .withTransparentBounds, .withoutAnchoringBounds],
            range: range
        ) { match, flags, _ in
            if flags.contains(.hitEnd) { scan.hitEnd = true }
            guard let match else { return }
            if groupCount == 0 {
                if match.range.length > 0 { scan.spans.append(match.range) }
                return
            }
            for group in 1...groupCount {
                let span = match.range(at: group)
                if span.location != NSNotFound, span.length > 0 { scan.spans.append(span) }
            }
        }
        return scan
    }

    /// The earliest position in the last ``holdWindow`` units of `range` where a match attempt runs into the end
    /// of the text: bytes from there on may belong to a span the next read completes.
    func holdStart(_ text: String, in range: NSRange) -> Int? {
        let end = range.location + range.length
        let from = max(range.location, end - Self.holdWindow)
        let string = text
        for position in from..<end {
            var hitEnd = false
            expression.enumerateMatches(
                in: string,
                options: [.anchored, .reportCompletion, .withTransparentBounds, .withoutAnchoringBounds],
                range: NSRange(location: position, length: end - position)
            ) { _, flags, stop in
                if flags.contains(.hitEnd) {
                    hitEnd = true
                    stop.pointee = true
                }
            }
            if hitEnd { return position }
        }
        return nil
    }
}
