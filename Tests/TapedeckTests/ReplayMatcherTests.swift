import Foundation
import Testing

@testable import Tapedeck

/// The replay matcher without sockets: scripts built from events, bytes fed in any chunking.
struct ReplayMatcherTests {
    /// A session as a list of (direction, kind, text) steps, recorded 1 ms apart.
    static func session(_ id: Int64, _ steps: [(Direction, EventKind, String)]) -> ReplayScript {
        let events = steps.enumerated().map { index, step in
            EventRecord(
                sessionID: id,
                seq: Int64(index),
                offsetNanoseconds: Int64(index) * 1_000_000,
                direction: step.0,
                kind: step.1,
                payload: step.1 == .data || step.1 == .connectFailed ? Data(step.2.utf8) : nil
            )
        }
        return ReplayScript(sessionID: id, events: events)
    }

    static func client(_ text: String) -> (Direction, EventKind, String) { (.clientToUpstream, .data, text) }
    static func server(_ text: String) -> (Direction, EventKind, String) { (.upstreamToClient, .data, text) }
    static let clientHalfClose: (Direction, EventKind, String) = (.clientToUpstream, .halfClose, "")
    static let serverClose: (Direction, EventKind, String) = (.upstreamToClient, .close, "")

    /// Everything sent to the client, concatenated, and whether the connection was closed or reset.
    static func replies(_ actions: [ReplayMatcher.Action]) -> String {
        actions.map { action in
            switch action {
            case .send(let bytes, _): return String(decoding: bytes.heldBytes ?? Data(), as: UTF8.self)
            case .sendEdited(let bytes, _, _): return String(decoding: bytes, as: UTF8.self)
            case .halfClose: return "<half-close>"
            case .close: return "<close>"
            case .reset: return "<reset>"
            case .mismatch: return "<mismatch>"
            }
        }.joined()
    }

