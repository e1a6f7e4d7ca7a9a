import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import Tapedeck

/// The control API through Hummingbird's router test client: every endpoint, status code and error body, over a
/// real deck whose routes bind real sockets.
@Suite(.timeLimit(.minutes(3)))
struct ControlAPITests {
    @Test func versionAnswersAsToxiproxyDoes() async throws {
        try await withControlAPI { api, _ in
            let answer = try await api.get("/version")
            #expect(answer.status == 200)
            #expect(answer.object["version"] as? String == tapedeckVersion)
        }
    }

    @Test func aProxyCreatedOnPortZeroReportsItsBoundPortAndIsListedByName() async throws {
        try await withControlAPI { api, deck in
            #expect(try await api.get("/proxies").object.isEmpty)
            let created = try await api.post("/proxies", #"{"name": "redis", "upstream": "127.0.0.1:6379"}"#)
            #expect(created.status == 201)
            let listen = try #require(created.object["listen"] as? String)
            let endpoint = try Endpoint(parsing: listen)
            #expect(endpoint.host == "127.0.0.1" && endpoint.port != 0)
            #expect(created.object["upstream"] as? String == "127.0.0.1:6379")
            #expect(created.object["enabled"] as? Bool == true)
            #expect((created.object["toxics"] as? [Any])?.isEmpty == true)
            let listed = try await api.get("/proxies")
            #expect((listed.object["redis"] as? [String: Any])?["listen"] as? String == listen)
            #expect(try await api.get("/proxies/redis").object["name"] as? String == "redis")
            #expect(deck.routes == [BoundRoute(name: "redis", address: endpoint)])
        }
    }

    @Test func aRouteGivenAtStartIsAProxyNamedAfterIt() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let route = Route(name: "echo", upstream: upstream.endpoint)
        try await withControlAPI(routes: [route]) { api, deck in
            let proxy = try await api.get("/proxies/echo")
            #expect(proxy.status == 200)
            #expect(proxy.object["listen"] as? String == "\(try deck.address(of: "echo"))")
            #expect(try await TestClient.exchange(try deck.address(of: "echo"), "hello").reply == "hello")
        }
    }

    @Test func creatingAProxyTwiceIsAConflict() async throws {
        try await withControlAPI { api, _ in
            let body = #"{"name": "redis", "upstream": "127.0.0.1:6379"}"#
            #expect(try await api.post("/proxies", body).status == 201)
            let again = try await api.post("/proxies", body)
            #expect(again.status == 409)
            #expect(again.object["error"] as? String == "proxy already exists: redis")
            #expect(again.object["status"] as? Int == 409)
        }
    }

