/// The report of one replay server a route had, and the recorded sessions it could serve.
///
/// A route of a deck with a control API gets a new replay server each time it is enabled again or switched to
/// replay; the deck's report merges them (see ``ReplayReport/merged(_:)``).
struct ReplayIncarnation: Sendable {
    /// The route it served.
    var route: String
    /// What the server reported.
    var report: ReplayReport
    /// The sessions of its route in the tape it read.
    var known: Set<Int64>
}

extension ReplayReport {
    /// One report for the replay servers of a deck's routes, as if a single server had served them all.
    ///
    /// Connections, replays, mismatches, cuts and recordings add up; the toxics that fired are listed once each.
    /// A session is unused only if no server that knew it played any of it, and replayed in part only if none
    /// played it whole, so a route served by two servers in turn (disabled and enabled again) is not blamed for
    /// sessions the other played.
    static func merged(_ parts: [ReplayIncarnation]) -> ReplayReport {
        var merged = ReplayReport()
        // Per route, the sessions some server played whole, and those some server played at all.
        var playedWhole: [String: Set<Int64>] = [:]
        var touched: [String: Set<Int64>] = [:]
        for part in parts {
            let report = part.report
            merged.connections += report.connections
            merged.probes += report.probes
            merged.replayed += report.replayed
            merged.mismatches += report.mismatches
            merged.recorded += report.recorded
            merged.regroupedExchanges += report.regroupedExchanges
            merged.cut += report.cut
            let unused = Set(report.unused.map(\.session))
            let incomplete = Set(report.incomplete.map(\.session))
            for session in part.known where !unused.contains(session) {
                touched[part.route, default: []].insert(session)
                if !incomplete.contains(session) { playedWhole[part.route, default: []].insert(session) }
            }
        }
        var seenUnused = Set<String>()
        var seenIncomplete = Set<String>()
        for part in parts {
            for entry in part.report.unused where !(touched[entry.route]?.contains(entry.session) ?? false) {
                if seenUnused.insert("\(entry.route)\u{0}\(entry.session)").inserted { merged.unused.append(entry) }
            }
            for entry in part.report.incomplete where !(playedWhole[entry.route]?.contains(entry.session) ?? false) {
                if seenIncomplete.insert("\(entry.route)\u{0}\(entry.session)").inserted {
                    merged.incomplete.append(entry)
                }
            }
        }
        merged.unused.sort { ($0.route, $0.session) < ($1.route, $1.session) }
        // Each server lists every firing of its route so far, those before it started too: each once, in order.
        var seenFaults = Set<FiredToxic>()
        for part in parts {
            for fired in part.report.faults where seenFaults.insert(fired).inserted { merged.faults.append(fired) }
        }
        merged.faults.sort { $0.time < $1.time }
        return merged
    }
}
