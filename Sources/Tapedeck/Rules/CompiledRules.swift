import Foundation
import NIOConcurrencyHelpers

/// The rules of a route, compiled for one direction of its sessions, and the listen address clients write into
/// their bytes as one more rule: what finds the spans that normalizing, redacting and marking work on.
struct CompiledRules: Sendable {
    /// What a span stands for.
    enum Meaning: Sendable, Hashable {
        /// The address the client connected to (see ``ListenAddressText``).
        case listen
        /// A span of the volatile rule at this index of ``rules``.
        case volatile(rule: Int)
        /// A span of the redact rule at this index of ``rules``.
        case redact(rule: Int)
        /// A message a protocol lens replaced by its canonical form (see ``StreamLens``); never a rule's span.
        case lens

        var isRedaction: Bool {
            if case .redact = self { return true }
            return false
        }
    }

    /// A span found: which bytes, and what they stand for.
    struct Span: Sendable, Hashable {
        var range: Range<Int>
        var meaning: Meaning
        /// The whole match the span is part of (the span itself when the rule has no groups): bytes released
        /// apart from each other would no longer match.
        var match: Range<Int>

        init(range: Range<Int>, meaning: Meaning, match: Range<Int>? = nil) {
            self.range = range
            self.meaning = meaning
            self.match = match ?? range
        }
    }

    private struct Entry: Sendable {
        var meaning: Meaning
        var pattern: BytePattern
    }

    /// Every rule of the route, in order: a rule's index is the same on the recorded and the live side.
    let rules: [Rule]
    private var entries: [Entry]

    /// No rule applies to this direction, and no address is normalized.
    var isEmpty: Bool { entries.isEmpty }

    /// Compiles the rules that read `direction`'s stream, of the kinds given.
    ///
    /// - Parameters:
    ///   - listen: The listener's address, normalized as a span of its own in the client's stream.
    /// - Throws: ``TapedeckError`` when an expression does not compile (a tape's stored rules are untrusted).
    init(
        _ rules: [Rule],
        direction: Direction,
        kinds: Set<Rule.Kind> = Set(Rule.Kind.allCases),
        listen: ListenAddressText? = nil
    ) throws {
        self.rules = rules
        var entries: [Entry] = []
        if let listen, direction == .clientToUpstream {
            entries.append(Entry(meaning: .listen, pattern: try listen.pattern()))
        }
        for (index, rule) in rules.enumerated() where rule.scope.covers(direction) && kinds.contains(rule.kind) {
            let tests = RulePreset.tests(of: rule)
            let pattern = try BytePattern(rule.pattern, required: tests?.required, tail: tests?.tail)
            entries.append(
                Entry(meaning: rule.kind == .redact ? .redact(rule: index) : .volatile(rule: index), pattern: pattern)
            )
        }
        self.entries = entries
    }

    /// These rules with the listen address as one more, found first.
    func adding(listen: ListenAddressText?) throws -> CompiledRules {
        guard let listen else { return self }
        var copy = self
        copy.entries.insert(Entry(meaning: .listen, pattern: try listen.pattern()), at: 0)
        return copy
    }

    /// The rule behind a span, if it has one.
    func rule(of meaning: Meaning) -> Rule? {
        switch meaning {
        case .listen, .lens: return nil
        case .volatile(let index), .redact(let index): return rules.indices.contains(index) ? rules[index] : nil
        }
    }

    /// Whether any rule may have a span in `bytes`, or may begin one at their end.
    func mayMatch(_ bytes: Data) -> Bool {
        bytes.withUnsafeBytes { mayMatch($0) }
    }

    /// Whether any rule may have a span in `raw`, or may begin one at its end.
    func mayMatch(_ raw: UnsafeRawBufferPointer) -> Bool {
        entries.contains { $0.pattern.mayMatch(raw) }
    }