    @Test(arguments: [
        (#"{"upstream": "127.0.0.1:6379"}"#, "missing required field: name"),
        (#"{"name": "redis"}"#, "missing required field: upstream"),
        (#"{"name": "redis", "upstream": "127.0.0.1:6379", "upstraem": "x"}"#, "unknown field 'upstraem'"),
        (#"{"name": "redis", "upstream": "127.0.0.1:6379", "enabled": 1}"#, "'enabled' must be true or false"),
        (#"{"name": "redis", "upstream": "nowhere"}"#, "invalid address 'nowhere'"),
        (#"{"name": "re dis", "upstream": "127.0.0.1:6379"}"#, "invalid route name 're dis'"),
        (#"{"name": "redis", "upstream": "127.0.0.1:6379", "listen": "udp:127.0.0.1:0"}"#, "datagrams"),
        (#"{"name": "redis""#, "not valid JSON"),
        (#"["redis"]"#, "expected a JSON object"),
        ("", "empty"),
    ])
    func aBadProxyIsABadRequestSayingWhy(body: String, message: String) async throws {
        try await withControlAPI { api, _ in
            let answer = try await api.post("/proxies", body)
            #expect(answer.status == 400)
            #expect(answer.object["status"] as? Int == 400)
            #expect((answer.object["error"] as? String)?.contains(message) == true, "\(answer.text)")
            #expect(try await api.get("/proxies").object.isEmpty)
        }
    }

    @Test func aMissingProxyIsNotFoundEverywhere() async throws {
        try await withControlAPI { api, _ in
            for answer in [
                try await api.get("/proxies/nope"),
                try await api.post("/proxies/nope", #"{"enabled": false}"#),
                try await api.delete("/proxies/nope"),
                try await api.get("/proxies/nope/toxics"),
                try await api.post("/proxies/nope/toxics", #"{"type": "latency"}"#),
                try await api.get("/proxies/nope/toxics/latency_downstream"),
                try await api.post("/proxies/nope/toxics/latency_downstream", #"{"toxicity": 0.5}"#),
                try await api.delete("/proxies/nope/toxics/latency_downstream"),
                try await api.post("/tapedeck/routes/nope/mode", #"{"mode": "proxy"}"#),
            ] {
                #expect(answer.status == 404)
                #expect(answer.object["error"] as? String == "proxy not found: nope")
                #expect(answer.object["status"] as? Int == 404)
            }
        }
    }

    @Test func anUnknownEndpointIsNotFoundInToxiproxysShape() async throws {
        try await withControlAPI { api, _ in
            let answer = try await api.get("/nothing/here")
            #expect(answer.status == 404)
            #expect(answer.object["status"] as? Int == 404)
            #expect((answer.object["error"] as? String)?.contains("/nothing/here") == true)
        }
    }

    @Test func disablingClosesTheListenerAndEnablingReopensTheSamePort() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        // A port no bind to port 0 can take while the proxy is disabled.
        let port = try await FreePort.find()
        try await withControlAPI { api, _ in
            let created = try await api.post(
                "/proxies",
                #"{"name": "echo", "listen": "127.0.0.1:\#(port)", "upstream": "\#(upstream.endpoint)"}"#
            )
            let listen = try Endpoint(parsing: try #require(created.object["listen"] as? String))
            #expect(listen == .tcp(host: "127.0.0.1", port: port))
            let open = try BlockingConnection(to: listen)
            #expect(try open.echo("before") == "before")

            let disabled = try await api.post("/proxies/echo", #"{"enabled": false}"#)
            #expect(disabled.status == 200)
            #expect(disabled.object["enabled"] as? Bool == false)
            #expect(disabled.object["listen"] as? String == "\(listen)")
            #expect(await TestClient.isRefused(listen))
            #expect(try open.echoUnlessEnded("after") == nil)

            let enabled = try await api.post("/proxies/echo", #"{"enabled": true}"#)
            #expect(enabled.object["enabled"] as? Bool == true)
            #expect(enabled.object["listen"] as? String == "\(listen)")
            #expect(try await TestClient.exchange(listen, "again").reply == "again")
        }
    }

    @Test func updatingTheListenAddressMovesTheProxy() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withControlAPI { api, _ in
            let created = try await api.post("/proxies", #"{"name": "echo", "upstream": "\#(upstream.endpoint)"}"#)
            let old = try Endpoint(parsing: try #require(created.object["listen"] as? String))
            let moved = try await api.patch("/proxies/echo", #"{"listen": "127.0.0.1:0"}"#)
            #expect(moved.status == 200)
            let new = try Endpoint(parsing: try #require(moved.object["listen"] as? String))
            // Port 0 on the same host is the address it has: nothing moves.
            #expect(new == old)
            let bad = try await api.post("/proxies/echo", #"{"upstream": "no port"}"#)
            #expect(bad.status == 400)
            #expect(try await TestClient.exchange(new, "still").reply == "still")
        }
    }

    @Test func deletingAProxyStopsItAndForgetsIt() async throws {
        try await withControlAPI { api, _ in
            let created = try await api.post("/proxies", #"{"name": "redis", "upstream": "127.0.0.1:6379"}"#)
            let listen = try Endpoint(parsing: try #require(created.object["listen"] as? String))
            let deleted = try await api.delete("/proxies/redis")
            #expect(deleted.status == 204)
            #expect(deleted.text.isEmpty)
            #expect(await TestClient.isRefused(listen))
            #expect(try await api.get("/proxies/redis").status == 404)
            #expect(try await api.delete("/proxies/redis").status == 404)
        }
    }

    @Test func toxicsAreAddedListedChangedAndRemovedInToxiproxysShape() async throws {
        try await withControlAPI { api, _ in
            _ = try await api.post("/proxies", #"{"name": "redis", "upstream": "127.0.0.1:6379"}"#)
            let added = try await api.post(
                "/proxies/redis/toxics",
                #"{"type": "latency", "attributes": {"latency": 100}}"#
            )
            #expect(added.status == 200)
            #expect(added.object["name"] as? String == "latency_downstream")
            #expect(added.object["stream"] as? String == "downstream")
            #expect(added.object["toxicity"] as? Double == 1)
            #expect(added.object["attributes"] as? [String: Int] == ["latency": 100, "jitter": 0])

            let twice = try await api.post("/proxies/redis/toxics", #"{"type": "latency"}"#)
            #expect(twice.status == 409)
            #expect(twice.object["error"] as? String == "toxic already exists: latency_downstream")

            let listed = try await api.get("/proxies/redis/toxics")
            #expect((listed.array.first as? [String: Any])?["name"] as? String == "latency_downstream")
            #expect(((try await api.get("/proxies/redis")).object["toxics"] as? [Any])?.count == 1)
            #expect(try await api.get("/proxies/redis/toxics/latency_downstream").status == 200)

            let changed = try await api.post(
                "/proxies/redis/toxics/latency_downstream",
                #"{"attributes": {"jitter": 10}, "toxicity": 0.5}"#
            )
            #expect(changed.status == 200)
            #expect(changed.object["attributes"] as? [String: Int] == ["latency": 100, "jitter": 10])
            #expect(changed.object["toxicity"] as? Double == 0.5)

            let removed = try await api.delete("/proxies/redis/toxics/latency_downstream")
            #expect(removed.status == 204)
            #expect(try await api.get("/proxies/redis/toxics").array.isEmpty)
            let gone = try await api.get("/proxies/redis/toxics/latency_downstream")
            #expect(gone.status == 404)
            #expect(gone.object["error"] as? String == "toxic not found: latency_downstream")
            #expect(try await api.delete("/proxies/redis/toxics/latency_downstream").status == 404)
            #expect(try await api.post("/proxies/redis/toxics/latency_downstream", "{}").status == 404)
        }
    }

    @Test(arguments: [
        (#"{"type": "lag"}"#, "unknown toxic type 'lag'"),
        (#"{"type": "latency", "attributes": {"latncy": 5}}"#, "no field 'latncy'"),
        (#"{"type": "latency", "stream": "sideways"}"#, "unknown stream 'sideways'"),
        (#"{"type": "latency", "toxicity": 2}"#, "toxicity is a share from 0 to 1"),
        (#"{"type": "latency", "attributes": {"latency": -1}}"#, "must not be negative"),
        (#"{"type": "loss"}"#, "acts on datagrams"),
        (#"{"attributes": {}}"#, "type"),
        ("nonsense", "not valid JSON"),
    ])
    func aBadToxicIsABadRequestSayingWhy(body: String, message: String) async throws {
        try await withControlAPI { api, _ in
            _ = try await api.post("/proxies", #"{"name": "redis", "upstream": "127.0.0.1:6379"}"#)
            let answer = try await api.post("/proxies/redis/toxics", body)
            #expect(answer.status == 400)
            #expect(answer.object["status"] as? Int == 400)
            #expect((answer.object["error"] as? String)?.contains(message) == true, "\(answer.text)")
        }
    }

    @Test func aToxicsTypeAndNameCannotChange() async throws {
        try await withControlAPI { api, _ in
            _ = try await api.post("/proxies", #"{"name": "redis", "upstream": "127.0.0.1:6379"}"#)
            _ = try await api.post("/proxies/redis/toxics", #"{"type": "latency", "name": "slow"}"#)
            #expect(try await api.post("/proxies/redis/toxics/slow", #"{"type": "bandwidth"}"#).status == 400)
            #expect(try await api.post("/proxies/redis/toxics/slow", #"{"name": "fast"}"#).status == 400)
            #expect(try await api.post("/proxies/redis/toxics/slow", #"{"attributes": {"rate": 1}}"#).status == 400)
            let upstream = try await api.post("/proxies/redis/toxics/slow", #"{"stream": "upstream"}"#)
            #expect(upstream.object["stream"] as? String == "upstream")
        }
    }

    @Test func aDownToxicTakesTheRouteDownAndResetBringsItBack() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        // A port no bind to port 0 can take while the route is down.
        let port = try await FreePort.find()
        try await withControlAPI { api, _ in
            let created = try await api.post(
                "/proxies",
                #"{"name": "redis", "listen": "127.0.0.1:\#(port)", "upstream": "\#(upstream.endpoint)"}"#
            )
            let listen = try Endpoint(parsing: try #require(created.object["listen"] as? String))
            _ = try await api.post("/proxies/redis/toxics", #"{"type": "down", "name": "outage"}"#)
            #expect(await TestClient.isRefused(listen))
            // Toxiproxy's `enabled` stays true under a toxic.
            #expect(try await api.get("/proxies/redis").object["enabled"] as? Bool == true)
            _ = try await api.post("/proxies/redis", #"{"enabled": false}"#)

            let reset = try await api.post("/reset", "")
            #expect(reset.status == 204)
            let after = try await api.get("/proxies/redis")
            #expect(after.object["enabled"] as? Bool == true)
            #expect((after.object["toxics"] as? [Any])?.isEmpty == true)
            #expect(after.object["listen"] as? String == "\(listen)")
            #expect(try await TestClient.exchange(listen, "back").reply == "back")
        }
    }

    @Test func populateCreatesKeepsAndReplacesAsToxiproxyDoes() async throws {
        try await withControlAPI { api, _ in
            let first = try await api.post("/proxies", #"{"name": "kept", "upstream": "127.0.0.1:6379"}"#)
            let keptListen = try #require(first.object["listen"] as? String)
            _ = try await api.post("/proxies", #"{"name": "moved", "upstream": "127.0.0.1:6379"}"#)
            let populated = try await api.post(
                "/populate",
                """
                [{"name": "kept", "upstream": "127.0.0.1:6379", "listen": "\(keptListen)"},
                 {"name": "moved", "upstream": "127.0.0.1:6380"},
                 {"name": "new", "upstream": "127.0.0.1:6381", "enabled": false}]
                """
            )
            #expect(populated.status == 201)
            let proxies = try #require(populated.object["proxies"] as? [[String: Any]])
            #expect(proxies.map { $0["name"] as? String } == ["kept", "moved", "new"])
            #expect(proxies[0]["listen"] as? String == keptListen)
            #expect(proxies[1]["upstream"] as? String == "127.0.0.1:6380")
            #expect(proxies[2]["enabled"] as? Bool == false)
            #expect(try await api.get("/proxies").object.count == 3)
        }
    }

    @Test func populateChecksEveryProxyBeforeCreatingAny() async throws {
        try await withControlAPI { api, _ in
            let answer = try await api.post(
                "/populate",
                #"{"proxies": [{"name": "a", "upstream": "127.0.0.1:1"}, {"name": "b"}]}"#
            )
            #expect(answer.status == 400)
            #expect(answer.object["error"] as? String == "missing required field: upstream at proxy 2")
            #expect(try await api.get("/proxies").object.isEmpty)
            #expect(try await api.post("/populate", #"{"name": "a"}"#).status == 400)
        }
    }

    @Test func populateAnswersTheProxiesDoneBeforeOneThatFailed() async throws {
        let taken = try await TestServer.start(.echo)
        defer { Task { await taken.stop() } }
        try await withControlAPI { api, _ in
            let answer = try await api.post(
                "/populate",
                """
                [{"name": "a", "upstream": "127.0.0.1:1"},
                 {"name": "b", "upstream": "127.0.0.1:1", "listen": "\(taken.endpoint)"}]
                """
            )
            #expect(answer.status == 500)
            #expect((answer.object["error"] as? String)?.contains("cannot listen on \(taken.endpoint)") == true)
            #expect((answer.object["proxies"] as? [[String: Any]])?.map { $0["name"] as? String } == ["a"])
        }
    }

    @Test func theModeEndpointsSayAndSwitchEachRoutesMode() async throws {
        try await withControlAPI { api, _ in
            _ = try await api.post("/proxies", #"{"name": "redis", "upstream": "127.0.0.1:6379"}"#)
            let mode = try await api.get("/tapedeck/mode")
            #expect(mode.object["mode"] as? String == "proxy")
            #expect(mode.object["routes"] as? [String: String] == ["redis": "proxy"])
            for (body, message) in [
                (#"{"mode": "rewind"}"#, "invalid mode 'rewind'"),
                (#"{"mode": "auto"}"#, "invalid mode 'auto'"),
                (#"{"mode": "proxy", "fast": true}"#, "unknown field 'fast'"),
                ("{}", "missing required field: mode"),
                (#"{"mode": "record"}"#, "needs a tape"),
            ] {
                let answer = try await api.post("/tapedeck/routes/redis/mode", body)
                #expect(answer.status == 400)
                #expect((answer.object["error"] as? String)?.contains(message) == true, "\(answer.text)")
            }
            let same = try await api.post("/tapedeck/routes/redis/mode", #"{"mode": "proxy"}"#)
            #expect(same.status == 200)
            #expect(same.object["mode"] as? String == "proxy")
        }
    }

    @Test func theReportListsTheReplayAndTheFaultsThatFired() async throws {
        try await withControlAPI { api, _ in
            let report = try await api.get("/tapedeck/report")
            #expect(report.status == 200)
            #expect(report.object["connections"] as? Int == 0)
            #expect((report.object["faults"] as? [Any])?.isEmpty == true)
            #expect(report.object["faults_total"] as? Int == 0)
            let sessions = try await api.get("/tapedeck/sessions")
            #expect(sessions.object["routes"] as? [String: Any] != nil)
        }
    }
}

// MARK: Helpers

/// A deck with the control API on, in `mode`, and a router test client over its API; the deck is always stopped.
func withControlAPI(
    _ mode: TapedeckMode = .proxy,
    tape: String? = nil,
    routes: [Route] = [],
    _ body: @Sendable (ControlAPIClient, Deck) async throws -> Void
) async throws {
    var options = Deck.Options(onWarning: { _ in })
    options.api = .tcp(host: "127.0.0.1", port: 0)
    let deck = try await Deck.start(mode, tape: tape, routes: routes, options: options)
    do {
        let plane = try #require(deck.controlPlane)
        let app = Application(router: ControlAPI.router(for: plane))
        try await app.test(.router) { client in try await body(ControlAPIClient(client: client), deck) }
        try await deck.stop(drainTimeout: .zero)
    } catch {
        _ = try? await deck.stop(drainTimeout: .zero)
        throw error
    }
}

/// Requests to the control API, with the answer's JSON at hand.
struct ControlAPIClient: Sendable {
    let client: any TestClientProtocol

    /// An answer: status, text, and the JSON read as an object or an array.
    struct Answer: Sendable {
        var status: Int
        var text: String
        var bytes: [UInt8] = []
        var contentType: String?

        var object: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        }

        var array: [Any] {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [Any] ?? []
        }
    }

    func get(_ uri: String) async throws -> Answer { try await send(.get, uri, nil) }
    func get(_ uri: String, host: String) async throws -> Answer { try await send(.get, uri, nil, host: host) }
    func post(_ uri: String, _ body: String) async throws -> Answer { try await send(.post, uri, body) }
    func patch(_ uri: String, _ body: String) async throws -> Answer { try await send(.patch, uri, body) }
    func delete(_ uri: String) async throws -> Answer { try await send(.delete, uri, nil) }

    private func send(
        _ method: HTTPRequest.Method,
        _ uri: String,
        _ body: String?,
        host: String? = nil
    ) async throws -> Answer {
        // HTTP/1.1's Host header is the request's authority in Hummingbird's request head.
        var headers: HTTPFields = [:]
        if let host { headers[HTTPField.Name("Host")!] = host }
        return try await client.execute(
            uri: uri,
            method: method,
            headers: headers,
            body: body.map { ByteBuffer(string: $0) }
        ) { response in
            Answer(
                status: response.status.code,
                text: String(buffer: response.body),
                bytes: Array(buffer: response.body),
                contentType: response.headers[.contentType]
            )
        }
    }
}
