import Foundation
import NIOCore

/// Sessions recorded too long ago (`--max-age`), and what a replay does about them (`--on-expired`).
///
/// A fixture says what a service said when it was recorded. Replay finds the sessions older than `maxAge` before
/// it serves, and either warns about them, counts them as failures of the replay (so `--strict` exits 3), or
/// re-records them in place from the upstream: each is re-issued as `tapedeck drift` does, a session that did not
/// change keeps its events byte for byte and gets a new time, and one that changed gets the live conversation.
public struct TapeExpiry: Sendable, Hashable {
    /// What replay does about expired sessions.
    public enum Action: String, Sendable, Hashable, CaseIterable {
        /// Warn, naming them.
        case warn
        /// Count each as a failure of the replay: a strict replay exits 3.
        case fail
        /// Re-record them in place from the route's upstream before serving.
        case record
    }

    /// How old a session may be.
    public var maxAge: Duration
    /// What to do about older ones.
    public var action: Action

    /// Creates an expiry policy.
    public init(maxAge: Duration, action: Action = .warn) {
        self.maxAge = maxAge
        self.action = action
    }

    /// Finds the expired sessions of the tape at `path` and acts on them; returns them as the replay report lists
    /// them.
    ///
    /// - Parameters:
    ///   - routes: The routes served: with ``Action/record``, where each route's upstream is (one route's
    ///     upstream serves every route of the tape).
    ///   - now: The time to measure ages from, in nanoseconds since the epoch.
    /// - Throws: ``TapedeckError`` when the tape cannot be read or re-recorded, or ``Action/record`` finds no
    ///   upstream for a route with expired sessions.
    func apply(
        tapeAt path: String,
        routes: [Route],
        group: any EventLoopGroup,
        warn: @Sendable (String) -> Void,
        now: Int64 = WallClock.nowNanoseconds()
    ) async throws -> [ReplayReport.Expired] {
        let tape = try Tape(readingAt: path)
        defer { try? tape.close() }
        let limit = now - maxAge.nanoseconds
        let old = try tape.sessions().filter { $0.outcome != .probe && $0.startedAt < limit && $0.id != nil }
        guard !old.isEmpty else { return [] }
        func entry(_ session: SessionRecord, _ status: ReplayReport.Expired.Status) -> ReplayReport.Expired {
            ReplayReport.Expired(
                route: session.route,
                session: session.id ?? 0,
                ageSeconds: max(0, (now - session.startedAt) / 1_000_000_000),
                status: status
            )
        }
        let oldest = old.map(\.startedAt).min() ?? now
        let named = old.prefix(20).map { "\($0.id ?? 0)" }.joined(separator: ", ") + (old.count > 20 ? ", …" : "")
        let what =
            "\(old.count) session\(old.count == 1 ? "" : "s") of tape '\(path)' \(old.count == 1 ? "is" : "are") "
            + "older than \(DurationText.format(maxAge)) (the oldest recorded \(InspectFormat.age(of: oldest, now: now)) "
            + "ago): \(named)"
        switch action {
        case .warn:
            warn(what + "; re-record them, or check them with `tapedeck drift`")
            return old.map { entry($0, .expired) }
        case .fail:
            warn(what + "; they fail the replay (--on-expired fail)")
            return old.map { entry($0, .failed) }
        case .record:
            let report = try await DriftCheck.run(
                tape: tape,
                options: try driftOptions(for: old, routes: routes),
                group: group
            )
            let redaction = try DriftRecording.Redaction(tape: tape)
            try tape.close()
            var rerecordings: [SessionRerecording] = []
            var statuses: [Int64: ReplayReport.Expired.Status] = [:]
            for result in report.results {
                guard let live = report.live[result.session] else { continue }
                switch result.status {
                case .failed:
                    statuses[result.session] = .unchecked
                    warn(
                        "session \(result.session) of tape '\(path)' is expired but could not be re-recorded: "
                            + "\(result.reason ?? "failed"); it replays as recorded"
                    )
                    continue
                case .unchanged:
                    statuses[result.session] = .refreshed
                case .changed:
                    statuses[result.session] = .rerecorded
                }
                rerecordings.append(
                    live.rerecording(
                        events: result.status == .unchanged
                            ? nil : try redaction.apply(to: live.events, route: result.route)
                    )
                )
            }
            try Tape.rerecord(tapeAt: path, rerecordings)
            let changed = statuses.values.count(where: { $0 == .rerecorded })
            warn(
                what + "; re-recorded them from the upstream: \(changed) changed, "
                    + "\(statuses.values.count(where: { $0 == .refreshed })) unchanged"
            )
            return old.map { entry($0, statuses[$0.id ?? 0] ?? .unchecked) }
        }
    }

    /// A drift check of the expired sessions, each route's upstream from `routes`.
    private func driftOptions(for sessions: [SessionRecord], routes: [Route]) throws -> DriftCheck.Options {
        var options = DriftCheck.Options(
            routes: routes,
            sessions: Set(sessions.compactMap(\.id))
        )
        let names = Set(sessions.map(\.route)).sorted()
        options.timeout = names.compactMap { options.route(named: $0)?.connectTimeout }.max() ?? .seconds(5)
        // The upstream must be one the user gave: the one recorded may be gone, or not meant to be written to.
        for name in names where options.route(named: name)?.upstream == nil {
            throw TapedeckError(
                .invalidArgument,
                "--on-expired record needs the upstream of route '\(name)' to re-record its expired sessions: "
                    + "give --upstream (or --config with upstreams)"
            )
        }
        options.continueAfterChange = true
        options.keepsConversations = true
        return options
    }
}
