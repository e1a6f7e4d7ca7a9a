import Foundation

/// A rule names bytes in a session's streams by a regular expression over bytes: spans that may differ between
/// recording and replay (`volatile`), or that must never reach the tape (`redact`).
///
/// The expression runs over the bytes as ISO Latin-1 text, one character per byte, so `\x00`-`\xff` name bytes
/// and `.` matches any byte but a newline. When it has capture groups, each group that took part in a match is a
/// span; otherwise the whole match is.
///
/// ```swift
/// let rule = try Rule(.volatile, pattern: "X-Request-Id: ([0-9a-f-]{36})")
/// ```
public struct Rule: Sendable, Hashable, Codable, CustomStringConvertible {
    /// What a rule does with its spans.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// The span may differ between recording and replay: matching takes the recorded and the live span as
        /// equal when both are spans of the rule at the same place in the stream, whatever their lengths.
        case volatile
        /// The span never reaches the tape: the recorder writes a placeholder of the same length.
        case redact
    }

    /// Which of a session's streams a rule reads.
    public enum Scope: String, Sendable, Hashable, Codable, CaseIterable {
        /// What the client sent.
        case client
        /// What the upstream sent.
        case upstream
        /// Both.
        case both

        /// Whether the rule reads the stream of `direction`.
        public func covers(_ direction: Direction) -> Bool {
            switch (self, direction) {
            case (.both, _), (.client, .clientToUpstream), (.upstream, .upstreamToClient): return true
            default: return false
            }
        }
    }

    /// What the rule does.
    public var kind: Kind
    /// The regular expression, in ICU syntax, over bytes as Latin-1 text.
    public var pattern: String
    /// Which streams it reads.
    public var scope: Scope
    /// For a redact rule: the secret whose value replay sends in place of a redacted upstream span, when one is
    /// supplied (`--secret NAME=VALUE` or `TAPEDECK_SECRET_<NAME>`).
    public var secret: String?
    /// The preset this rule belongs to, if any: shown where spans are marked.
    public var preset: String?

    /// Creates a rule, checking that its expression compiles.
    ///
    /// - Throws: ``TapedeckError`` (`invalidArgument`) naming the expression when it does not compile.
    public init(
        _ kind: Kind,
        pattern: String,
        scope: Scope = .both,
        secret: String? = nil,
        preset: String? = nil
    ) throws {
        self.kind = kind
        self.pattern = pattern
        self.scope = scope
        self.secret = secret
        self.preset = preset
        _ = try BytePattern(pattern)
    }

    /// A rule from a preset's table, whose expression is known to compile (a test compiles every one).
    init(preset: String, _ kind: Kind, _ pattern: String, scope: Scope = .both, secret: String? = nil) {
        self.kind = kind
        self.pattern = pattern
        self.scope = scope
        self.secret = secret
        self.preset = preset
    }

    /// How the rule is written on the command line: `--volatile 'X-Amz-Date: [0-9TZ]+'`.
    public var description: String {
        var text = "--\(kind.rawValue) '\(pattern)'"
        if scope != .both { text += " (\(scope.rawValue) only)" }
        if let preset { text += " [preset \(preset)]" }
        return text
    }
}

extension Array where Element == Rule {
    /// The rules in order, each once: rules given again (at replay, on top of the tape's) are not applied twice.
    public func uniqued() -> [Rule] {
        var seen = Set<Rule>()
        return filter { seen.insert($0).inserted }
    }
}