    static let redisLike = [
        session(1, [client("*1\r\n$4\r\nPING\r\n"), server("+PONG\r\n"), clientHalfClose, serverClose]),
        session(
            2,
            [client("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), server("$5\r\nhello\r\n"), clientHalfClose, serverClose]
        ),
    ]

    @Test func chunkBoundariesNeverMatter() {
        let catalog = SessionCatalog(scripts: Self.redisLike, repeatable: true)
        let request = Array("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".utf8)
        for chunkSize in [1, 2, 3, 7, request.count] {
            var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
            var actions = matcher.start()
            for start in stride(from: 0, to: request.count, by: chunkSize) {
                actions += matcher.receive(Data(request[start..<min(start + chunkSize, request.count)]))
            }
            actions += matcher.endOfInput(reset: false)
            #expect(Self.replies(actions) == "$5\r\nhello\r\n<close>", "chunk size \(chunkSize)")
            #expect(matcher.connectionClosed() == 2)
        }
    }

    @Test func identicalHandshakesNarrowToTheSessionTheClientChooses() {
        let scripts = [
            Self.session(
                1,
                [Self.client("HELLO\n"), Self.server("WELCOME\n"), Self.client("Q1\n"), Self.server("R1\n")]
            ),
            Self.session(
                2,
                [Self.client("HELLO\n"), Self.server("WELCOME\n"), Self.client("Q2\n"), Self.server("R2\n")]
            ),
        ]
        let catalog = SessionCatalog(scripts: scripts, repeatable: false)
        var second = ReplayMatcher(catalog: catalog, pace: .fast)
        var actions = second.start() + second.receive(Data("HELLO\n".utf8))
        #expect(Self.replies(actions) == "WELCOME\n", "every candidate agrees on the greeting")
        actions = second.receive(Data("Q2\n".utf8))
        #expect(Self.replies(actions) == "R2\n")
        #expect(second.connectionClosed() == 2)
        // Session 1 was only followed for a while, never used up: the next connection gets it.
        var first = ReplayMatcher(catalog: catalog, pace: .fast)
        actions = first.start() + first.receive(Data("HELLO\nQ1\n".utf8))
        #expect(Self.replies(actions) == "WELCOME\nR1\n")
        #expect(first.connectionClosed() == 1)
        #expect(catalog.unusedSessionIDs.isEmpty)
    }

    @Test func concurrentConnectionsWithIdenticalTrafficGetDistinctSessions() {
        let scripts = (1...3).map { Self.session($0, [Self.client("SAME\n"), Self.server("reply \($0)\n")]) }
        let catalog = SessionCatalog(scripts: scripts, repeatable: false)
        var matchers = (0..<3).map { _ in ReplayMatcher(catalog: catalog, pace: .fast) }
        var replies: [String] = []
        for index in matchers.indices { _ = matchers[index].start() }
        for index in matchers.indices { replies.append(Self.replies(matchers[index].receive(Data("SAME\n".utf8)))) }
        #expect(replies == ["reply 1\n", "reply 2\n", "reply 3\n"])
        #expect(Set(matchers.indices.compactMap { matchers[$0].connectionClosed() }) == [1, 2, 3])
    }

    @Test func aServerThatSpeaksFirstIsHeardOnConnect() {
        let catalog = SessionCatalog(
            scripts: [
                Self.session(
                    1,
                    [
                        Self.server("220 ready\r\n"), Self.client("QUIT\r\n"), Self.server("221 bye\r\n"),
                        Self.serverClose,
                    ]
                )
            ],
            repeatable: false
        )
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        #expect(Self.replies(matcher.start()) == "220 ready\r\n")
        #expect(Self.replies(matcher.receive(Data("QUIT\r\n".utf8))) == "221 bye\r\n<close>")
    }

    @Test func whenCandidatesDisagreeBeforeTheClientSpeaksTheEarliestWins() {
        let catalog = SessionCatalog(
            scripts: [Self.session(1, [Self.server("v1\n")]), Self.session(2, [Self.server("v2\n")])],
            repeatable: false
        )
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        #expect(Self.replies(matcher.start()) == "v1\n")
    }

    @Test func bytesOnlyAUsedUpSessionSentGetTheLeadsReplyUpToThereThenAMismatch() throws {
        let catalog = SessionCatalog(
            scripts: [
                Self.session(1, [Self.client("A\n"), Self.server("1"), Self.client("B\n"), Self.server("2")]),
                Self.session(2, [Self.client("A\nC\n"), Self.server("3")]),
            ],
            repeatable: false
        )
        var first = ReplayMatcher(catalog: catalog, pace: .fast)
        #expect(Self.replies(first.start() + first.receive(Data("A\nC\n".utf8))) == "3")
        #expect(first.connectionClosed() == 2)
        // The next connection follows session 1, and says in one write what only session 2, used up, said: it
        // once went back and forth between following its lead and leaving it until the stack overflowed.
        var second = ReplayMatcher(catalog: catalog, pace: .fast)
        #expect(Self.replies(second.start() + second.receive(Data("A\nC\n".utf8))) == "1<mismatch>")
        #expect(try #require(second.mismatch).offset == 2)
    }

    @Test func eachSessionServesOnceUnlessRepeated() {
        for repeatable in [false, true] {
            let catalog = SessionCatalog(scripts: [Self.redisLike[0]], repeatable: repeatable)
            for attempt in 0..<2 {
                var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
                let actions = matcher.start() + matcher.receive(Data("*1\r\n$4\r\nPING\r\n".utf8))
                let expected = repeatable || attempt == 0 ? "+PONG\r\n" : "<mismatch>"
                #expect(Self.replies(actions) == expected, "repeat \(repeatable), attempt \(attempt)")
                _ = matcher.connectionClosed()
            }
        }
    }

    @Test func aMismatchNamesTheClosestSessionTheOffsetAndBothExcerpts() throws {
        let catalog = SessionCatalog(scripts: Self.redisLike, repeatable: false)
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        _ = matcher.start()
        _ = matcher.receive(Data("*2\r\n$3\r\nGET\r\n".utf8))
        let actions = matcher.receive(Data("$1\r\nx\r\n".utf8))
        guard case .mismatch(let mismatch) = try #require(actions.first) else {
            Issue.record("expected a mismatch, got \(actions)")
            return
        }
        #expect(mismatch.closestSessionID == 2)
        #expect(mismatch.offset == 17)
        #expect(ByteExcerpt.render(mismatch.expected).hasSuffix("$1\\r\\nk\\r\\n"))
        #expect(ByteExcerpt.render(mismatch.actual).hasSuffix("$1\\r\\nx\\r\\n"))
        #expect(mismatch.reason == "the client's bytes differ from every recorded session")
        #expect(matcher.connectionClosed() == nil)
        #expect(catalog.unusedSessionIDs == [1, 2], "a mismatched connection uses up no session")
    }

    @Test func aReplyRecordedAfterTheClientsHalfCloseWaitsForIt() {
        let catalog = SessionCatalog(
            scripts: [
                Self.session(
                    1,
                    [Self.client("hello"), Self.clientHalfClose, Self.server("received 5"), Self.serverClose]
                )
            ],
            repeatable: false
        )
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        #expect(Self.replies(matcher.start() + matcher.receive(Data("hello".utf8))) == "")
        #expect(Self.replies(matcher.endOfInput(reset: false)) == "received 5<close>")
    }

    @Test func resetsAndRefusedConnectsAreReproduced() {
        let catalog = SessionCatalog(
            scripts: [
                Self.session(1, [Self.client("boom"), (.upstreamToClient, .reset, "")]),
                Self.session(2, [(.upstreamToClient, .connectFailed, "connection refused")]),
            ],
            repeatable: false
        )
        var first = ReplayMatcher(catalog: catalog, pace: .fast)
        #expect(Self.replies(first.start() + first.receive(Data("boom".utf8))) == "<reset>")
        _ = first.connectionClosed()
        var second = ReplayMatcher(catalog: catalog, pace: .fast)
        #expect(Self.replies(second.start()) == "<reset>")
    }

    @Test func recordedPaceWaitsTheRecordedGaps() {
        let catalog = SessionCatalog(
            scripts: [Self.session(1, [Self.client("a"), Self.server("1"), Self.server("2")])],
            repeatable: true
        )
        for (pace, expected) in [
            (ReplayPace.fast, [Int64(0), 0]), (.recorded(factor: 1), [1_000_000, 1_000_000]),
            (.recorded(factor: 2), [500_000, 500_000]),
        ] {
            var matcher = ReplayMatcher(catalog: catalog, pace: pace)
            let actions = matcher.start() + matcher.receive(Data("a".utf8))
            let delays = actions.compactMap { action -> Int64? in
                if case .send(_, let delay) = action { return delay }
                return nil
            }
            // Each recorded send keeps its own time: the gap before the first, and the gap between them.
            #expect(delays == expected, "\(pace)")
            _ = matcher.connectionClosed()
        }
    }

    @Test func choosingASessionAmongTenThousandNarrowsWithoutScanning() {
        let scripts = (1...10_000).map {
            Self.session(Int64($0), [Self.client("GET /item/\($0) HTTP/1.1\r\n\r\n"), Self.server("item \($0)")])
        }
        let catalog = SessionCatalog(scripts: scripts, repeatable: true)
        for id in [1, 777, 5_000, 10_000] {
            var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
            let actions = matcher.start() + matcher.receive(Data("GET /item/\(id) HTTP/1.1\r\n\r\n".utf8))
            #expect(Self.replies(actions) == "item \(id)")
            #expect(matcher.connectionClosed() == Int64(id))
        }
    }

    @Test(arguments: ["fast", "recorded", "2x", "0.5x"])
    func parsesPaces(text: String) throws {
        #expect(try ReplayPace(parsing: text).description == text)
    }

    @Test(arguments: ["slow", "0x", "-1x", "x", "2"])
    func refusesBadPaces(text: String) {
        #expect(throws: TapedeckError.self) { try ReplayPace(parsing: text) }
    }
}

/// The listen address clients write into their requests, normalized on both sides.
struct ListenAddressTextTests {
    @Test func replacesEverySpellingOfTheAddressAndNothingElse() throws {
        let text = try #require(ListenAddressText(.tcp(host: "127.0.0.1", port: 41234)))
        let request = Data(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:41234\r\nReferer: http://localhost:41234/x\r\nX: 127.0.0.1:4123\r\n".utf8
        )
        #expect(
            String(decoding: text.normalize(request), as: UTF8.self)
                == "GET / HTTP/1.1\r\nHost: {tapedeck:listen}\r\nReferer: http://{tapedeck:listen}/x\r\nX: 127.0.0.1:4123\r\n"
        )
        let other = try #require(ListenAddressText(.tcp(host: "127.0.0.1", port: 50000)))
        #expect(
            other.normalize(Data("Host: 127.0.0.1:50000\r\n".utf8))
                == text.normalize(Data("Host: 127.0.0.1:41234\r\n".utf8))
        )
        #expect(text.normalize(Data("no address here".utf8)) == Data("no address here".utf8))
        #expect(ListenAddressText(.tcp(host: "127.0.0.1", port: 0)) == nil)
        #expect(ListenAddressText(.unix(path: "/tmp/s")) == nil)
        #expect(
            try #require(ListenAddressText(.tcp(host: "::1", port: 8080))).spellings.contains(Data("[::1]:8080".utf8))
        )
    }
}

