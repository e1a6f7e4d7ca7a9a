import Foundation
import GRDB

/// Which peer sent the bytes of an event, or whose connection an event is about.
///
/// Stored as a small integer (see the `directions` table); the `event_log` view shows the names.
public enum Direction: String, Sendable, Hashable, Codable, CaseIterable, DatabaseValueConvertible {
    /// From the client to the upstream: the client sent it, or the client's connection ended.
    case clientToUpstream = "client_to_upstream"
    /// From the upstream to the client: the upstream sent it, or the upstream's connection ended.
    case upstreamToClient = "upstream_to_client"

    /// The value stored in `events.direction`.
    var code: Int32 {
        switch self {
        case .clientToUpstream: return 0
        case .upstreamToClient: return 1
        }
    }

    /// The direction stored as `code`, or nil for a code no Tapedeck writes.
    init?(code: Int64) {
        guard let direction = Self.allCases.first(where: { Int64($0.code) == code }) else { return nil }
        self = direction
    }
}

/// What happened in one event of a session.
///
/// Stored as a small integer (see the `event_kinds` table); the `event_log` view shows the names.
public enum EventKind: String, Sendable, Hashable, Codable, CaseIterable, DatabaseValueConvertible {
    /// Bytes, exactly as one read returned them.
    case data
    /// The sender shut down its write half (FIN); the other direction may go on.
    case halfClose = "half_close"
    /// The side's connection closed in an orderly way.
    case close
    /// The side's connection was reset (RST).
    case reset
    /// The upstream connection could not be made; the payload holds the reason as text.
    case connectFailed = "connect_failed"
    /// A datagram to the upstream was refused: its host answered with ICMP port unreachable, as nothing
    /// listened there. UDP only; the payload holds the reason as text.
    case refused
    /// A toxic acted here (`--fault`, or the control API): what the session shows from this event on is what the
    /// client saw under it. The payload names the toxic, as text.
    case fault

    /// The value stored in `events.kind`.
    var code: Int32 {
        switch self {
        case .data: return 0
        case .halfClose: return 1
        case .close: return 2
        case .reset: return 3
        case .connectFailed: return 4
        case .refused: return 5
        case .fault: return 6
        }
    }

    /// The kind stored as `code`, or nil for a code no Tapedeck writes.
    init?(code: Int64) {
        guard let kind = Self.allCases.first(where: { Int64($0.code) == code }) else { return nil }
        self = kind
    }
}

/// How a session ended.
public enum SessionOutcome: String, Sendable, Hashable, Codable, CaseIterable, DatabaseValueConvertible {
    /// Both sides closed in an orderly way.
    case closed
    /// The client reset the connection.
    case resetByClient = "reset_by_client"
    /// The upstream reset the connection.
    case resetByUpstream = "reset_by_upstream"
    /// The upstream refused the connection.
    case upstreamRefused = "upstream_refused"
    /// The upstream did not accept the connection within the connect timeout.
    case connectTimeout = "connect_timeout"
    /// The upstream could not be reached for another reason (unreachable, name not resolved).
    case connectFailed = "connect_failed"
    /// The session was still open when the recorder shut down and was cut off.
    case interrupted
    /// The session has no recorded end: it is still being recorded, or the recorder crashed.
    case incomplete
    /// The client opened the connection and closed it without a byte either way: a readiness probe such as
    /// `nc -z` or a health check. Listed only on request, and never required to be replayed.
    case probe
    /// The TLS handshake with the client or the upstream failed: an upstream certificate that did not verify, a
    /// client that did not trust the certificate served, or a client that did not speak TLS on a TLS route.
    case tlsFailed = "tls_failed"
}

/// One recording run: a `tapedeck record` invocation.
public struct RunRecord: Sendable, Hashable, Codable, FetchableRecord, PersistableRecord {
    /// The table holding these rows.
    public static let databaseTableName = "runs"
    /// The run's row id.
    public var id: Int64?
    /// Wall-clock start, nanoseconds since 1970.
    public var startedAt: Int64
    /// Wall-clock end, nanoseconds since 1970; nil while running or after a crash.
    public var endedAt: Int64?
    /// The Tapedeck version that recorded the run.
    public var toolVersion: String
    /// `record`, or `replay` for sessions recorded by replay's record-missing mode.
    public var mode: String
    /// The user's `--label`, if any.
    public var label: String?

