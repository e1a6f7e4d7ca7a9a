import Foundation

/// Decides when a live upstream has finished answering one exchange of a drift check, and whether the answer
/// matches the recorded one: a channel-free state machine fed with the bytes as they arrive.
///
/// A stream has no message boundaries, so the answer is judged by its bytes. It is complete, and judged, once as
/// many bytes arrived as were recorded (the common case: matched at once, with no waiting), or once the upstream
/// ended. An answer whose bytes already differ from the recording's, or ran past its length, waits only for a
/// quiet moment (more bytes may still be on their way, and the excerpt should hold them). An answer that is a
/// strict start of the recorded one waits for the rest until the exchange's time runs out.
///
/// The comparison applies the route's rules, as replay does: volatile and redacted spans are replaced by tokens on
/// both sides, so a timestamp that changed is no drift. The raw bytes are compared as they arrive, and the rules
/// run only when the answer may be complete, so judging an answer is linear in its size.
struct DriftAnswer: Sendable {
    /// The judgement of a complete answer.
    enum Verdict: Sendable, Equatable {
        /// The answer equals the recorded one, rules applied.
        case matches
        /// The answer differs: `offset` is the first differing byte of the normalized answers.
        case differs(offset: Int)
        /// Nothing arrived at all before the time ran out.
        case silent
    }

    /// What the driver does next.
    enum Next: Sendable, Equatable {
        /// Read on; the answer is not complete yet.
        case keepReading
        /// The answer differs or ran long: judge it once no byte has arrived for a quiet moment.
        case awaitQuiet
        /// The answer is complete.
        case done(Verdict)
    }

    /// The recorded answer, raw.
    let recorded: Data
    /// The rules to compare with.
    let rules: CompiledRules
    /// What has arrived so far.
    private(set) var received = Data()
    /// How many received bytes equal the recorded ones, from the start.
    private var agreed = 0

    init(recorded: Data, rules: CompiledRules) {
        self.recorded = recorded
        self.rules = rules
    }

    /// The answer as the rules see it: the recorded one.
    var normalizedRecorded: Data { normalize(recorded) }
    /// The answer as the rules see it: what arrived.
    var normalizedReceived: Data { normalize(received) }

    /// Judges at once: an exchange whose recorded answer is empty is complete before anything arrives.
    func start() -> Next {
        recorded.isEmpty ? .done(.matches) : .keepReading
    }

    /// Bytes arrived from the upstream.
    mutating func receive(_ bytes: Data) -> Next {
        received.append(bytes)
        if agreed == received.count - bytes.count {
            let start = recorded.startIndex + agreed
            let end = min(recorded.endIndex, start + bytes.count)
            agreed += zip(recorded[start..<end], bytes).prefix { $0 == $1 }.count
        }
        if received.count >= recorded.count {
            return judge() == .matches ? .done(.matches) : .awaitQuiet
        }
        // Raw bytes that differ may be a volatile value of another length, which the rules would accept once the
        // rest arrives; a quiet moment then decides.
        return agreed < received.count ? .awaitQuiet : .keepReading
    }

    /// The upstream ended its stream (or the connection): whatever arrived is the answer.
    func upstreamEnded() -> Next {
        .done(judge())
    }

    /// No byte arrived for a quiet moment while the answer differed or ran long.
    func quietElapsed() -> Next {
        .done(judge())
    }

    /// The exchange's time ran out.
    func timedOut() -> Next {
        received.isEmpty && !recorded.isEmpty ? .done(.silent) : .done(judge())
    }

    /// Where the byte at `offset` of the normalized recorded answer stands in the raw one, as a user finds it in
    /// `tapedeck show`: a byte of a rule's token stands at the start of the span it replaced.
    func rawRecordedOffset(_ offset: Int) -> Int {
        guard !rules.isEmpty else { return offset }
        var shift = 0
        for replacement in StreamNormalizer.normalize(recorded, rules: rules).replacements {
            if offset < replacement.normalized.lowerBound { break }
            if offset < replacement.normalized.upperBound { return replacement.raw.lowerBound }
            shift += replacement.raw.count - replacement.normalized.count
        }
        return offset + shift
    }

    private func judge() -> Verdict {
        if received == recorded { return .matches }
        let live = normalize(received)
        let expected = normalize(recorded)
        guard let offset = MismatchHint.firstDifference(expected, live) else { return .matches }
        return .differs(offset: offset)
    }

    private func normalize(_ bytes: Data) -> Data {
        rules.isEmpty ? bytes : StreamNormalizer.normalize(bytes, rules: rules).bytes
    }
}