/// A connection pool carries the recorded exchanges over its connections in another grouping than when
/// recording: each exchange must still get its own reply, and the report must still know what was left out.
struct RegroupingTests {
    typealias T = ReplayMatcherTests

    /// Two keep-alive connections, two requests each, recorded as a/b and c/d.
    static let pool = [
        T.session(1, [T.client("GET /a\n"), T.server("A"), T.client("GET /b\n"), T.server("B"), T.clientHalfClose]),
        T.session(2, [T.client("GET /c\n"), T.server("C"), T.client("GET /d\n"), T.server("D"), T.clientHalfClose]),
    ]

    @Test func requestsRegroupedOverThePoolEachGetTheirReply() {
        let catalog = SessionCatalog(scripts: Self.pool, repeatable: false)
        var first = ReplayMatcher(catalog: catalog, pace: .fast)
        var second = ReplayMatcher(catalog: catalog, pace: .fast)
        _ = first.start()
        _ = second.start()
        // Replayed as a/d and c/b, interleaved.
        #expect(T.replies(first.receive(Data("GET /a\n".utf8))) == "A")
        #expect(T.replies(second.receive(Data("GET /c\n".utf8))) == "C")
        #expect(T.replies(first.receive(Data("GET /d\n".utf8))) == "D")
        #expect(T.replies(second.receive(Data("GET /b\n".utf8))) == "B")
        #expect(T.replies(first.endOfInput(reset: false)) == "<close>")
        #expect(T.replies(second.endOfInput(reset: false)) == "<close>")
        #expect(first.regroupedExchanges == 1 && second.regroupedExchanges == 1)
        #expect(first.connectionClosed() != nil && second.connectionClosed() != nil)
        #expect(catalog.unusedSessionIDs.isEmpty)
    }

