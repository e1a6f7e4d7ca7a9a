import Foundation

/// What the bytes that made a replayed client leave the tape look like, and a rule that would let them differ.
///
/// A client that sends a fresh value on every run (a request id, a timestamp, a signature) leaves the tape at
/// that value. The hint finds the token the first differing byte falls in, in the recorded and in the live
/// excerpt, names what it looks like, and writes a `--volatile` flag, ready to paste into a POSIX shell, whose
/// span covers the token on both sides. When the token follows a header (`Name: `), a form or query field
/// (`name=`) or a JSON key (`"name":`), that text leads the rule as a literal, so the rule touches nothing else.
/// A preset that covers the token is offered first.
///
/// ```swift
/// let hint = MismatchHint(
///     expected: Data("X-Request-Id: 7c9e6679-7425-40de-944b-e07fc1f90ae7\r\n".utf8),
///     actual: Data("X-Request-Id: 0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d\r\n".utf8)
/// )
/// // the differing bytes look like a UUID: --preset uuid, or --volatile 'X-Request-Id: ([0-9a-f-]{36})'
/// ```
///
/// A mismatch keeps only a few bytes before the first difference, so a token may begin before its excerpt does.
/// Everything before the first difference is the same on both sides, so a rule over the part shown still covers
/// every differing byte of the token; it names no context then, since none is shown.
struct MismatchHint: Sendable, Hashable, CustomStringConvertible {
    /// What the differing token looks like, with its article: "a UUID".
    var kind: String
    /// The flag, quoted for a POSIX shell: `--volatile 'X-Request-Id: ([0-9a-f-]{36})'`.
    var rule: String
    /// The regular expression of ``rule``, unquoted.
    var pattern: String
    /// A preset whose rules cover tokens of this kind, when one does.
    var preset: RulePreset?

    var description: String {
        if kind == Self.tlsKind {
            return "the differing bytes are inside TLS, where every handshake is new: a session recorded with "
                + "--tls off holds ciphertext, which cannot replay; record it with --tls intercept"
        }
        return "the differing bytes look like \(kind): " + (preset.map { "--preset \($0), or " } ?? "") + rule
    }

    /// The hint for two excerpts that start at the same offset of the client's stream, or nil when they do not
    /// differ or nothing recognizable does.
    /// The kind of a difference inside TLS records.
    static let tlsKind = "TLS"

    /// Whether `bytes`, up to the difference, hold the start of a TLS handshake record: a ClientHello or a
    /// ServerHello (content type 22, version 3.x, handshake type 1 or 2).
    static func startsTLS(_ bytes: ArraySlice<UInt8>) -> Bool {
        var index = bytes.startIndex
        while index + 5 < bytes.endIndex {
            if bytes[index] == 0x16, bytes[index + 1] == 0x03, bytes[index + 2] <= 0x04,
                bytes[index + 5] == 0x01 || bytes[index + 5] == 0x02
            {
                return true
            }
            index += 1
        }
        return false
    }

    init?(expected: Data, actual: Data) {
        guard let index = Self.firstDifference(expected, actual) else { return nil }
        self.init(expected: expected, actual: actual, differingAt: index)
    }

