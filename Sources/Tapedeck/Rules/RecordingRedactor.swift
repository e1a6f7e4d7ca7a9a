import Foundation
import NIOCore

/// Keeps the redacted spans of one direction of a session from reaching the tape: each data event's payload is
/// written with a placeholder (`*`, as many as the span's bytes) in place of every span, so offsets and length
/// prefixes stay valid. The live traffic is untouched: this sees copies of what the relay forwards.
///
/// A span a read splits is still found: an event whose bytes may begin a span that the next read completes is
/// held, with every later event of the direction, until the span is settled or the direction ends. Held
/// events keep the sequence numbers and times they were given, so the tape reads as if nothing was held.
struct RecordingRedactor {
    /// A data event of the direction.
    struct Event {
        var seq: Int64
        var offset: Int64
        var payload: ByteBuffer
        /// The redacted spans of this payload: where they start in it, how long, and which rule made them.
        var redactions: [Redaction] = []
    }

    /// One redacted stretch of one event.
    struct Redaction: Sendable, Hashable {
        var start: Int
        var length: Int
        var rule: Int
    }

    /// The byte written in place of each redacted byte.
    static let placeholder = UInt8(ascii: "*")

    let rules: CompiledRules
    private var held: [Event] = []
    private var heldBytes = Data()
    private var context = Data()

    /// - Parameter rules: The route's redact rules for this direction.
    init(rules: CompiledRules) {
        self.rules = rules
    }

    /// A whole session's data events as a recorder would have written them, by sequence number: each direction
    /// redacted with its rules (none when they are empty), its held events released when it ends (an event of
    /// another kind) or the session does. Events other than data are not in the result.
    static func redact(_ events: [EventRecord], client: CompiledRules, upstream: CompiledRules) -> [Int64: Event] {
        var redactors = (
            client: client.isEmpty ? nil : RecordingRedactor(rules: client),
            upstream: upstream.isEmpty ? nil : RecordingRedactor(rules: upstream)
        )
        var redacted: [Int64: Event] = [:]
        func keep(_ released: [Event]?) {
            for event in released ?? [] { redacted[event.seq] = event }
        }
        for event in events {
            let fed = Event(
                seq: event.seq,
                offset: event.offsetNanoseconds,
                payload: ByteBuffer(bytes: event.payload ?? Data())
            )
            switch (event.direction, event.kind) {
            case (.clientToUpstream, .data): keep(redactors.client?.feed(fed))
            case (.upstreamToClient, .data): keep(redactors.upstream?.feed(fed))
            case (.clientToUpstream, _): keep(redactors.client?.finish())
            case (.upstreamToClient, _): keep(redactors.upstream?.finish())
            }
        }
        keep(redactors.client?.finish())
        keep(redactors.upstream?.finish())
        return redacted
    }

    /// The next data event: returns the events that can be written now, redacted, in order.
    mutating func feed(_ event: Event) -> [Event] {
        if held.isEmpty {
            let mayMatch = event.payload.withUnsafeReadableBytes { rules.mayMatch($0) }
            guard mayMatch else {
                remember(event.payload)
                return [event]
            }
        }
        held.append(event)
        heldBytes.append(contentsOf: event.payload.readableBytesView)
        return release(final: false)
    }

    /// The direction ended (or the session did): write everything held.
    mutating func finish() -> [Event] {
        held.isEmpty ? [] : release(final: true)
    }

    private mutating func release(final: Bool) -> [Event] {
        var (spans, hold) = rules.spans(in: heldBytes, context: context, final: final)
        // Only whole events are written: the one the hold falls in waits, and so does one a span ends in.
        var ends: [Int] = []
        var total = 0
        for event in held {
            total += event.payload.readableBytes
            ends.append(total)
        }
        var releasedEvents = ends.firstIndex { $0 > hold } ?? held.count
        while releasedEvents > 0 {
            let boundary = ends[releasedEvents - 1]
            // A match the boundary would cut could not be found again once its first part is written.
            guard
                let crossing = spans.first(where: { $0.match.lowerBound < boundary && $0.match.upperBound > boundary })
            else { break }
            releasedEvents = ends.firstIndex { $0 > crossing.match.lowerBound } ?? 0
        }
        guard releasedEvents > 0 else { return [] }
        let boundary = ends[releasedEvents - 1]
        spans.removeAll { $0.range.lowerBound >= boundary }
        var released: [Event] = []
        var start = 0
        for index in 0..<releasedEvents {
            var event = held[index]
            let end = ends[index]
            for span in spans where span.range.lowerBound < end && span.range.upperBound > start {
                guard case .redact(let rule) = span.meaning else { continue }
                let from = max(span.range.lowerBound, start) - start
                let to = min(span.range.upperBound, end) - start
                event.redactions.append(Redaction(start: from, length: to - from, rule: rule))
            }
            if !event.redactions.isEmpty {
                // A copy: the original buffer is the one the relay forwards.
                var copy = ByteBuffer(bytes: event.payload.readableBytesView)
                for redaction in event.redactions {
                    copy.setRepeatingByte(Self.placeholder, count: redaction.length, at: redaction.start)
                }
                event.payload = copy
            }
            released.append(event)
            start = end
        }
        let releasedRaw = heldBytes.prefix(boundary)
        context.append(releasedRaw.suffix(StreamNormalizer.contextLength))
        if context.count > StreamNormalizer.contextLength {
            context = Data(context.suffix(StreamNormalizer.contextLength))
        }
        held.removeFirst(releasedEvents)
        heldBytes = Data(heldBytes.dropFirst(boundary))
        return released
    }

    private mutating func remember(_ payload: ByteBuffer) {
        let tail = payload.readableBytesView.suffix(StreamNormalizer.contextLength)
        context.append(contentsOf: tail)
        if context.count > StreamNormalizer.contextLength {
            context = Data(context.suffix(StreamNormalizer.contextLength))
        }
    }
}