    @Test func aConnectionsFirstRequestMayBeAnotherConnectionsSecond() {
        let catalog = SessionCatalog(scripts: Self.pool, repeatable: false)
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        // One connection asks for everything, in an order no recorded connection used, pipelined.
        let actions = matcher.start() + matcher.receive(Data("GET /d\nGET /a\nGET /c\nGET /b\n".utf8))
        #expect(T.replies(actions) == "DACB")
        #expect(T.replies(matcher.endOfInput(reset: false)) == "<close>")
        #expect(matcher.connectionClosed() != nil)
        #expect(catalog.unusedSessionIDs.isEmpty)
    }

    @Test func anExchangeIsServedOnceUnlessSessionsRepeat() {
        for repeatable in [false, true] {
            let catalog = SessionCatalog(scripts: Self.pool, repeatable: repeatable)
            var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
            let actions = matcher.start() + matcher.receive(Data("GET /a\nGET /b\nGET /b\n".utf8))
            #expect(T.replies(actions) == (repeatable ? "ABB" : "AB<mismatch>"), "repeat \(repeatable)")
        }
    }

    @Test func somethingNoRecordedExchangeStartsWithStillMismatches() throws {
        let catalog = SessionCatalog(scripts: Self.pool, repeatable: false)
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        let actions = matcher.start() + matcher.receive(Data("GET /a\nGET /x\n".utf8))
        #expect(T.replies(actions) == "A<mismatch>")
        let mismatch = try #require(matcher.mismatch)
        #expect(mismatch.offset == 12)
        #expect(mismatch.closestSessionID == 1)
    }

