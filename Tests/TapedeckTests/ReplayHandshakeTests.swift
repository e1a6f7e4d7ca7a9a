import Foundation
import Testing

@testable import Tapedeck

/// Regrouping never serves a reply recorded under one login to a connection that made another.
struct ReplayHandshakeTests {
    typealias M = ReplayMatcherTests

    /// A PostgreSQL-like session: a startup naming the database, a salted password exchange, then one query.
    static func login(_ id: Int64, database: String, salt: String, query: String, answer: String) -> ReplayScript {
        M.session(
            id,
            [
                M.client("STARTUP \(database)\n"), M.server("SALT \(salt)\n"), M.client("PASS md5(\(salt))\n"),
                M.server("OK\n"), M.client("\(query)\n"), M.server("\(answer)\n"), M.clientHalfClose, M.serverClose,
            ]
        )
    }

    /// Plays one connection: each message after the reply to the one before; returns the replies.
    static func play(_ catalog: SessionCatalog, database: String, query: String) -> (String, ReplayMatcher) {
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        var replies = M.replies(matcher.start() + matcher.receive(Data("STARTUP \(database)\n".utf8)))
        // The client answers the salt it was given, as md5 authentication does.
        let salt = replies.split(separator: " ").last.map { $0.dropLast() } ?? ""
        replies += M.replies(matcher.receive(Data("PASS md5(\(salt))\n".utf8)))
        replies += M.replies(matcher.receive(Data("\(query)\n".utf8)) + matcher.endOfInput(reset: false))
        return (replies, matcher)
    }

    @Test func aQueryIsNeverAnsweredFromAnotherDatabasesLogin() {
        // Recorded: a count on app2, SELECT 1 on app, a count on app.
        let catalog = SessionCatalog(
            scripts: [
                Self.login(1, database: "app2", salt: "1", query: "COUNT", answer: "5"),
                Self.login(2, database: "app", salt: "2", query: "SELECT 1", answer: "1"),
                Self.login(3, database: "app", salt: "3", query: "COUNT", answer: "3"),
            ],
            repeatable: false
        )
        // Replayed in another order: the count on app comes first, follows session 2 through the login, and
        // must go on in session 3's count, never in session 1's (logged into app2).
        var (replies, count) = Self.play(catalog, database: "app", query: "COUNT")
        #expect(replies == "SALT 2\nOK\n3\n<close>")
        #expect(count.connectionClosed() == 3)
        var select: ReplayMatcher
        (replies, select) = Self.play(catalog, database: "app", query: "SELECT 1")
        #expect(replies == "SALT 3\nOK\n1\n<close>")
        #expect(select.connectionClosed() == 2)
        var other: ReplayMatcher
        (replies, other) = Self.play(catalog, database: "app2", query: "COUNT")
        #expect(replies == "SALT 1\nOK\n5\n<close>")
        #expect(other.connectionClosed() == 1)
        #expect(catalog.unusedSessionIDs.isEmpty)
        #expect(catalog.incompleteSessions.isEmpty)
    }

    @Test func aQueryOnlyAnotherLoginRecordedIsAMismatch() {
        let catalog = SessionCatalog(
            scripts: [
                Self.login(1, database: "app2", salt: "1", query: "COUNT", answer: "5"),
                Self.login(2, database: "app", salt: "2", query: "SELECT 1", answer: "1"),
                Self.login(3, database: "app", salt: "3", query: "SELECT 1", answer: "1"),
            ],
            repeatable: false
        )
        let (replies, matcher) = Self.play(catalog, database: "app", query: "COUNT")
        #expect(replies.hasSuffix("<mismatch>"), "app2's count must not answer a connection logged into app")
        #expect(matcher.mismatch != nil)
    }

    @Test func requestsOfAKeepAlivePoolStillRegroupAcrossConnections() {
        // Each connection opened with a different request: none of them is a handshake.
        let catalog = SessionCatalog(
            scripts: [
                M.session(1, [M.client("GET /1\n"), M.server("one\n"), M.client("GET /3\n"), M.server("three\n")]),
                M.session(2, [M.client("GET /2\n"), M.server("two\n"), M.client("GET /4\n"), M.server("four\n")]),
            ],
            repeatable: false
        )
        var first = ReplayMatcher(catalog: catalog, pace: .fast)
        let replies =
            first.start() + first.receive(Data("GET /1\n".utf8)) + first.receive(Data("GET /4\n".utf8))
            + first.endOfInput(reset: false)
        #expect(M.replies(replies).hasPrefix("one\nfour\n"))
        #expect(catalog.handshakeGroup(of: 0) == nil)
        #expect(catalog.handshakeGroup(of: 1) == nil)
    }
}
