import Foundation

extension MismatchHint {
    /// A kind of token a hint recognizes, tried in this order: the most specific first, so a UUID is never
    /// called hex and an epoch never a number.
    enum Shape: CaseIterable {
        case httpDate
        case isoTimestamp
        case compactTimestamp
        case uuid
        case unixTimestamp
        case hexDigest
        case base64
        case base64URL
        case number

        /// A token found in one excerpt.
        struct Token {
            var range: Range<Int>
            /// The token may begin before the excerpt: it starts the excerpt, and nothing shown says it is whole.
            var opensBefore: Bool
        }

        /// The token as recorded and as sent live.
        struct TokenPair {
            var recorded: ArraySlice<UInt8>
            var live: ArraySlice<UInt8>
            /// A side's token may begin before its excerpt.
            var opensBefore: Bool
            /// A side's token reaches the end of its excerpt, and may go on after it.
            var opensAfter: Bool

            var both: [ArraySlice<UInt8>] { [recorded, live] }
        }

        var kind: String {
            switch self {
            case .httpDate: return "an HTTP date"
            case .isoTimestamp, .compactTimestamp: return "an ISO 8601 timestamp"
            case .uuid: return "a UUID"
            case .unixTimestamp: return "a Unix timestamp"
            case .hexDigest: return "a hex digest"
            case .base64, .base64URL: return "base64"
            case .number: return "a number"
            }
        }

        var preset: RulePreset? {
            switch self {
            case .httpDate, .isoTimestamp, .compactTimestamp, .unixTimestamp: return .timestamps
            case .uuid: return .uuid
            case .hexDigest, .base64, .base64URL, .number: return nil
            }
        }

        /// What finds a token of this shape in an excerpt. Lookarounds keep a token whole: a hex digest is never
        /// the tail of a longer word.
        private var recognizer: String {
            switch self {
            case .httpDate:
                return
                    #"(?<![A-Za-z])(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"#
            case .isoTimestamp:
                return
                    #"(?<![0-9A-Za-z_])[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?(?![0-9])"#
            case .compactTimestamp: return #"(?<![0-9A-Za-z_])[0-9]{8}T[0-9]{6}Z(?![0-9A-Za-z_])"#
            case .uuid:
                return
                    #"(?<![0-9A-Za-z_])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Za-z_])"#
            case .unixTimestamp: return #"(?<![0-9A-Za-z_.])1[0-9]{9}(?:[0-9]{3})?(?![0-9A-Za-z_])"#
            case .hexDigest: return #"(?<![0-9A-Za-z_])[0-9A-Fa-f]{16,}(?![0-9A-Za-z_])"#
            case .base64: return #"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=_-])"#
            case .base64URL: return #"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_-])"#
            case .number: return #"(?<![0-9A-Za-z_.])[0-9]+(?:\.[0-9]+)?(?![0-9A-Za-z_])"#
            }
        }

        /// A whole token of a fixed layout, whose first characters complete one the excerpt shows only the end of.
        private var sample: String? {
            switch self {
            case .httpDate: return "Mon, 01 Jan 2000 00:00:00 GMT"
            case .isoTimestamp: return "2000-01-01T00:00:00"
            case .compactTimestamp: return "20000101T000000Z"
            case .uuid: return "00000000-0000-0000-0000-000000000000"
            case .unixTimestamp, .hexDigest, .base64, .base64URL, .number: return nil
            }
        }

        /// What finds a token whose start the sample completes: the recognizer, but where the sample's letters
        /// may stand for other words (`Mon` for `Sat`).
        private var completedRecognizer: String {
            switch self {
            case .httpDate:
                return #"[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"#
            default:
                return recognizer
            }
        }

        /// The recognizers, compiled once; a test checks that each compiles.
        static let recognizers: [Shape: BytePattern] = Dictionary(
            uniqueKeysWithValues: allCases.compactMap { shape in
                (try? BytePattern(shape.recognizer)).map { (shape, $0) }
            }
        )

        /// The recognizers of tokens cut off by the excerpt's start, for the shapes with a sample.
        static let completedRecognizers: [Shape: BytePattern] = Dictionary(
            uniqueKeysWithValues: allCases.compactMap { shape in
                guard shape.sample != nil else { return nil }
                return (try? BytePattern(shape.completedRecognizer)).map { (shape, $0) }
            }
        )

