import Foundation
import NIOConcurrencyHelpers

/// One time a toxic acted: which toxic, on which connection, and where in the conversation.
public struct FiredToxic: Sendable, Hashable, Codable {
    /// The route.
    public var route: String
    /// The toxic's name.
    public var toxic: String
    /// The toxic's type, as Toxiproxy names it.
    public var type: String
    /// The stream it acted on: `upstream` or `downstream`.
    public var stream: String
    /// The connection's order on the route, counting from 1.
    public var session: Int
    /// On replay, the recorded session the connection was served from, when it was known.
    public var recordedSession: Int64?
    /// The client's address.
    public var client: String
    /// The exchange it acted in, counting from 1; 0 before the client first spoke.
    public var exchange: Int
    /// The byte offset in its stream where it began to act.
    public var offset: Int
    /// When it acted, in nanoseconds since 1970 (now, unless given).
    public var time: Int64

    /// Creates a record of a firing.
    public init(
        route: String,
        toxic: Toxic,
        session: Int,
        recordedSession: Int64? = nil,
        client: String,
        exchange: Int,
        offset: Int,
        time: Int64? = nil
    ) {
        self.route = route
        self.toxic = toxic.name
        self.type = toxic.kind.rawValue
        self.stream = toxic.stream.rawValue
        self.session = session
        self.recordedSession = recordedSession
        self.client = client
        self.exchange = exchange
        self.offset = offset
        self.time = time ?? WallClock.nowNanoseconds()
    }

    /// One line for logs and reports: `latency_downstream (latency, downstream) on session 3, exchange 2 at byte 100`.
    public var description: String {
        var text = "\(toxic) (\(type), \(stream)) on session \(session)"
        if let recordedSession { text += " (recorded session \(recordedSession))" }
        if exchange > 0 { text += ", exchange \(exchange)" }
        return text + " at byte \(offset)"
    }

    enum CodingKeys: String, CodingKey {
        case route, toxic, type, stream, session, client, exchange, offset, time
        case recordedSession = "recorded_session"
    }
}

/// Every toxic that fired in a deck's run, in order, for the replay report, the control API and tests.
///
/// Bounded: past ``limit`` firings only the count grows, so a toxic on a busy route cannot eat memory.
public final class FaultLog: Sendable {
    /// How many firings are kept.
    public static let limit = 10_000

    private let state = NIOLockedValueBox((fired: [FiredToxic](), total: 0))

    /// Creates an empty log.
    public init() {}

    /// Lists a firing.
    func append(_ fired: FiredToxic) {
        state.withLockedValue { state in
            state.total += 1
            if state.fired.count < Self.limit { state.fired.append(fired) }
        }
    }

    /// The firings kept, in order.
    public var fired: [FiredToxic] {
        state.withLockedValue(\.fired)
    }

    /// How many firings there were, kept or not.
    public var total: Int {
        state.withLockedValue(\.total)
    }
}
