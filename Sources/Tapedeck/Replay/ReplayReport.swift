import Foundation

/// What a replay did: which sessions were replayed, which connections matched nothing, which sessions were
/// never asked for. Written as JSON by `--report FILE`; field names are stable.
public struct ReplayReport: Sendable, Codable, Hashable {
    /// A connection that was served without a mismatch: a recorded session from start to end, or recorded
    /// exchanges regrouped from several sessions.
    public struct Replayed: Sendable, Codable, Hashable {
        /// The route the connection came in on.
        public var route: String
        /// The recorded session it was served (the last one, when its exchanges were regrouped).
        public var session: Int64
        /// The client's address.
        public var client: String
    }

    /// A connection whose client said something no recorded session heard.
    public struct Mismatch: Sendable, Codable, Hashable, CustomStringConvertible {
        /// The route the connection came in on.
        public var route: String
        /// The client's address.
        public var client: String
        /// The recorded session that matched longest, if any.
        public var closestSession: Int64?
        /// Offset in the client's byte stream of the first byte that differed.
        public var offset: Int
        /// The recorded bytes around that offset, rendered (text as text, other bytes escaped).
        public var expected: String
        /// The bytes the client sent around that offset, rendered the same way.
        public var actual: String
        /// Why the connection left the tape.
        public var reason: String

        /// What the differing bytes look like and a rule that would let them differ, when they look like
        /// something (a UUID, a timestamp, a digest): `the differing bytes look like a UUID: --preset uuid, or
        /// --volatile 'X-Request-Id: ([0-9a-f-]{36})'`. Worked out from the excerpts, so a report read back has it
        /// too.
        public var hint: String? {
            MismatchHint(
                expected: ByteExcerpt.bytes(rendered: expected),
                actual: ByteExcerpt.bytes(rendered: actual)
            )?.description
        }

        enum CodingKeys: String, CodingKey {
            case route, client, offset, expected, actual, reason
            case closestSession = "closest_session"
        }

        /// Written, never read: reading works it out again.
        private enum HintCodingKeys: String, CodingKey {
            case hint
        }

        /// Writes the fields, and the hint when there is one.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(route, forKey: .route)
            try container.encode(client, forKey: .client)
            try container.encodeIfPresent(closestSession, forKey: .closestSession)
            try container.encode(offset, forKey: .offset)
            try container.encode(expected, forKey: .expected)
            try container.encode(actual, forKey: .actual)
            try container.encode(reason, forKey: .reason)
            var hintContainer = encoder.container(keyedBy: HintCodingKeys.self)
            try hintContainer.encodeIfPresent(hint, forKey: .hint)
        }

        /// The mismatch on one line, and its hint on a second when there is one.
        public var description: String {
            hint.map { "\(line)\n  hint: \($0)" } ?? line
        }