        /// The token of this shape at `index` in `text` (an excerpt as Latin-1, `count` bytes): the one holding
        /// the byte at `index`, or else the one ending just before it (the other side's may be longer).
        func token(in text: String, count: Int, around index: Int) -> Token? {
            guard let expression = Self.recognizers[self]?.expression else { return nil }
            var found: Range<Int>?
            let whole = NSRange(location: 0, length: count)
            expression.enumerateMatches(in: text, options: [], range: whole) { match, _, stop in
                guard let match, match.range.length > 0 else { return }
                let range = match.range.location..<(match.range.location + match.range.length)
                guard range.lowerBound <= index else {
                    stop.pointee = true
                    return
                }
                guard range.upperBound >= index else { return }
                found = range
                if range.contains(index) { stop.pointee = true }
            }
            if let found { return Token(range: found, opensBefore: sample == nil && found.lowerBound == 0) }
            guard let sample, let completed = Self.completedRecognizers[self]?.expression else { return nil }
            // The excerpt may begin inside the token: try the sample's first characters in front of it.
            for length in 1..<sample.utf16.count {
                let padded = String(sample.prefix(length)) + text
                let range = NSRange(location: 0, length: length + count)
                guard let match = completed.firstMatch(in: padded, options: [.anchored], range: range) else {
                    continue
                }
                let end = match.range.location + match.range.length - length
                guard end > 0, end >= index else { continue }
                return Token(range: 0..<end, opensBefore: true)
            }
            return nil
        }

        /// Whether the tokens are convincing as this shape: enough of a token cut off by the excerpt's start is
        /// shown, a hex digest has a letter, base64 mixes its alphabet.
        func accepts(_ pair: TokenPair) -> Bool {
            switch self {
            case .httpDate:
                return !pair.opensBefore || pair.both.allSatisfy { $0.count >= 12 }
            case .isoTimestamp, .compactTimestamp:
                return !pair.opensBefore
                    || pair.both.allSatisfy {
                        $0.count >= 8 && ($0.contains(UInt8(ascii: "T")) || $0.contains(UInt8(ascii: "-")))
                    }
            case .uuid:
                return !pair.opensBefore || pair.both.allSatisfy { $0.count >= 13 }
            case .unixTimestamp:
                // A run of digits cut off by either end may be a longer number.
                return !pair.opensBefore && !pair.opensAfter
            case .hexDigest:
                return pair.both.contains { $0.contains(where: Self.isHexLetter) }
            case .base64:
                return pair.both.allSatisfy { token in
                    // A path ("/v1/objects/…") is made of the same characters.
                    guard token.first != UInt8(ascii: "/") else { return false }
                    let classes: [(UInt8) -> Bool] = [Self.isDigit, Self.isUppercase, Self.isLowercase]
                    let mixed = classes.filter { isIn in token.contains(where: isIn) }.count >= 2
                    return mixed || token.contains(UInt8(ascii: "+")) || token.contains(UInt8(ascii: "/"))
                }
            case .base64URL:
                return pair.both.allSatisfy {
                    $0.contains(where: Self.isDigit) && $0.contains(where: Self.isUppercase)
                        && $0.contains(where: Self.isLowercase)
                }
            case .number:
                return true
            }
        }

        /// The expression for the token, matching it on both sides. After a literal it may be loose (the
        /// literal says where it starts); alone it must not start early or stop short.
        func pattern(for pair: TokenPair, afterLiteral: Bool) -> String {
            let open = pair.opensBefore || pair.opensAfter
            let sameLength = !open && pair.recorded.count == pair.live.count
            switch self {
            case .httpDate, .isoTimestamp, .compactTimestamp:
                return Self.layoutPattern(pair, hexRuns: nil)
            case .uuid:
                let hex = Self.hexClass(pair)
                if afterLiteral, !open { return "[\(hex)-]{36}" }
                // Alone, `[0-9a-f-]{36}` could start at a dash before the UUID and stop short of its end.
                return Self.layoutPattern(pair, hexRuns: hex)
            case .unixTimestamp:
                return sameLength ? "[0-9]{\(pair.recorded.count)}" : "[0-9]{10}(?:[0-9]{3})?"
            case .hexDigest:
                return "[\(Self.hexClass(pair))]" + (sameLength ? "{\(pair.recorded.count)}" : "{16,}")
            case .base64:
                let bodies = pair.both.map { $0.count - $0.reversed().prefix { $0 == UInt8(ascii: "=") }.count }
                let padded = bodies != pair.both.map(\.count)
                let body = sameLength && bodies[0] == bodies[1] ? "{\(bodies[0])}" : "{16,}"
                return "[A-Za-z0-9+/]" + body + (padded ? "={0,2}" : "")
            case .base64URL:
                return "[A-Za-z0-9_-]" + (sameLength ? "{\(pair.recorded.count)}" : "{16,}")
            case .number:
                let decimal = pair.both.contains { $0.contains(UInt8(ascii: ".")) }
                return decimal ? #"[0-9]+(?:\.[0-9]+)?"# : "[0-9]+"
            }
        }

