import Foundation

/// One piece of a tape's content, in the order ``Tape/forEachContentRecord(_:)`` reads them and
/// ``TapeImport`` writes them: what the text form of a tape holds (`export --format text`, `import`).
///
/// Content is every row of every table but the format's own bookkeeping: runs, routes, rules, sessions with their
/// TLS, events with their redactions. Two tapes with equal records hold the same content.
public enum TapeContentRecord: Sendable, Hashable {
    /// A recording run.
    case run(RunRecord)
    /// A route of a run.
    case route(RouteRecord)
    /// A rule stored with a run's route.
    case rule(RuleRow)
    /// A session, with how it spoke TLS when it did; its events' times and its events follow.
    case session(SessionRecord, tls: SessionTLSRecord?)
    /// The times of the session's events (nanoseconds since it started), in order, before the events themselves:
    /// the text form keeps timing apart from bytes, so that a re-recording whose bytes did not change differs
    /// only in its times. The events carry the same times; an import takes them from there.
    case times(session: Int64, offsets: [Int64])
    /// An event of the session before it, with the spans a redaction rule replaced in it.
    case event(EventRecord, redactions: [RedactionRecord])
}

/// A row of the `rules` table as it is stored: the rule and where it stands in its route's list.
public struct RuleRow: Sendable, Hashable {
    /// The rule's id.
    public var id: Int64
    /// The run it was recorded with.
    public var runID: Int64
    /// The route it belongs to, by name.
    public var route: String
    /// Its place in the route's list, from 0.
    public var position: Int64
    /// `volatile` or `redact`.
    public var kind: String
    /// The regular expression.
    public var pattern: String
    /// `both`, `client` or `upstream`.
    public var scope: String
    /// The secret it names, if any.
    public var secret: String?
    /// The preset it came from, if any.
    public var preset: String?

    /// A rule row from its columns.
    public init(
        id: Int64,
        runID: Int64,
        route: String,
        position: Int64,
        kind: String,
        pattern: String,
        scope: String,
        secret: String?,
        preset: String?
    ) {
        self.id = id
        self.runID = runID
        self.route = route
        self.position = position
        self.kind = kind
        self.pattern = pattern
        self.scope = scope
        self.secret = secret
        self.preset = preset
    }
}
