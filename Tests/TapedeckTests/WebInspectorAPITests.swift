import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Tapedeck
import TapedeckTesting

/// The web inspector's JSON API and pages through Hummingbird's router test client, over tapes written by hand.
@Suite(.timeLimit(.minutes(2)))
struct WebInspectorAPITests {
    /// Five sessions: a Redis SET in two reads, a GET, an HTTP request, a binary one and a long one.
    static let conversations: [[ConversationTape.Read]] = [
        [.client("*3\r\n$3\r\nSET\r\n"), .client("$1\r\nk\r\n$1\r\nv\r\n"), .upstream("+OK\r\n")],
        [.client("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), .upstream("$1\r\nv\r\n")],
        [
            .client("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"), .upstream("HTTP/1.1 200 OK\r\n\r\n"),
            .client("GET /b.txt HTTP/1.1\r\n\r\n"), .upstream("HTTP/1.1 404 Not Found\r\n\r\n"),
        ],
        [.client(bytes: [0x00, 0x01, 0xFF, 0x10]), .upstream("\u{1}")],
        (0..<7).map { $0 % 2 == 0 ? .client("ping \($0)\n") : .upstream("pong \($0)\n") },
    ]

    @Test func sessionsArePagedCountedAndSortedByTheServer() async throws {
        try await withInspector { (api) async throws in
            let first = try await api.get("/api/sessions?limit=2")
            #expect(first.status == 200)
            #expect(first.object["total"] as? Int == 5)
            #expect(Self.ids(first) == [1, 2])
            #expect(try await Self.ids(api.get("/api/sessions?limit=2&offset=2")) == [3, 4])
            #expect(try await Self.ids(api.get("/api/sessions?limit=2&offset=4")) == [5])
            // client_bytes was set to 10 * (6 - id): descending bytes is ascending id.
            #expect(try await Self.ids(api.get("/api/sessions?sort=client_bytes&order=desc")) == [1, 2, 3, 4, 5])
            #expect(try await Self.ids(api.get("/api/sessions?sort=client_bytes")) == [5, 4, 3, 2, 1])
            #expect(try await Self.ids(api.get("/api/sessions?order=desc&limit=1")) == [5])
            let row = try #require((first.object["sessions"] as? [[String: Any]])?.first)
            #expect(row["transport"] as? String == "tcp")
            #expect(row["route"] as? String == "default")
            #expect(row["outcome"] as? String == "closed")
            #expect((row["start"] as? String)?.hasSuffix("Z") == true)
        }
    }

    @Test func sessionsAreFilteredByContentAsGrepSearches() async throws {
        try await withInspector { (api) async throws in
            #expect(try await Self.ids(api.get("/api/sessions?q=GET")) == [2, 3])
            #expect(try await Self.ids(api.get("/api/sessions?q=%5Cx00%5Cx01")) == [4])
            #expect(try await Self.ids(api.get("/api/sessions?q=404%20Not&limit=1")) == [3])
            #expect(try await Self.ids(api.get("/api/sessions?q=p%5Bio%5Dng%20%5B0-9%5D&regex=1")) == [5])
            #expect(try await Self.ids(api.get("/api/sessions?q=nowhere")) == [])
            #expect(try await api.get("/api/sessions?q=GET&sort=id&order=desc").object["total"] as? Int == 2)
            #expect(try await Self.ids(api.get("/api/sessions?route=default&outcome=closed&limit=1")) == [1])
            #expect(try await Self.ids(api.get("/api/sessions?route=other")) == [])
            #expect(try await Self.ids(api.get("/api/sessions?since=2262-01-01")) == [])
            #expect(try await Self.ids(api.get("/api/sessions?until=2262-01-01&limit=1")) == [1])
        }
    }

    @Test(arguments: [
        ("/api/sessions?sort=size", "invalid sort 'size'"),
        ("/api/sessions?order=up", "invalid order 'up'"),
        ("/api/sessions?limit=0", "invalid limit '0'"),
        ("/api/sessions?limit=5000", "invalid limit '5000'"),
        ("/api/sessions?offset=-1", "invalid offset '-1'"),
        ("/api/sessions?outcome=fine", "invalid outcome 'fine'"),
        ("/api/sessions?since=yesterday", "invalid since"),
        ("/api/sessions?q=%5Cq", "invalid escape"),
        ("/api/sessions?q=(&regex=1", "invalid regular expression"),
        ("/api/sessions/x", "invalid session id 'x'"),
        ("/api/sessions/1/stream?direction=up", "invalid direction 'up'"),
        ("/api/sessions/1/events?limit=99999", "invalid limit"),
        ("/api/mismatches/0", "invalid mismatch number"),
    ])
    func badParametersAreRefusedWithOneLine(uri: String, message: String) async throws {
        try await withInspector { (api) async throws in
            let answer = try await api.get(uri)
            #expect(answer.status == 400, "\(uri)")
            #expect(answer.object["status"] as? Int == 400)
            #expect((answer.object["error"] as? String)?.contains(message) == true, "\(answer.text)")
        }
    }

    @Test func aSessionHasItsDetailsAndDownloadsAndAMissingOneIsNotFound() async throws {
        try await withInspector { (api) async throws in
            let session = try await api.get("/api/sessions/3")
            #expect(session.status == 200)
            #expect(session.object["id"] as? Int == 3)
            #expect(session.object["protocol"] as? String == "auto")
            #expect(session.object["redacted_spans"] as? Int == 0)
            let exports = try #require(session.object["exports"] as? [String: String])
            #expect(exports["pcapng"] == "/api/sessions/3/export.pcapng")
            let jsonl = try await api.get(try #require(exports["jsonl"]))
            #expect(jsonl.status == 200)
            let lines = jsonl.text.split(separator: "\n")
            #expect(lines.count == 4)
            #expect(lines.allSatisfy { $0.contains("\"session\":3") })
            let pcapng = try await api.get(try #require(exports["pcapng"]))
            #expect(pcapng.status == 200)
            // A pcapng file starts with a section header block: 0x0A0D0D0A.
            #expect(pcapng.bytes.prefix(4) == [0x0A, 0x0D, 0x0D, 0x0A])
            let missing = try await api.get("/api/sessions/99")
            #expect(missing.status == 404)
            #expect(missing.object["error"] as? String == "no session 99 in the tape")
            #expect(try await api.get("/api/sessions/99/events").status == 404)
            #expect(try await api.get("/api/sessions/99/export.jsonl").status == 404)
        }
    }

    @Test func eventsArePagedInOrderWithTheirStreamOffsets() async throws {
        try await withInspector { (api) async throws in
            let first = try await api.get("/api/sessions/5/events?limit=3")
            #expect(first.object["total"] as? Int == 5)  // the session row copied from session 1 says 5
            #expect(Self.seqs(first) == [0, 1, 2])
            #expect(first.object["next"] as? Int == 2)
            let second = try await api.get("/api/sessions/5/events?after=2&limit=3")
            #expect(Self.seqs(second) == [3, 4, 5])
            let last = try await api.get("/api/sessions/5/events?after=5&limit=3")
            #expect(Self.seqs(last) == [6])
            #expect(last.object["next"] is NSNull)
            let events = try #require(second.object["events"] as? [[String: Any]])
            // "ping 0\n", "ping 2\n" went before event 4 ("ping 4\n"): 14 client bytes.
            #expect(events[1]["stream_offset"] as? Int == 14)
            #expect(events[1]["direction"] as? String == "client_to_upstream")
            #expect(events[0]["direction"] as? String == "upstream_to_client")
            #expect(events[1]["payload"] as? String == Data("ping 4\n".utf8).base64EncodedString())
            #expect(events[1]["offset_ns"] as? Int == 4000)
        }
    }

    @Test func aLongPayloadIsCutToItsPreviewAndServedWholeOnItsOwn() async throws {
        try await withInspector { (api) async throws in
            let page = try await api.get("/api/sessions/3/events?preview=4")
            let events = try #require(page.object["events"] as? [[String: Any]])
            #expect(events[0]["payload"] as? String == Data("GET ".utf8).base64EncodedString())
            #expect(events[0]["truncated"] as? Bool == true)
            #expect(events[0]["size"] as? Int == 32)
            let whole = try await api.get("/api/sessions/3/events/0/payload")
            #expect(whole.text == "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await api.get("/api/sessions/3/events/9/payload").status == 404)
        }
    }

    @Test func aDirectionIsOneStreamWithItsChunkBoundaries() async throws {
        try await withInspector { (api) async throws in
            let client = try await api.get("/api/sessions/1/stream")
            #expect(
                client.object["payload"] as? String
                    == Data("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".utf8).base64EncodedString()
            )
            #expect(client.object["boundaries"] as? [Int] == [0, 13])
            #expect(client.object["total"] as? Int == 27)
            #expect(client.object["truncated"] as? Bool == false)
            let cut = try await api.get("/api/sessions/1/stream?limit=5")
            #expect(cut.object["truncated"] as? Bool == true)
            #expect(cut.object["total"] as? Int == 27)
            let upstream = try await api.get("/api/sessions/1/stream?direction=upstream_to_client")
            #expect(upstream.object["payload"] as? String == Data("+OK\r\n".utf8).base64EncodedString())
        }
    }

    @Test func infoNamesTheTapeAndWhatItHolds() async throws {
        try await withInspector { (api) async throws in
            let info = try await api.get("/api/info")
            #expect(info.object["tape"] as? String == "conversations.tape")
            #expect(info.object["mode"] as? String == "view")
            #expect(info.object["live"] as? Bool == false)
            #expect(info.object["sessions"] as? Int == 5)
            #expect(info.object["last_session"] as? Int == 5)
            #expect(info.object["routes"] as? [String] == ["default"])
            #expect(info.object["outcomes"] as? [String] == ["closed"])
            #expect(info.object["report"] as? Bool == false)
            let mismatches = try await api.get("/api/mismatches")
            #expect(mismatches.object["report"] as? Bool == false)
            #expect(try await api.get("/api/mismatches/1").status == 404)
        }
    }

    @Test func aReportsMismatchIsPlacedInTheExchangeWhereTheClientLeftTheTape() async throws {
        // The client of session 3 asked for /c.txt where the recording asked for /b.txt: the second exchange.
        let mismatch = ReplayReport.Mismatch(
            route: "default",
            client: "127.0.0.1:40000",
            closestSession: 3,
            offset: 32 + 5,
            expected: ByteExcerpt.render(Data("GET /b.txt HTTP/1.1\r\n".utf8)),
            actual: ByteExcerpt.render(Data("GET /c.txt HTTP/1.1\r\n".utf8)),
            reason: "the client's bytes differ from every recorded session"
        )
        var report = ReplayReport()
        report.connections = 1
        report.mismatches = [mismatch]
        try await withInspector(report: report) { (api) async throws in
            let list = try await api.get("/api/mismatches")
            #expect(list.object["report"] as? Bool == true)
            let row = try #require((list.object["mismatches"] as? [[String: Any]])?.first)
            #expect(row["index"] as? Int == 1)
            #expect(row["closest_session"] as? Int == 3)
            let diagnosis = try await api.get("/api/mismatches/1")
            #expect(diagnosis.status == 200)
            #expect(diagnosis.object["session"] as? Int == 3)
            #expect(diagnosis.object["exchange"] as? Int == 2)
            #expect(diagnosis.object["seq"] as? Int == 2)
            #expect(diagnosis.object["recorded_offset"] as? Int == 37)
            let recorded = try #require(diagnosis.object["recorded"] as? [String: Any])
            let live = try #require(diagnosis.object["live"] as? [String: Any])
            #expect(recorded["start"] as? Int == 32)
            #expect(recorded["difference"] as? Int == 5)
            #expect(Self.text(recorded["payload"]) == "GET /b.txt HTTP/1.1\r\n\r\n")
            #expect(Self.text(live["payload"]) == "GET /c.txt HTTP/1.1\r\n")
            #expect(live["difference"] as? Int == 5)
            #expect(try await api.get("/api/mismatches/2").status == 404)
        }
    }

    @Test func thePageIsServedForEveryPageURLWithItsAssets() async throws {
        try await withInspector { (api) async throws in
            for path in ["/", "/sessions/3", "/mismatches", "/mismatches/1"] {
                let page = try await api.get(path)
                #expect(page.status == 200, "\(path)")
                #expect(page.contentType?.hasPrefix("text/html") == true)
                #expect(page.text.contains("/assets/inspector.js"))
            }
            let script = try await api.get("/assets/inspector.js")
            #expect(script.status == 200)
            #expect(script.contentType?.hasPrefix("text/javascript") == true)
            #expect(try await api.get("/assets/inspector.css").status == 200)
            #expect(try await api.get("/assets/secrets.txt").status == 404)
            #expect(try await api.get("/assets/..%2FPackage.swift").status == 404)
            #expect(try await api.get("/nowhere").status == 404)
        }
    }

    @Test func redactedAndVolatileSpansAreMarkedInEventsAndStreams() async throws {
        let echo = try await TestServer.start(.echo)
        defer { Task { await echo.stop() } }
        let directory = try TemporaryDirectory()
        let tape = directory.path("rules.tape")
        let rules = [
            try Rule(.volatile, pattern: "X-Request-Id: ([0-9a-f-]{8})"),
            try Rule(.redact, pattern: "PASS ([a-z0-9]+)\r\n", scope: .client),
        ]
        let request = "LOGIN\r\nPASS hunter22\r\nX-Request-Id: 0123abcd\r\n"
        try await withTapedeck(.record, tape: tape, upstream: "\(echo.endpoint)", rules: rules) { address throws in
            _ = try await TestClient.exchange(address, request)
        }
        let inspector = try TapeInspector(source: InspectorSource(tapePath: tape))
        defer { inspector.close() }
        let app = Application(router: InspectorAPI.router(for: inspector, assets: try InspectorAssets.load()))
        try await app.test(.router) { client in
            let api = ControlAPIClient(client: client)
            let session = try await api.get("/api/sessions/1")
            #expect(session.object["redacted_spans"] as? Int == 1)
            #expect((session.object["volatile_spans"] as? Int ?? 0) >= 1)
            let page = try await api.get("/api/sessions/1/events")
            let events = try #require(page.object["events"] as? [[String: Any]])
            let sent = try #require(events.first { $0["direction"] as? String == "client_to_upstream" })
            let marks = try #require(sent["marks"] as? [[String: Any]])
            let redacted = try #require(marks.first { $0["kind"] as? String == "redact" })
            // "LOGIN\r\nPASS " is 12 bytes; the placeholder covers "hunter22".
            #expect(redacted["start"] as? Int == 12)
            #expect(redacted["length"] as? Int == 8)
            let volatile = try #require(marks.first { $0["kind"] as? String == "volatile" })
            #expect(volatile["start"] as? Int == 36)
            #expect(volatile["length"] as? Int == 8)
            #expect((volatile["rule"] as? String)?.contains("X-Request-Id") == true)
            let stream = try await api.get("/api/sessions/1/stream")
            #expect((stream.object["marks"] as? [[String: Any]])?.count == marks.count)
        }
        withExtendedLifetime(directory) {}
    }

    @Test func onlyRequestsForALoopbackHostAreAnswered() async throws {
        try await withInspector { (api) async throws in
            for host in ["127.0.0.1:8080", "localhost:41237", "[::1]:80", "LOCALHOST"] {
                #expect(try await api.get("/api/info", host: host).status == 200, "\(host)")
            }
            // A page whose name was made to resolve to 127.0.0.1 (DNS rebinding) names itself in Host.
            for host in ["evil.example:8080", "127.0.0.1.evil.example", "[::2]:80", "10.0.0.1:80"] {
                let answer = try await api.get("/api/info", host: host)
                #expect(answer.status == 403, "\(host)")
                #expect((answer.object["error"] as? String)?.contains("localhost, 127.0.0.1 or [::1]") == true)
            }
            #expect(try await api.get("/", host: "evil.example").status == 403)
        }
    }

    // MARK: Helpers

    static func ids(_ answer: ControlAPIClient.Answer) -> [Int] {
        (answer.object["sessions"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
    }

    static func seqs(_ answer: ControlAPIClient.Answer) -> [Int] {
        (answer.object["events"] as? [[String: Any]] ?? []).compactMap { $0["seq"] as? Int }
    }

    static func text(_ base64: Any?) -> String? {
        (base64 as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Serves the inspector over a tape of ``conversations`` (with distinct client byte counts) to `body`.
    func withInspector(
        report: ReplayReport? = nil,
        _ body: @Sendable (ControlAPIClient) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("conversations.tape")
        try ConversationTape.make(at: path, Self.conversations)
        let database = try DatabaseQueue(path: path)
        try await database.write { db in try db.execute(sql: "UPDATE sessions SET client_bytes = 10 * (6 - id)") }
        try database.close()
        let inspector = try TapeInspector(source: InspectorSource(tapePath: path, report: report))
        defer { inspector.close() }
        let app = Application(router: InspectorAPI.router(for: inspector, assets: try InspectorAssets.load()))
        try await app.test(.router) { client in try await body(ControlAPIClient(client: client)) }
        withExtendedLifetime(directory) {}
    }
}
