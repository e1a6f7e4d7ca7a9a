import Foundation
import Logging
import NIOConcurrencyHelpers

/// Collects what every connection of a replay did, from all event loops, into one report.
final class ReplayLedger: Sendable {
    private let report = NIOLockedValueBox(ReplayReport())

    func connectionOpened() {
        report.withLockedValue { $0.connections += 1 }
    }

    func probed() {
        report.withLockedValue { $0.probes += 1 }
    }

    func replayed(_ entry: ReplayReport.Replayed) {
        report.withLockedValue { $0.replayed.append(entry) }
    }

    func recorded(_ entry: ReplayReport.Recorded) {
        report.withLockedValue { $0.recorded.append(entry) }
    }

    func regrouped(_ exchanges: Int) {
        report.withLockedValue { $0.regroupedExchanges += exchanges }
    }

    /// A toxic cut a connection that followed a session.
    func cut(_ entry: ReplayReport.Replayed) {
        report.withLockedValue { $0.cut.append(entry) }
    }

    func mismatched(_ entry: ReplayReport.Mismatch) {
        report.withLockedValue { $0.mismatches.append(entry) }
    }

    /// A connection, stream or datagram left the tape: the one way every replay path reports it, rendered for the
    /// report, logged as a warning and added to the report.
    func mismatched(
        route: String,
        client: String,
        closestSession: Int64?,
        offset: Int,
        expected: Data,
        actual: Data,
        reason: String,
        logger: Logger
    ) {
        let entry = ReplayReport.Mismatch(
            route: route,
            client: client,
            closestSession: closestSession,
            offset: offset,
            expected: ByteExcerpt.render(expected),
            actual: ByteExcerpt.render(actual),
            reason: reason
        )
        logger.warning("replay mismatch: \(entry)")
        mismatched(entry)
    }

    /// The report so far, with the sessions that no connection asked for.
    func snapshot(unused: [ReplayReport.Unused], incomplete: [ReplayReport.Incomplete]) -> ReplayReport {
        var snapshot = report.withLockedValue { $0 }
        // A session a toxic cut short was served as far as the fault let it: not unused.
        let cut = Set(snapshot.cut.map { "\($0.route)\u{0}\($0.session)" })
        snapshot.unused = unused.filter { !cut.contains("\($0.route)\u{0}\($0.session)") }
        snapshot.incomplete = incomplete
        return snapshot
    }
}
