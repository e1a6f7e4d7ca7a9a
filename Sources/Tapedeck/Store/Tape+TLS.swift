import GRDB

extension Tape {
    /// How each session spoke TLS, by session id; sessions without TLS are absent, and a tape from before TLS
    /// (format 1 or 2) has none.
    ///
    /// - Parameter sessionIDs: Only these sessions; nil for all.
    /// - Throws: ``TapedeckError`` with code `tapeUnreadable`.
    public func tlsRecords(sessionIDs: [Int64]? = nil) throws -> [Int64: SessionTLSRecord] {
        try reading { db in
            guard try db.tableExists(SessionTLSRecord.databaseTableName) else { return [:] }
            let records: [SessionTLSRecord]
            if let sessionIDs {
                records = try SessionTLSRecord.filter(keys: sessionIDs).fetchAll(db)
            } else {
                records = try SessionTLSRecord.fetchAll(db)
            }
            return Dictionary(records.map { ($0.sessionID, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// What replay needs to serve a route's TLS: for every route whose clients spoke TLS with Tapedeck, the
    /// names they asked for and the application protocols negotiated, most frequent first.
    func replayTLS() throws -> [String: ReplayTLSProfile] {
        try reading { db in
            guard try db.tableExists(SessionTLSRecord.databaseTableName) else { return [:] }
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT s.route, t.server_name, t.alpn, COUNT(*) AS uses FROM session_tls t
                    JOIN sessions s ON s.id = t.session_id
                    WHERE t.mode IN ('intercept', 'terminate') AND t.failure IS NULL
                    GROUP BY s.route, t.server_name, t.alpn ORDER BY uses DESC
                    """
            )
            var profiles: [String: ReplayTLSProfile] = [:]
            for row in rows {
                let route: String = row["route"]
                var profile = profiles[route] ?? ReplayTLSProfile()
                if let name: String = row["server_name"], !profile.serverNames.contains(name) {
                    profile.serverNames.append(name)
                }
                if let alpn: String = row["alpn"], !profile.applicationProtocols.contains(alpn) {
                    profile.applicationProtocols.append(alpn)
                }
                profiles[route] = profile
            }
            // A route whose every session spoke TLS from the first byte: an upstream that speaks first (an HTTP/2
            // SETTINGS frame) did so inside TLS, so replay holds it back until the client's handshake.
            let counts = try Row.fetchAll(
                db,
                sql: """
                    SELECT s.route, COUNT(*) AS sessions,
                        SUM(CASE WHEN t.mode IN ('intercept', 'terminate') AND t.upgrade = 'direct' THEN 1 ELSE 0 END)
                            AS direct
                    FROM sessions s LEFT JOIN session_tls t ON t.session_id = s.id
                    WHERE s.outcome NOT IN ('probe', 'tls_failed') GROUP BY s.route
                    """
            )
            for row in counts {
                let route: String = row["route"]
                let sessions: Int = row["sessions"]
                let direct: Int = row["direct"] ?? 0
                if sessions > 0, sessions == direct { profiles[route]?.directOnly = true }
            }
            return profiles
        }
    }
}

/// The TLS a route's recorded clients spoke, for replay to speak the same.
struct ReplayTLSProfile: Sendable, Hashable {
    /// The names clients asked for (SNI), most frequent first.
    var serverNames: [String] = []
    /// The application protocols negotiated (ALPN), most frequent first.
    var applicationProtocols: [String] = []
    /// Every session of the route spoke TLS from its first byte.
    var directOnly = false
}