        /// A run of a token's characters: digits (or hex digits), letters, or one other byte.
        private enum Run: Equatable {
            case digits(Int)
            case letters([UInt8])
            case other(UInt8)
        }

        /// The token's layout as an expression, run by run: `2024-05-01T12:34:56Z` is
        /// `[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z`. A run whose length differs between the sides,
        /// or that may go on past the excerpt, takes any length; where the layouts part, any of the characters of a
        /// timestamp follow. With `hexRuns` (a class such as `0-9a-f`), hex digits make the runs instead of digits.
        private static func layoutPattern(_ pair: TokenPair, hexRuns: String?) -> String {
            let recorded = runs(pair.recorded, hex: hexRuns != nil)
            let live = runs(pair.live, hex: hexRuns != nil)
            let digitClass = hexRuns ?? "0-9"
            var pattern = ""
            var index = 0
            layout: while index < min(recorded.count, live.count) {
                let first = index == 0 && pair.opensBefore
                let last = index == max(recorded.count, live.count) - 1 && pair.opensAfter
                switch (recorded[index], live[index]) {
                case (.digits(let left), .digits(let right)):
                    pattern += "[\(digitClass)]" + quantifier(left, right, loose: first || last)
                case (.letters(let left), .letters(let right)):
                    if left == right, !first, !last, fixedWords.contains(left) {
                        pattern += MismatchHint.regexLiteral(left)
                    } else {
                        pattern += "[A-Za-z]" + quantifier(left.count, right.count, loose: first || last)
                    }
                case (.other(let left), .other(let right)) where left == right:
                    pattern += MismatchHint.regexLiteral([left])
                default:
                    break layout
                }
                index += 1
            }
            if index < max(recorded.count, live.count) { pattern += "[0-9A-Za-z:.,+-]*" }
            return pattern
        }

        /// Letters a timestamp always spells the same: kept as they are.
        private static let fixedWords: Set<[UInt8]> = [Array("T".utf8), Array("Z".utf8), Array("GMT".utf8)]

        private static func quantifier(_ left: Int, _ right: Int, loose: Bool) -> String {
            guard left == right, !loose else { return "+" }
            return left == 1 ? "" : "{\(left)}"
        }

        private static func runs(_ bytes: ArraySlice<UInt8>, hex: Bool) -> [Run] {
            var runs: [Run] = []
            for byte in bytes {
                let digit = hex ? isHexDigit(byte) : isDigit(byte)
                let letter = !digit && (isUppercase(byte) || isLowercase(byte))
                switch runs.last {
                case .digits(let count) where digit: runs[runs.count - 1] = .digits(count + 1)
                case .letters(let letters) where letter: runs[runs.count - 1] = .letters(letters + [byte])
                default: runs.append(digit ? .digits(1) : letter ? .letters([byte]) : .other(byte))
                }
            }
            return runs
        }

        /// The hex digits of a class, in the case (or cases) the tokens use.
        private static func hexClass(_ pair: TokenPair) -> String {
            let lower = pair.both.contains { $0.contains { (0x61...0x66).contains($0) } }
            let upper = pair.both.contains { $0.contains { (0x41...0x46).contains($0) } }
            switch (lower, upper) {
            case (false, true): return "0-9A-F"
            case (true, true): return "0-9A-Fa-f"
            default: return "0-9a-f"
            }
        }

        private static func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }
        private static func isUppercase(_ byte: UInt8) -> Bool { (0x41...0x5A).contains(byte) }
        private static func isLowercase(_ byte: UInt8) -> Bool { (0x61...0x7A).contains(byte) }
        private static func isHexLetter(_ byte: UInt8) -> Bool { (0x61...0x66).contains(byte | 0x20) }
        private static func isHexDigit(_ byte: UInt8) -> Bool { isDigit(byte) || isHexLetter(byte) }
    }
}