    enum CodingKeys: String, CodingKey {
        case id, mode, label
        case startedAt = "started_at"
        case endedAt = "ended_at"
        case toolVersion = "tool_version"
    }
}

/// A route as it was configured for a run.
public struct RouteRecord: Sendable, Hashable, Codable, FetchableRecord, PersistableRecord {
    /// The table holding these rows.
    public static let databaseTableName = "routes"
    /// The route's row id.
    public var id: Int64?
    /// The run that served it.
    public var runID: Int64
    /// The route's name.
    public var name: String
    /// The address the listener was bound to (the configured one until it is bound, and in tapes recorded
    /// before Tapedeck stored the bound one).
    public var listen: String
    /// The configured upstream address.
    public var upstream: String
    /// Whether the route carried DNS, so that replay matches queries by their question (false in tapes from
    /// before format 4).
    public var dns: Bool = false
    /// The protocol lens the route was recorded with (`auto` in tapes from before format 5); see ``ProtocolLens``.
    public var protocolName: String = ProtocolLens.auto.rawValue

    enum CodingKeys: String, CodingKey {
        case id, name, listen, upstream, dns
        case protocolName = "protocol"
        case runID = "run_id"
    }
}

extension RouteRecord {
    /// Decodes a row, reading `dns` as false where a tape from before format 4 has no such column, and
    /// `protocol` as `auto` before format 5.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decodeIfPresent(Int64.self, forKey: .id)
        runID = try container.decode(Int64.self, forKey: .runID)
        name = try container.decode(String.self, forKey: .name)
        listen = try container.decode(String.self, forKey: .listen)
        upstream = try container.decode(String.self, forKey: .upstream)
        dns = try container.decodeIfPresent(Bool.self, forKey: .dns) ?? false
        protocolName = try container.decodeIfPresent(String.self, forKey: .protocolName) ?? ProtocolLens.auto.rawValue
    }

    /// Whether the route listened for datagrams (its listen address is `udp:…`).
    public var isDatagram: Bool {
        listen.hasPrefix(Endpoint.udpPrefix)
    }
}

/// One accepted client connection and what became of it.
public struct SessionRecord: Sendable, Hashable, Codable, FetchableRecord, PersistableRecord {
    /// The table holding these rows.
    public static let databaseTableName = "sessions"
    /// The session's id, unique within the tape.
    public var id: Int64?
    /// The run that recorded it.
    public var runID: Int64
    /// The route's row id.
    public var routeID: Int64
    /// The route's name.
    public var route: String
    /// The client's address as the listener saw it.
    public var clientAddress: String
    /// The upstream address connected to (or attempted).
    public var upstreamAddress: String
    /// Wall-clock start, nanoseconds since 1970.
    public var startedAt: Int64
    /// Wall-clock end, nanoseconds since 1970; nil if the session never ended on tape.
    public var endedAt: Int64?
    /// Monotonic duration from accept to the end of both connections.
    public var durationNanoseconds: Int64?
    /// How the session ended.
    public var outcome: SessionOutcome
    /// Bytes the client sent.
    public var clientBytes: Int64
    /// Bytes the upstream sent.
    public var upstreamBytes: Int64
    /// Events recorded for the session.
    public var eventCount: Int64
    /// Datagrams of a UDP flow dropped because the socket they were for could not take them (0 for streams,
    /// and in tapes from before format 4).
    public var droppedDatagrams: Int64 = 0

    enum CodingKeys: String, CodingKey {
        case id, route, outcome
        case droppedDatagrams = "dropped_datagrams"
        case runID = "run_id"
        case routeID = "route_id"
        case clientAddress = "client_address"
        case upstreamAddress = "upstream_address"
        case startedAt = "started_at"
        case endedAt = "ended_at"
        case durationNanoseconds = "duration_ns"
        case clientBytes = "client_bytes"
        case upstreamBytes = "upstream_bytes"
        case eventCount = "event_count"
    }
}