    /// The spans in `pending`, which follows `context` (bytes already dealt with, seen only by lookarounds), and
    /// where spans stop being final: from `hold` on, bytes may belong to a span that more bytes complete. With
    /// `final`, nothing more will come and nothing is held.
    ///
    /// Spans do not overlap: a redaction wins over anything it overlaps (overlapping redactions merge), and of
    /// other overlapping spans the one that starts first (then the longest) wins.
    func spans(in pending: Data, context: Data = Data(), final: Bool) -> (spans: [Span], hold: Int) {
        let candidates = entries.filter { $0.pattern.mayMatch(pending) }
        guard !candidates.isEmpty else { return ([], pending.count) }
        let whole = context + pending
        // Built only for the rules that need the expression engine, and once for all of them.
        var builtText: String?
        func text() -> String {
            if let builtText { return builtText }
            let made = BytePattern.text(whole)
            builtText = made
            return made
        }
        var found: [Span] = []
        var hold = pending.count
        for entry in candidates {
            let scan = entry.pattern.scan(whole, from: context.count, text: text)
            for (span, match) in zip(scan.spans, scan.matches) {
                let start = span.location - context.count
                let matchStart = max(0, match.location - context.count)
                found.append(
                    Span(
                        range: start..<(start + span.length),
                        meaning: entry.meaning,
                        match: matchStart..<(match.location - context.count + match.length)
                    )
                )
            }
            guard !final else { continue }
            if let start = entry.pattern.holdStart(pending, text: text, offset: context.count, scan: scan) {
                hold = min(hold, start)
            }
        }
        var spans = Self.resolve(found)
        if !final {
            // A match reaching past the hold may yet grow: hold it whole, from where it began.
            for span in spans.reversed() where span.match.upperBound > hold {
                hold = min(hold, span.match.lowerBound)
            }
            spans.removeAll { $0.range.upperBound > hold }
        }
        return (spans, hold)
    }

    /// Non-overlapping spans in order; see ``spans(in:context:final:)``.
    static func resolve(_ found: [Span]) -> [Span] {
        var redactions: [Span] = []
        for span in found.filter({ $0.meaning.isRedaction }).sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
            if let last = redactions.last, last.range.upperBound > span.range.lowerBound {
                let merged = last.range.lowerBound..<max(last.range.upperBound, span.range.upperBound)
                redactions[redactions.count - 1].range = merged
                redactions[redactions.count - 1].match =
                    min(
                        last.match.lowerBound,
                        span.match.lowerBound
                    )..<max(last.match.upperBound, span.match.upperBound)
            } else {
                redactions.append(span)
            }
        }
        let others = found.filter { !$0.meaning.isRedaction }.sorted {
            ($0.range.lowerBound, -$0.range.count) < ($1.range.lowerBound, -$1.range.count)
        }
        var result = redactions
        var taken = redactions.map(\.range)
        var lastEnd = 0
        for span in others where span.range.lowerBound >= lastEnd {
            guard !taken.contains(where: { $0.overlaps(span.range) }) else { continue }
            result.append(span)
            taken.append(span.range)
            lastEnd = span.range.upperBound
        }
        return result.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }
}

/// A route's client rules with each listener's address added, compiled once per address: a connection finds its
/// listener's without compiling anything.
final class ListenRulesCache: Sendable {
    private let rules: CompiledRules
    private let byAddress = NIOLockedValueBox<[String: CompiledRules]>([:])

    init(_ rules: CompiledRules) {
        self.rules = rules
    }

    /// The rules with `listen` added; the rules alone when it is nil (or, which cannot happen for an address
    /// that was bound, its pattern does not compile).
    func rules(listeningAt listen: ListenAddressText?) -> CompiledRules {
        guard let listen else { return rules }
        let key = listen.spellings.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
        return byAddress.withLockedValue { cache in
            if let cached = cache[key] { return cached }
            let made = (try? rules.adding(listen: listen)) ?? rules
            cache[key] = made
            return made
        }
    }
}