        /// The mismatch on one line, without its hint.
        var line: String {
            let closest = closestSession.map { "closest session \($0)" } ?? "no session"
            return
                "\(reason) (route '\(route)', client \(client), \(closest), byte \(offset)): expected \"\(expected)\", got \"\(actual)\""
        }
    }

    /// A connection no recorded session matched, relayed to the real upstream and recorded as a new session.
    public struct Recorded: Sendable, Codable, Hashable {
        /// The route the connection came in on.
        public var route: String
        /// The client's address.
        public var client: String
        /// Why the tape had no session for it.
        public var reason: String
    }

    /// A recorded session no connection was served.
    public struct Unused: Sendable, Codable, Hashable {
        /// The session's route.
        public var route: String
        /// The session's id.
        public var session: Int64
    }

    /// A recorded session played in part: a client left out an exchange it made when recording.
    public struct Incomplete: Sendable, Codable, Hashable, CustomStringConvertible {
        /// The session's route.
        public var route: String
        /// The session's id.
        public var session: Int64
        /// Offset in the recorded client's byte stream of the first exchange no connection played.
        public var offset: Int

        public var description: String {
            "session \(session) of route '\(route)' was replayed in part: its exchange at byte \(offset) never was"
        }
    }

    /// A session older than `--max-age`, and what became of it.
    public struct Expired: Sendable, Hashable, Codable, CustomStringConvertible {
        /// What became of an expired session.
        public enum Status: String, Sendable, Hashable, Codable {
            /// Warned about (`--on-expired warn`).
            case expired
            /// A failure of the replay (`--on-expired fail`).
            case failed
            /// Re-issued to the upstream, which answered as recorded: the events kept, the time new.
            case refreshed
            /// Re-issued to the upstream, which answered otherwise: re-recorded in place.
            case rerecorded
            /// Could not be re-issued (the upstream refused, reset or was silent): replayed as recorded.
            case unchecked
        }

        /// The session's route.
        public var route: String
        /// The session's id in the tape.
        public var session: Int64
        /// How long ago it was recorded, in whole seconds, when the replay started.
        public var ageSeconds: Int64
        /// What became of it.
        public var status: Status

        enum CodingKeys: String, CodingKey {
            case route, session, status
            case ageSeconds = "age_s"
        }

        /// The line a failure lists: `session 5 of route 'default' was recorded 40d ago, beyond --max-age`.
        public var description: String {
            "session \(session) of route '\(route)' was recorded \(InspectFormat.age(seconds: ageSeconds)) ago, "
                + "beyond --max-age"
        }
    }

    /// Connections accepted.
    public var connections: Int = 0
    /// Connections that opened and closed without a byte either way (readiness probes): neither replays nor
    /// mismatches.
    public var probes: Int = 0
    /// Connections served a session without a difference.
    public var replayed: [Replayed] = []
    /// Connections that diverged from the tape.
    public var mismatches: [Mismatch] = []
    /// Sessions never replayed: with an exchange no connection played.
    public var unused: [Unused] = []
    /// Connections recorded as new sessions (`--record-missing`).
    public var recorded: [Recorded] = []
    /// Sessions replayed in part; a failure like a mismatch.
    public var incomplete: [Incomplete] = []
    /// Times a connection went on in a recorded exchange of another session, or another exchange of its own,
    /// than the one its session had next: a connection pool grouping the same exchanges differently.
    public var regroupedExchanges: Int = 0
    /// Connections a toxic cut (`--fault`, or the control API): the session each followed went back for the next
    /// connection, and counts as neither unused nor mismatched.
    public var cut: [Replayed] = []
    /// Every toxic that fired, in order.
    public var faults: [FiredToxic] = []
    /// Sessions older than `--max-age`, and what became of each; those with status `failed` fail the replay.
    public var expired: [Expired] = []

    enum CodingKeys: String, CodingKey {
        case connections, probes, replayed, mismatches, unused, recorded, incomplete, cut, faults, expired
        case regroupedExchanges = "regrouped_exchanges"
    }

    /// Creates an empty report.
    public init() {}

    /// Reads a report, also one written before `regrouped_exchanges`, `cut`, `faults` or `expired` existed.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        connections = try container.decode(Int.self, forKey: .connections)
        probes = try container.decodeIfPresent(Int.self, forKey: .probes) ?? 0
        replayed = try container.decode([Replayed].self, forKey: .replayed)
        mismatches = try container.decode([Mismatch].self, forKey: .mismatches)
        unused = try container.decode([Unused].self, forKey: .unused)
        recorded = try container.decodeIfPresent([Recorded].self, forKey: .recorded) ?? []
        incomplete = try container.decodeIfPresent([Incomplete].self, forKey: .incomplete) ?? []
        regroupedExchanges = try container.decodeIfPresent(Int.self, forKey: .regroupedExchanges) ?? 0
        cut = try container.decodeIfPresent([Replayed].self, forKey: .cut) ?? []
        faults = try container.decodeIfPresent([FiredToxic].self, forKey: .faults) ?? []
        expired = try container.decodeIfPresent([Expired].self, forKey: .expired) ?? []
    }

    /// The one-line summary printed at shutdown.
    public var summary: String {
        "replay: \(counted(connections, "connection")), \(counted(replayed.count, "session")) replayed, "
            + "\(mismatches.count) mismatched, \(unused.count) unused"
            + (probes == 0 ? "" : ", \(counted(probes, "probe"))")
            + (incomplete.isEmpty ? "" : ", \(incomplete.count) replayed in part")
            + (recorded.isEmpty ? "" : ", \(recorded.count) recorded")
            + (regroupedExchanges == 0 ? "" : ", \(counted(regroupedExchanges, "exchange")) regrouped")
            + (faults.isEmpty ? "" : ", \(counted(faults.count, "toxic")) fired")
            + (cut.isEmpty ? "" : ", \(counted(cut.count, "connection")) cut by toxics")
            + (expired.isEmpty ? "" : ", \(expired.count) expired")
    }

    private func counted(_ count: Int, _ noun: String) -> String {
        "\(count) \(noun)\(count == 1 ? "" : "s")"
    }

    /// What makes this replay a failure, one each: every mismatch (on one line, with its hint on a second when
    /// there is one), and with `requireAll` every session never replayed. Empty when the replay went as recorded.
    public func failures(requireAll: Bool = false) -> [String] {
        problems(requireAll: requireAll, mismatch: \.description)
    }

    private func problems(requireAll: Bool, mismatch: (Mismatch) -> String) -> [String] {
        var lines =
            mismatches.map(mismatch) + incomplete.map(\.description)
            + expired.filter { $0.status == .failed }.map(\.description)
        if requireAll {
            lines += unused.map { "session \($0.session) of route '\($0.route)' was never replayed" }
        }
        return lines
    }

    /// Throws when the replay did not go as recorded: a connection mismatched or found no session, or, with
    /// `requireAll`, a recorded session was never replayed.
    ///
    /// ```swift
    /// let outcome = try await deck.stop()
    /// try outcome.replay?.verify(requireAll: true)
    /// ```
    ///
    /// - Throws: ``TapedeckError`` with code `replayMismatch`, whose message lists the problems on one line.
    public func verify(requireAll: Bool = false) throws {
        // One line: a mismatch's hint goes in parentheses after it.
        let failures = problems(requireAll: requireAll) { mismatch in
            mismatch.hint.map { "\(mismatch.line) (hint: \($0))" } ?? mismatch.line
        }
        guard !failures.isEmpty else { return }
        var counts: [String] = []
        if !mismatches.isEmpty {
            counts.append("\(mismatches.count) mismatched connection\(mismatches.count == 1 ? "" : "s")")
        }
        if !incomplete.isEmpty {
            counts.append("\(incomplete.count) session\(incomplete.count == 1 ? "" : "s") replayed in part")
        }
        if requireAll, !unused.isEmpty {
            counts.append("\(unused.count) unused session\(unused.count == 1 ? "" : "s")")
        }
        let failedExpired = expired.count(where: { $0.status == .failed })
        if failedExpired > 0 {
            counts.append("\(failedExpired) expired session\(failedExpired == 1 ? "" : "s")")
        }
        throw TapedeckError(
            .replayMismatch,
            "replay found \(counts.joined(separator: " and ")): " + failures.joined(separator: "; ")
        )
    }

    /// Writes the report as JSON to `path` (what `--report` writes).
    ///
    /// The report holds payload excerpts, so it is written like an export: a new file, owner-only (0600),
    /// renamed into place once complete; a symbolic link at `path` is refused unless `followingSymlink`.
    ///
    /// - Throws: ``TapedeckError`` with code `outputUnwritable`, one line naming the path.
    public func write(toPath path: String, followingSymlink: Bool = false) throws {
        try OutputFile.write(try json(), to: path, followingSymlink: followingSymlink)
    }

    /// The report as pretty-printed JSON.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
