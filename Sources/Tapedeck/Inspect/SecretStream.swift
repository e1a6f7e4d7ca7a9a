import Foundation

/// One direction of a session read as one stream, for ``SecretScanner``: the data payloads joined in order, with
/// the way back from a place in the stream to the event it came in and the offset in that event.
///
/// A read may split a secret (`AUTH hun` and `ter2`); joined, the stream holds it whole. The stream is scanned a
/// chunk at a time as events arrive, so a session of any size is read in bounded memory: each chunk is read
/// with ``Limits/lookbehind`` bytes before it (for `^`, `\b` and an excerpt's context) and ``Limits/overlap``
/// bytes after it (for a secret that begins in the chunk and ends past it), and a span is reported by the chunk
/// it begins in.
struct SecretStream {
    /// How the stream is cut into chunks.
    struct Limits: Sendable {
        /// Bytes scanned at a time.
        var chunk = 1 << 20
        /// Bytes read past a chunk: a secret longer than this that begins near a chunk's end is cut there. At
        /// least what an excerpt shows of a secret and after it.
        var overlap = 64 << 10
        /// Bytes kept before a chunk; at least an excerpt's context.
        var lookbehind = 4 << 10
    }

    /// A secret found in the stream: of those found at one place, the most specific.
    struct Candidate {
        /// The event where it starts, and its offset in that event's payload.
        var seq: Int64
        var offset: Int
        var kind: SecretKind
        var excerpt: String
    }

    /// An event's bytes in the stream.
    private struct Piece {
        var seq: Int64
        var start: Int
        /// Whether the upstream's last complete line before the event was an SMTP `334` challenge.
        var afterChallenge: Bool
    }

    let direction: Direction
    let limits: Limits
    /// The bytes kept, from stream offset `base` on.
    private var bytes: [UInt8] = []
    private var base = 0
    /// The events whose bytes are kept, in order.
    private var pieces: [Piece] = []
    /// Where the next chunk starts: secrets that begin before it have been reported.
    private var scanned = 0
    /// The secrets found so far that an excerpt may still show, each masked wherever it shows.
    private var secrets: Set<Range<Int>> = []
    /// Whether any event followed a challenge: the detector for answers to one runs only then.
    private var anyAfterChallenge = false

    init(direction: Direction, limits: Limits) {
        self.direction = direction
        self.limits = limits
    }

    /// The stream offset just past the last byte.
    private var end: Int { base + bytes.count }

    /// Adds an event's payload.
    mutating func append(_ payload: Data, seq: Int64, afterChallenge: Bool) {
        guard !payload.isEmpty else { return }
        pieces.append(Piece(seq: seq, start: end, afterChallenge: afterChallenge))
        anyAfterChallenge = anyAfterChallenge || afterChallenge
        bytes.append(contentsOf: payload)
    }

    /// Scans every chunk that has its overlap after it, and lets go of the bytes no later chunk needs.
    mutating func scanChunks(_ detectors: [SecretDetector], firstSpeaker: Direction?) -> [Candidate] {
        var found: [Candidate] = []
        while end - scanned >= limits.chunk + limits.overlap {
            found += scan(upTo: scanned + limits.chunk, detectors, firstSpeaker: firstSpeaker, final: false)
        }
        return found
    }

    /// Scans what is left, once the session has no more events.
    mutating func scanRest(_ detectors: [SecretDetector], firstSpeaker: Direction?) -> [Candidate] {
        end > scanned ? scan(upTo: end, detectors, firstSpeaker: firstSpeaker, final: true) : []
    }