extension SessionRecord {
    /// Decodes a row, reading `dropped_datagrams` as 0 where a tape from before format 4 has no such column.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decodeIfPresent(Int64.self, forKey: .id)
        runID = try container.decode(Int64.self, forKey: .runID)
        routeID = try container.decode(Int64.self, forKey: .routeID)
        route = try container.decode(String.self, forKey: .route)
        clientAddress = try container.decode(String.self, forKey: .clientAddress)
        upstreamAddress = try container.decode(String.self, forKey: .upstreamAddress)
        startedAt = try container.decode(Int64.self, forKey: .startedAt)
        endedAt = try container.decodeIfPresent(Int64.self, forKey: .endedAt)
        durationNanoseconds = try container.decodeIfPresent(Int64.self, forKey: .durationNanoseconds)
        outcome = try container.decode(SessionOutcome.self, forKey: .outcome)
        clientBytes = try container.decode(Int64.self, forKey: .clientBytes)
        upstreamBytes = try container.decode(Int64.self, forKey: .upstreamBytes)
        eventCount = try container.decode(Int64.self, forKey: .eventCount)
        droppedDatagrams = try container.decodeIfPresent(Int64.self, forKey: .droppedDatagrams) ?? 0
    }
}

/// One event of a session, in order.
///
/// Read from the `events` table with ``selectSQL``, codes and all: an event whose direction or kind is a code no
/// Tapedeck writes makes the read fail, rather than vanish from a join with the names.
public struct EventRecord: Sendable, Hashable, Codable, FetchableRecord {
    /// The one column list every reader of events selects, followed by its own `WHERE` and `ORDER BY`.
    static let selectSQL = "SELECT session_id, seq, offset_ns, direction, kind, payload FROM events"

    /// The table holding these rows.
    public static let databaseTableName = "events"
    /// The session the event belongs to.
    public var sessionID: Int64
    /// The event's position in its session, from 0.
    public var seq: Int64
    /// Monotonic time since the session started, in nanoseconds.
    public var offsetNanoseconds: Int64
    /// Who sent it, or whose connection it is about.
    public var direction: Direction
    /// What happened.
    public var kind: EventKind
    /// The bytes of a `data` event, the reason of a `connectFailed` one; nil otherwise.
    public var payload: Data?

    enum CodingKeys: String, CodingKey {
        case seq, direction, kind, payload
        case sessionID = "session_id"
        case offsetNanoseconds = "offset_ns"
    }

    /// Creates an event from its parts.
    public init(
        sessionID: Int64,
        seq: Int64,
        offsetNanoseconds: Int64,
        direction: Direction,
        kind: EventKind,
        payload: Data?
    ) {
        self.sessionID = sessionID
        self.seq = seq
        self.offsetNanoseconds = offsetNanoseconds
        self.direction = direction
        self.kind = kind
        self.payload = payload
    }

    /// Decodes a row of ``selectSQL``.
    ///
    /// - Throws: ``TapeContentError`` for a missing value or an unknown direction or kind code.
    public init(row: Row) throws {
        let sessionID = try row.decode(Int64.self, forColumn: "session_id")
        let seq = try row.decode(Int64.self, forColumn: "seq")
        let (direction, kind) = try Self.codes(
            direction: try row.decode(Int64.self, forColumn: "direction"),
            kind: try row.decode(Int64.self, forColumn: "kind"),
            sessionID: sessionID,
            seq: seq
        )
        self.init(
            sessionID: sessionID,
            seq: seq,
            offsetNanoseconds: try row.decode(Int64.self, forColumn: "offset_ns"),
            direction: direction,
            kind: kind,
            payload: try row.decode(Data?.self, forColumn: "payload")
        )
    }
}

extension EventRecord {
    /// The direction and kind an event's codes stand for.
    ///
    /// - Throws: ``TapeContentError`` for a code no Tapedeck writes.
    static func codes(
        direction directionCode: Int64,
        kind kindCode: Int64,
        sessionID: Int64,
        seq: Int64
    ) throws
        -> (Direction, EventKind)
    {
        guard let direction = Direction(code: directionCode) else {
            throw TapeContentError("session \(sessionID) event \(seq) has an unknown direction code \(directionCode)")
        }
        guard let kind = EventKind(code: kindCode) else {
            throw TapeContentError("session \(sessionID) event \(seq) has an unknown kind code \(kindCode)")
        }
        return (direction, kind)
    }
}

/// A tape whose contents no Tapedeck would write: a value out of range, missing, or of an unknown kind.
///
/// Readers treat a tape as untrusted input; this becomes the reason of a one-line ``TapedeckError``.
public struct TapeContentError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, without the tape's name.
    public var description: String

    /// Creates the error with its one-line reason.
    public init(_ description: String) {
        self.description = description
    }
}
