import Foundation

/// Replaces the rule spans of one byte stream by tokens, so that replay compares what must be equal and not
/// what may differ: a volatile span becomes `{tapedeck:volatile:N}` (N the rule's index), a redacted span
/// `{tapedeck:redacted:LENGTH}`, the listen address `{tapedeck:listen}`. A recorded stream and a live one that
/// differ only inside such spans normalize to the same bytes.
///
/// Live bytes come read by read. A span a read splits is still found: bytes that may begin a span the next read
/// completes are held back (``isHolding``) until it comes, or until ``flush()``, which the replay handler calls
/// when the client goes quiet or ends.
struct StreamNormalizer {
    /// A span replaced by its token.
    struct Replacement: Sendable, Hashable {
        /// Where the span's bytes were in the raw stream.
        var raw: Range<Int>
        /// Where its token is in the normalized stream.
        var normalized: Range<Int>
        var meaning: CompiledRules.Meaning
    }

    /// A whole stream normalized at once (a recorded one).
    struct Whole: Sendable {
        var bytes: Data
        /// In stream order.
        var replacements: [Replacement]

        /// Where a raw position lands in the normalized stream; a position inside a span lands at its token's end.
        /// Positions asked for in ascending order are found with `cursor` in constant time.
        func normalizedPosition(ofRaw position: Int, cursor: inout Int) -> Int {
            while cursor < replacements.count, replacements[cursor].raw.upperBound <= position { cursor += 1 }
            let before = cursor > 0 ? replacements[cursor - 1] : nil
            let shift = before.map { $0.normalized.upperBound - $0.raw.upperBound } ?? 0
            if cursor < replacements.count, replacements[cursor].raw.lowerBound < position {
                return replacements[cursor].normalized.upperBound
            }
            return position + shift
        }
    }

    /// How much already-released stream the rules' lookarounds see.
    static let contextLength = 64

    let rules: CompiledRules
    private var pending = Data()
    private var context = Data()
    /// Normalized bytes released so far.
    private(set) var normalizedCount = 0
    /// The live value of each volatile span, by where its token starts in the normalized stream: what echo puts
    /// back into the upstream's recorded bytes.
    private(set) var captures: [Int: Data] = [:]

    init(rules: CompiledRules) {
        self.rules = rules
    }

    /// Bytes that may begin a span are waiting for more.
    var isHolding: Bool { !pending.isEmpty }

    /// The next read: returns the normalized bytes that are final.
    mutating func feed(_ chunk: Data) -> Data {
        if pending.isEmpty, !rules.mayMatch(chunk) {
            // Most reads hold no span: pass them on untouched.
            normalizedCount += chunk.count
            if !rules.isEmpty { remember(chunk) }
            return chunk
        }
        pending.append(chunk)
        return release(final: false)
    }

    /// Nothing more is coming for now: release what is held, spans completed as far as they go.
    mutating func flush() -> Data {
        guard !pending.isEmpty else { return Data() }
        return release(final: true)
    }

    private mutating func release(final: Bool) -> Data {
        let (spans, hold) = rules.spans(in: pending, context: context, final: final)
        let head = Data(pending.prefix(hold))
        var output = Data()
        output.reserveCapacity(head.count)
        var position = 0
        for span in spans {
            output.append(head[(head.startIndex + position)..<(head.startIndex + span.range.lowerBound)])
            let value = Data(
                head[(head.startIndex + span.range.lowerBound)..<(head.startIndex + span.range.upperBound)]
            )
            if case .volatile = span.meaning { captures[normalizedCount + output.count] = value }
            output.append(Self.token(span.meaning, rawLength: span.range.count))
            position = span.range.upperBound
        }
        output.append(head[(head.startIndex + position)...])
        pending = Data(pending.dropFirst(hold))
        normalizedCount += output.count
        remember(head)
        return output
    }

    private mutating func remember(_ released: Data) {
        context.append(released.suffix(Self.contextLength))
        if context.count > Self.contextLength { context = Data(context.suffix(Self.contextLength)) }
    }

    /// The token that stands for a span.
    static func token(_ meaning: CompiledRules.Meaning, rawLength: Int) -> Data {
        switch meaning {
        case .listen: return ListenAddressText.token
        case .volatile(let rule): return Data("{tapedeck:volatile:\(rule)}".utf8)
        case .redact: return Data("{tapedeck:redacted:\(rawLength)}".utf8)
        case .lens: return Data("{tapedeck:lens:\(rawLength)}".utf8)
        }
    }

    /// A whole stream normalized at once; `forced` spans (redactions the tape recorded) win over the rules'.
    static func normalize(_ raw: Data, rules: CompiledRules, forced: [CompiledRules.Span] = []) -> Whole {
        var spans = rules.isEmpty ? [] : rules.spans(in: raw, final: true).spans
        if !forced.isEmpty {
            spans = CompiledRules.resolve(
                forced + spans.filter { span in !forced.contains { $0.range.overlaps(span.range) } }
            )
        }
        guard !spans.isEmpty else { return Whole(bytes: raw, replacements: []) }
        var output = Data()
        output.reserveCapacity(raw.count)
        var replacements: [Replacement] = []
        var position = 0
        for span in spans {
            output.append(raw[(raw.startIndex + position)..<(raw.startIndex + span.range.lowerBound)])
            let start = output.count
            output.append(token(span.meaning, rawLength: span.range.count))
            replacements.append(Replacement(raw: span.range, normalized: start..<output.count, meaning: span.meaning))
            position = span.range.upperBound
        }
        output.append(raw[(raw.startIndex + position)...])
        return Whole(bytes: output, replacements: replacements)
    }
}