    private mutating func scan(
        upTo chunkEnd: Int,
        _ detectors: [SecretDetector],
        firstSpeaker: Direction?,
        final: Bool
    )
        -> [Candidate]
    {
        let windowStart = max(base, scanned - limits.lookbehind)
        let windowEnd = min(end, chunkEnd + limits.overlap)
        let window = Data(bytes[(windowStart - base)..<(windowEnd - base)])
        let text = BytePattern.text(window)
        // Matching starts at the chunk; the bytes before it are seen by `^`, `\b` and lookbehinds only.
        let range = NSRange(location: scanned - windowStart, length: windowEnd - scanned)
        var best: [Int: (kind: SecretKind, span: Range<Int>)] = [:]
        for detector in detectors where detector.applies(to: direction, firstSpeaker: firstSpeaker) {
            if detector.condition == .afterChallenge, !anyAfterChallenge { continue }
            guard detector.pattern.mayMatch(window) else { continue }
            for match in detector.pattern.scan(text, in: range).spans {
                let span = (windowStart + match.location)..<(windowStart + match.location + match.length)
                if isPlaceholder(span) { continue }
                if detector.condition == .afterChallenge, !piece(at: span.lowerBound).afterChallenge { continue }
                // A match the window's end cut short, after the chunk: the next chunk finds it whole.
                if !final, span.lowerBound >= chunkEnd, span.upperBound == windowEnd { continue }
                // Masked in every excerpt, even one it begins too late to be reported in.
                secrets.insert(span)
                guard span.lowerBound < chunkEnd else { continue }
                if let kept = best[span.lowerBound], kept.kind.specificity <= detector.kind.specificity { continue }
                best[span.lowerBound] = (detector.kind, span)
            }
        }
        scanned = chunkEnd
        defer { letGo(before: max(base, scanned - limits.lookbehind)) }
        guard !best.isEmpty else { return [] }
        // Masked once for the whole window: a stream of many secrets would otherwise mask them all for each.
        var masked = Array(window)
        for span in secrets where span.upperBound > windowStart && span.lowerBound < windowEnd {
            SecretFinding.mask(&masked, span: (span.lowerBound - windowStart)..<(span.upperBound - windowStart))
        }
        let candidates = best.map { start, found in
            let piece = piece(at: start)
            return Candidate(
                seq: piece.seq,
                offset: start - piece.start,
                kind: found.kind,
                excerpt: excerpt(of: found.span, masked: masked, from: windowStart)
            )
        }
        return candidates
    }

    /// Whether the recorder wrote this span: a redacted span is `*` bytes of the same length.
    private func isPlaceholder(_ span: Range<Int>) -> Bool {
        bytes[(span.lowerBound - base)..<(span.upperBound - base)].allSatisfy { $0 == UInt8(ascii: "*") }
    }

    /// The event the byte at `offset` came in: the last one starting at or before it.
    private func piece(at offset: Int) -> Piece {
        var low = 0
        var high = pieces.count
        while high - low > 1 {
            let middle = (low + high) / 2
            if pieces[middle].start <= offset { low = middle } else { high = middle }
        }
        return pieces[low]
    }

    /// The bytes around `secret`, every secret in them masked, escaped: cut from `masked`, the bytes of the
    /// window starting at stream offset `windowStart` with every secret masked.
    ///
    /// The secret keeps the ends its own length allows even inside a longer one (a key id inside a masked
    /// `Authorization` value): otherwise a finding inside another would show nothing but stars.
    private func excerpt(of secret: Range<Int>, masked: [UInt8], from windowStart: Int) -> String {
        let shownEnd = min(secret.upperBound, secret.lowerBound + SecretFinding.longestShownSpan)
        let from = max(windowStart, secret.lowerBound - SecretFinding.contextBytes)
        let shown = from..<min(windowStart + masked.count, shownEnd + SecretFinding.contextBytes)
        var excerpt = Array(masked[(shown.lowerBound - windowStart)..<(shown.upperBound - windowStart)])
        for position in secret.clamped(to: shown) where SecretFinding.reveals(position, of: secret) {
            excerpt[position - shown.lowerBound] = bytes[position - base]
        }
        return ByteExcerpt.render(excerpt)
    }

    /// Drops the bytes, events and secrets before `offset`.
    private mutating func letGo(before offset: Int) {
        guard offset > base else { return }
        bytes.removeFirst(offset - base)
        base = offset
        let firstKept = pieces.lastIndex { $0.start <= offset } ?? 0
        pieces.removeFirst(firstKept)
        secrets = secrets.filter { $0.upperBound > offset }
    }
}