    /// The hint for two excerpts whose first differing byte is at `index` of both; nil when nothing recognizable
    /// differs there.
    init?(expected: Data, actual: Data, differingAt index: Int) {
        let recordedBytes = [UInt8](expected)
        let liveBytes = [UInt8](actual)
        guard index >= 0, index <= recordedBytes.count, index <= liveBytes.count else { return nil }
        if Self.startsTLS(recordedBytes[..<min(index + 1, recordedBytes.count)])
            || Self.startsTLS(liveBytes[..<min(index + 1, liveBytes.count)])
        {
            (kind, rule, pattern, preset) = (Self.tlsKind, "--tls intercept", "", nil)
            return
        }
        let recordedText = BytePattern.text(expected)
        let liveText = BytePattern.text(actual)
        for shape in Shape.allCases {
            guard let recorded = shape.token(in: recordedText, count: recordedBytes.count, around: index),
                let live = shape.token(in: liveText, count: liveBytes.count, around: index),
                // A token that ends where the difference begins, on both sides, is not what differs.
                recorded.range.contains(index) || live.range.contains(index)
            else { continue }
            let pair = Shape.TokenPair(
                recorded: recordedBytes[recorded.range],
                live: liveBytes[live.range],
                opensBefore: recorded.opensBefore || live.opensBefore,
                opensAfter: recorded.range.upperBound == recordedBytes.count
                    || live.range.upperBound == liveBytes.count
            )
            guard shape.accepts(pair) else { continue }
            // The text before the token is the same on both sides only when the tokens start together.
            let context =
                recorded.range.lowerBound == live.range.lowerBound && !pair.opensBefore
                ? Self.context(before: recordedBytes[..<recorded.range.lowerBound]) : nil
            let shapePattern = shape.pattern(for: pair, afterLiteral: context != nil)
            let pattern = context.map { Self.regexLiteral($0) + "(" + shapePattern + ")" } ?? shapePattern
            self.kind = shape.kind
            self.pattern = pattern
            self.rule = "--volatile " + Self.shellQuoted(pattern)
            self.preset = shape.preset
            return
        }
        return nil
    }

    /// The index of the first byte that differs: the length of the common prefix, or the end of the shorter
    /// excerpt when one is a prefix of the other. Nil when they are equal.
    static func firstDifference(_ expected: Data, _ actual: Data) -> Int? {
        var index = 0
        var recorded = expected.makeIterator()
        var live = actual.makeIterator()
        while true {
            switch (recorded.next(), live.next()) {
            case (nil, nil): return nil
            case (let left?, let right?) where left == right: index += 1
            default: return index
            }
        }
    }

    /// The literal text a rule can start from, if the bytes just before the token name it: a JSON key
    /// (`"name": "`), a form or query field (`name=`), or a header (`Name: `). The name must be shown whole: a
    /// delimiter before it must be in the excerpt.
    static func context(before bytes: ArraySlice<UInt8>) -> [UInt8]? {
        let text = BytePattern.text(Data(bytes))
        let whole = NSRange(location: 0, length: bytes.count)
        for context in contextPatterns {
            guard let match = context?.expression.firstMatch(in: text, options: [], range: whole) else { continue }
            let range = match.range(at: 1)
            return Array(
                bytes[(bytes.startIndex + range.location)..<(bytes.startIndex + range.location + range.length)]
            )
        }
        return nil
    }

    /// JSON key, field, header; each captures the literal and is anchored at the token (`\z`: `$` would also
    /// match before a final newline).
    private static let contextPatterns: [BytePattern?] = [
        #"("[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}"[ \t]*:[ \t]*"?)\z"#,
        #"[?&;,\s]([A-Za-z0-9_.\-]{1,64}="?)\z"#,
        #"\n([A-Za-z0-9\-]{1,64}:[ \t]*)\z"#,
    ].map { try? BytePattern($0) }

    /// Bytes as a regular expression that matches just them: metacharacters escaped, and anything but printable
    /// ASCII written as an escape.
    static func regexLiteral<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var text = ""
        for byte in bytes {
            switch byte {
            case 0x09: text += #"\t"#
            case 0x0A: text += #"\n"#
            case 0x0D: text += #"\r"#
            case _ where #"\^$.|?*+()[]{}"#.utf8.contains(byte): text += "\\" + String(UnicodeScalar(byte))
            case 0x20...0x7E: text.unicodeScalars.append(UnicodeScalar(byte))
            default: text += #"\x"# + (byte < 0x10 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return text
    }

    /// `text` as one word for a POSIX shell: in single quotes, each single quote inside written as `'\''`.
    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
