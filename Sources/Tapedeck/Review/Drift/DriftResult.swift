import Foundation

/// What a drift check found for one recorded session.
public struct DriftResult: Sendable, Hashable, Codable {
    /// Whether the live upstream still answers as recorded.
    public enum Status: String, Sendable, Hashable, Codable {
        /// Every answer matched, rules applied, and the session ended as recorded.
        case unchanged
        /// An answer, or how the session ended, differs.
        case changed
        /// The session could not be re-issued: the upstream refused or reset it, or did not answer in time.
        case failed
    }

    /// The session's id in the tape.
    public var session: Int64
    /// Its route.
    public var route: String
    /// What the check found.
    public var status: Status
    /// For a changed or failed session: the exchange where it happened, from 1 (as `tapedeck diff` counts).
    public var exchange: Int?
    /// For a changed session: `upstream_to_client` when an answer differs, `end` when how it ended does.
    public var direction: String?
    /// For a changed answer: where the first differing byte is in the recorded answer of the exchange (the
    /// upstream's bytes of that exchange, from 0). The rules apply before comparing: a difference inside a volatile
    /// value is none, and one just after it is placed past the recorded value.
    public var offset: Int?
    /// For a changed session: the recorded bytes around the difference, rendered (or how the recording ended).
    public var recorded: String?
    /// For a changed session: the live bytes around the difference, rendered (or how the live session ended).
    public var live: String?
    /// For a changed answer: whether the differing bytes look volatile (a timestamp, an id, a digest), so that a
    /// rule, rather than a re-recording, may be what the tape needs.
    public var volatile: Bool?
    /// For a difference that looks volatile: what it looks like and the rule that would let it differ.
    public var hint: String?
    /// For a failed session: why.
    public var reason: String?

    /// A session the live upstream answered as recorded.
    public static func unchanged(session: Int64, route: String) -> DriftResult {
        DriftResult(session: session, route: route, status: .unchanged)
    }

    enum CodingKeys: String, CodingKey {
        case session, route, status, exchange, direction, offset, recorded, live, volatile, hint, reason
    }
}