    @Test func aLeftOutRequestLeavesItsSessionReplayedInPart() {
        let catalog = SessionCatalog(scripts: Self.pool, repeatable: false)
        var first = ReplayMatcher(catalog: catalog, pace: .fast)
        var second = ReplayMatcher(catalog: catalog, pace: .fast)
        _ = first.start() + first.receive(Data("GET /a\nGET /d\n".utf8)) + first.endOfInput(reset: false)
        // The second connection stops after c: b was never asked for. Its own session was regrouped into, so
        // ending between exchanges is no mismatch; the session whose exchange was left out is replayed in part.
        let ending = second.start() + second.receive(Data("GET /c\n".utf8)) + second.endOfInput(reset: false)
        #expect(T.replies(ending) == "C<close>")
        #expect(first.connectionClosed() != nil && second.connectionClosed() != nil)
        #expect(catalog.unusedSessionIDs.isEmpty)
        #expect(catalog.incompleteSessions.map(\.session) == [1])
        #expect(catalog.incompleteSessions.map(\.offset) == [7])
    }

    @Test func skippingACallOfItsOwnSessionIsAFailureEvenWhenRegrouped() {
        // One connection, recorded as BEGIN, INSERT, COMMIT; the client leaves out BEGIN.
        let catalog = SessionCatalog(
            scripts: [
                T.session(
                    1,
                    [
                        T.client("BEGIN\n"), T.server("ok\n"), T.client("INSERT\n"), T.server("1\n"),
                        T.client("COMMIT\n"), T.server("ok\n"), T.clientHalfClose,
                    ]
                )
            ],
            repeatable: false
        )
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        let actions =
            matcher.start() + matcher.receive(Data("INSERT\nCOMMIT\n".utf8)) + matcher.endOfInput(reset: false)
        #expect(T.replies(actions) == "1\nok\n<close>")
        #expect(matcher.connectionClosed() == 1)
        #expect(catalog.incompleteSessions.map(\.session) == [1])
        var report = ReplayReport()
        report.incomplete = catalog.incompleteSessions.map {
            .init(route: "db", session: $0.session, offset: $0.offset)
        }
        #expect(
            report.failures() == ["session 1 of route 'db' was replayed in part: its exchange at byte 0 never was"]
        )
        #expect(throws: TapedeckError.self) { try report.verify() }
    }

    @Test func withoutRegroupingEndingEarlyIsStillAMismatch() {
        let catalog = SessionCatalog(scripts: Self.pool, repeatable: false)
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        let actions = matcher.start() + matcher.receive(Data("GET /a\n".utf8)) + matcher.endOfInput(reset: false)
        #expect(T.replies(actions) == "A<mismatch>")
    }

    @Test func aHandshakeWithASaltRegroupsAfterTheHandshake() {
        // Like PostgreSQL's md5: the server's salt differs per session and the client's answer depends on it;
        // the query that follows is what tells the sessions apart.
        let scripts = (1...3).map { id in
            T.session(
                Int64(id),
                [
                    T.client("HELLO\n"), T.server("SALT\(id)\n"), T.client("PASS\(id)\n"), T.server("OK\n"),
                    T.client("QUERY \(id)\n"), T.server("ROW \(id)\n"), T.clientHalfClose,
                ]
            )
        }
        let catalog = SessionCatalog(scripts: scripts, repeatable: false)
        var matchers = (0..<3).map { _ in ReplayMatcher(catalog: catalog, pace: .fast) }
        var salts: [String] = []
        for index in matchers.indices {
            salts.append(T.replies(matchers[index].start() + matchers[index].receive(Data("HELLO\n".utf8))))
        }
        #expect(salts == ["SALT1\n", "SALT2\n", "SALT3\n"])
        for index in matchers.indices {
            // Each answers its own salt, then asks the query another connection asked when recording.
            let query = "QUERY \((index + 1) % 3 + 1)\n"
            let actions = matchers[index].receive(Data("PASS\(index + 1)\n\(query)".utf8))
            #expect(T.replies(actions) == "OK\nROW \((index + 1) % 3 + 1)\n")
            #expect(T.replies(matchers[index].endOfInput(reset: false)) == "<close>")
        }
        #expect(matchers.indices.allSatisfy { matchers[$0].connectionClosed() != nil })
        #expect(catalog.unusedSessionIDs.isEmpty)
    }
}
