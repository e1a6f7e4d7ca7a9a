import Foundation

/// One session as a drift check re-issued it: what it found, and the live conversation, for `--record`.
struct DriftLiveSession: Sendable {
    /// What the check found.
    var result: DriftResult
    /// When the live session started, in nanoseconds since the epoch.
    var startedAt: Int64
    /// How long it lasted, in nanoseconds.
    var durationNanoseconds: Int64 = 0
    /// How it ended, as a recording would say.
    var outcome: SessionOutcome = .closed
    /// Its events as a recorder would have kept them, numbered from 0.
    var events: [EventRecord] = []
    /// The upstream it spoke to.
    var upstream: String

    /// Appends an event at `offset` nanoseconds since the start.
    mutating func append(_ direction: Direction, _ kind: EventKind, _ payload: Data? = nil, at offset: Int64) {
        events.append(
            EventRecord(
                sessionID: result.session,
                seq: Int64(events.count),
                offsetNanoseconds: offset,
                direction: direction,
                kind: kind,
                payload: payload
            )
        )
    }

    /// This session as it stands in place of its recording: with `events` (the live ones, redacted) when its
    /// conversation is to replace the recorded one, nil to keep the recorded events.
    func rerecording(events: [(event: EventRecord, redactions: [RedactionRecord])]?) -> SessionRerecording {
        SessionRerecording(
            session: result.session,
            startedAt: startedAt,
            durationNanoseconds: durationNanoseconds,
            outcome: outcome,
            upstreamAddress: upstream,
            events: events
        )
    }
}
