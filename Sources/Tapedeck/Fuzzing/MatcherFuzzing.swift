import Foundation

/// The fuzz harness for replay matching: client streams, chunked at random, against a route's catalog of
/// recorded sessions shaped like the ones real protocols leave on tape.
///
/// The matcher decides from untrusted bytes (whatever the client under test sends) over a catalog shared by
/// every connection of a route, so it must never trap, and its answers must stay well formed whatever the
/// client does: nothing after the connection's end, an end only as the last action, no negative delays.
enum MatcherFuzzing {
    /// How many operations (connects, writes, ends, closes) one input may run.
    static let operationLimit = 256

    /// How many connections may be open at once.
    static let connectionLimit = 4

    /// Plays `data` as a script of operations against a catalog chosen by its first bytes. Returns the first
    /// problem seen.
    ///
    /// The input reads as: flags (repeat, pace), which of the ``library`` sessions the catalog holds, up to
    /// three sessions of its own, the chunk sizes with which every session's own client is played against it
    /// alone, and then operations on up to ``connectionLimit`` connections at once.
    static func run(_ data: Data) -> FuzzFinding? {
        var input = FuzzInput(data)
        let flags = input.byte()
        let repeatable = flags & 1 == 1
        let paces: [ReplayPace] = [.fast, .recorded(factor: 1), .recorded(factor: 0.5), .recorded(factor: 4)]
        let pace = paces[Int(flags >> 1) % paces.count]
        let library = self.library
        let chosen = input.number(below: 1 << library.count)
        var scripts = library.indices.filter { chosen & (1 << $0) != 0 }.map { library[$0] }
        for extra in 0..<input.number(below: 4) {
            scripts.append(script(id: 100 + Int64(extra), from: &input))
        }
        let chunkSizes = (0..<4).map { _ in 1 + input.number(below: 16) }
        for script in scripts {
            let size: (Int) -> Int = { chunkSizes[$0 % chunkSizes.count] }
            if let finding = playOwnClient(of: script, chunkSize: size, pace: pace) { return finding }
        }
        return playConnections(&input, scripts: scripts, repeatable: repeatable, pace: pace)
    }

    /// One client connection as the harness sees it.
    private struct Connection {
        var matcher: ReplayMatcher
        /// Client bytes sent so far.
        var sent = 0
        var clientEnded = false
        /// The matcher answered with a close, a reset or a mismatch.
        var ended = false
        var mismatched = false
        var open = true
    }

    private static func playConnections(
        _ input: inout FuzzInput,
        scripts: [ReplayScript],
        repeatable: Bool,
        pace: ReplayPace
    ) -> FuzzFinding? {
        let catalog = SessionCatalog(scripts: scripts, repeatable: repeatable)
        let ids = Set(scripts.map(\.sessionID))
        var connections: [Connection] = []
        var operations = 0
        while !input.isAtEnd, operations < operationLimit {
            operations += 1
            let operation = input.byte()
            if operation % 8 < 2 {
                guard connections.filter(\.open).count < connectionLimit else { continue }
                var connection = Connection(matcher: ReplayMatcher(catalog: catalog, pace: pace))
                let actions = connection.matcher.start()
                if let finding = check(actions, of: &connection, pace: pace, doing: "start") { return finding }
                connections.append(connection)
                continue
            }
            let open = connections.indices.filter { connections[$0].open }
            guard !open.isEmpty else { continue }
            let index = open[input.number(below: open.count)]
            var connection = connections[index]
            defer { connections[index] = connection }
            switch operation % 8 {
            case 2, 3, 4:
                // Bytes some recorded client sent, from where this client is or from anywhere: the traffic a
                // replay sees, which mostly matches.
                guard !connection.clientEnded, !scripts.isEmpty else { continue }
                let stream = scripts[input.number(below: scripts.count)].clientStream
                let start = operation % 8 == 4 ? input.number(below: stream.count + 1) : connection.sent
                let count = 1 + input.number(below: 32)
                let chunk = Data(stream.dropFirst(start).prefix(count))
                guard !chunk.isEmpty else { continue }
                if let finding = receive(chunk, on: &connection, pace: pace) { return finding }
            case 5:
                guard !connection.clientEnded else { continue }
                let chunk = input.data(count: 1 + input.number(below: 32))
                guard !chunk.isEmpty else { continue }
                if let finding = receive(chunk, on: &connection, pace: pace) { return finding }
            case 6:
                guard !connection.clientEnded else { continue }
                connection.clientEnded = true
                let reset = input.flag()
                let actions = connection.matcher.endOfInput(reset: reset)
                if let finding = check(actions, of: &connection, pace: pace, doing: "end (reset \(reset))") {
                    return finding
                }
            default:
                if let finding = close(&connection, ids: ids) { return finding }
            }
        }
        for index in connections.indices where connections[index].open {
            if let finding = close(&connections[index], ids: ids) { return finding }
        }
        let unused = Set(catalog.unusedSessionIDs)
        let incomplete = Set(catalog.incompleteSessions.map(\.session))
        guard unused.isSubset(of: ids), incomplete.isSubset(of: ids), unused.isDisjoint(with: incomplete) else {
            return FuzzFinding("sessions \(ids.sorted()): unused \(unused.sorted()), in part \(incomplete.sorted())")
        }
        return nil
    }

    private static func receive(_ chunk: Data, on connection: inout Connection, pace: ReplayPace) -> FuzzFinding? {
        connection.sent += chunk.count
        let actions = connection.matcher.receive(chunk)
        return check(actions, of: &connection, pace: pace, doing: "receive \(ByteExcerpt.render(chunk))")
    }

    private static func close(_ connection: inout Connection, ids: Set<Int64>) -> FuzzFinding? {
        connection.open = false
        let replayed = connection.matcher.connectionClosed()
        if let replayed, connection.mismatched || !ids.contains(replayed) {
            return FuzzFinding(
                "a connection that mismatched \(connection.mismatched) counts session \(replayed) replayed"
            )
        }
        return nil
    }

    /// Whether `actions` are well formed for where `connection` is, and notes its end.
    private static func check(
        _ actions: [ReplayMatcher.Action],
        of connection: inout Connection,
        pace: ReplayPace,
        doing what: String
    ) -> FuzzFinding? {
        if connection.ended, !actions.isEmpty {
            return FuzzFinding("\(what): actions after the connection's end: \(actions)")
        }
        for (position, action) in actions.enumerated() {
            let delay: Int64
            switch action {
            case .send(let bytes, let after):
                guard !bytes.isEmpty else { return FuzzFinding("\(what): an empty send in \(actions)") }
                delay = after
            case .sendEdited(let bytes, _, let after):
                guard !bytes.isEmpty else { return FuzzFinding("\(what): an empty send in \(actions)") }
                delay = after
            case .halfClose(let after):
                delay = after
            case .close(let after), .reset(let after):
                delay = after
                connection.ended = true
            case .mismatch:
                delay = 0
                connection.ended = true
                connection.mismatched = true
            }
            if connection.ended, position != actions.count - 1 {
                return FuzzFinding("\(what): the connection ends before its last action: \(actions)")
            }
            guard delay >= 0, pace != .fast || delay == 0 else {
                return FuzzFinding("\(what): a delay of \(delay) ns at pace \(pace) in \(actions)")
            }
        }
        if connection.ended, !connection.matcher.finished {
            return FuzzFinding("\(what): the connection ended but the matcher goes on: \(actions)")
        }
        return nil
    }

    /// Plays `script`'s own client, in chunks of `chunkSize(n)` bytes for the n-th chunk, against a catalog of
    /// that session alone: it must match, and the client must hear exactly what the recorded upstream said, up
    /// to its close or reset.
    static func playOwnClient(of script: ReplayScript, chunkSize: (Int) -> Int, pace: ReplayPace) -> FuzzFinding? {
        let catalog = SessionCatalog(scripts: [script], repeatable: false)
        var connection = Connection(matcher: ReplayMatcher(catalog: catalog, pace: pace))
        var heard = Data()
        func play(_ actions: [ReplayMatcher.Action], doing what: String) -> FuzzFinding? {
            for case .send(let bytes, _) in actions { heard.append(bytes.heldBytes ?? Data()) }
            return check(actions, of: &connection, pace: pace, doing: "session \(script.sessionID): \(what)")
        }
        if let finding = play(connection.matcher.start(), doing: "start") { return finding }
        var position = 0
        var chunks = 0
        while position < script.clientStream.count {
            let size = max(1, chunkSize(chunks))
            chunks += 1
            let start = script.clientStream.startIndex + position
            let chunk = script.clientStream[start..<min(start + size, script.clientStream.endIndex)]
            position += chunk.count
            if let finding = play(connection.matcher.receive(Data(chunk)), doing: "receive") { return finding }
        }
        if script.clientEndsAt != nil {
            let ending = connection.matcher.endOfInput(reset: script.clientResets)
            if let finding = play(ending, doing: "end") { return finding }
        }
        if connection.mismatched {
            return FuzzFinding("session \(script.sessionID) does not match its own client")
        }
        let expected = script.connectFailed ? Data() : expectedReplies(of: script)
        guard heard == expected else {
            return FuzzFinding(
                "session \(script.sessionID) told its own client \(ByteExcerpt.render(heard)), "
                    + "recorded \(ByteExcerpt.render(expected))"
            )
        }
        return close(&connection, ids: [script.sessionID])
    }

    /// What the recorded upstream sent up to its close or reset; if the client reset its connection, only
    /// what it sent before that.
    private static func expectedReplies(of script: ReplayScript) -> Data {
        var replies = Data()
        for step in script.steps {
            if step.afterClientEnd && script.clientResets { break }
            switch step.action {
            case .send(let bytes): replies.append(bytes.heldBytes ?? Data())
            case .halfClose: continue
            case .close, .reset: return replies
            }
        }
        return replies
    }

    /// A session of the input's own: up to eight events of any kind, direction, payload and offset.
    private static func script(id: Int64, from input: inout FuzzInput) -> ReplayScript {
        var events: [EventRecord] = []
        for seq in 0..<input.number(below: 9) {
            let shape = input.byte()
            let kind = EventKind.allCases[Int(shape >> 1) % EventKind.allCases.count]
            // Mostly a millisecond apart, as recorded; sometimes any value a damaged tape can hold.
            let offset =
                shape & 0xF0 == 0xF0
                ? (0..<8).reduce(Int64(0)) { value, _ in value << 8 | Int64(input.byte()) }
                : Int64(seq) * 1_000_000
            events.append(
                EventRecord(
                    sessionID: id,
                    seq: Int64(seq),
                    offsetNanoseconds: offset,
                    direction: shape & 1 == 0 ? .clientToUpstream : .upstreamToClient,
                    kind: kind,
                    payload: kind == .data || kind == .connectFailed ? input.data(count: input.number(below: 17)) : nil
                )
            )
        }
        return ReplayScript(sessionID: id, events: events)
    }

    /// Sessions shaped like the ones real clients and servers leave on tape, as the matcher's tests use them.
    ///
    /// Built anew for each input: kept in a global, they would look leaked to LeakSanitizer, which does not
    /// recognize every reference Swift stores (enum payloads keep tag bits in their pointers).
    static var library: [ReplayScript] {
        typealias Step = (Direction, EventKind, String)
        func client(_ text: String) -> Step { (.clientToUpstream, .data, text) }
        func server(_ text: String) -> Step { (.upstreamToClient, .data, text) }
        let clientHalfClose: Step = (.clientToUpstream, .halfClose, "")
        let serverClose: Step = (.upstreamToClient, .close, "")
        let shapes: [[Step]] = [
            // Redis: PING, and GET.
            [client("*1\r\n$4\r\nPING\r\n"), server("+PONG\r\n"), clientHalfClose, serverClose],
            [client("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), server("$5\r\nhello\r\n"), clientHalfClose, serverClose],
            // Identical handshakes, then different queries.
            [client("HELLO\n"), server("WELCOME\n"), client("Q1\n"), server("R1\n")],
            [client("HELLO\n"), server("WELCOME\n"), client("Q2\n"), server("R2\n")],
            // A keep-alive pool's two connections.
            [client("GET /a\n"), server("A"), client("GET /b\n"), server("B"), clientHalfClose],
            [client("GET /c\n"), server("C"), client("GET /d\n"), server("D"), clientHalfClose],
            // A handshake with a salt per session, as PostgreSQL's md5.
            [client("HELLO\n"), server("SALT1\n"), client("PASS1\n"), server("OK\n"), client("QUERY 1\n")],
            [client("HELLO\n"), server("SALT2\n"), client("PASS2\n"), server("OK\n"), client("QUERY 2\n")],
            [client("HELLO\n"), server("SALT3\n"), client("PASS3\n"), server("OK\n"), client("QUERY 3\n")],
            // A server that speaks first.
            [server("220 ready\r\n"), client("QUIT\r\n"), server("221 bye\r\n"), serverClose],
            // A reply only after the client's half-close.
            [client("hello"), clientHalfClose, server("received 5"), serverClose],
            // Resets either way, a refused connect, and a client that left at once.
            [client("boom"), (.upstreamToClient, .reset, "")],
            [client("GET /a\n"), server("A"), (.clientToUpstream, .reset, "")],
            [(.upstreamToClient, .connectFailed, "connection refused")],
            [],
            // A transaction.
            [client("BEGIN\n"), server("ok\n"), client("INSERT\n"), server("1\n"), client("COMMIT\n"), server("ok\n")],
        ]
        return shapes.enumerated().map { index, steps in
            let id = Int64(index + 1)
            let events = steps.enumerated().map { seq, step in
                EventRecord(
                    sessionID: id,
                    seq: Int64(seq),
                    offsetNanoseconds: Int64(seq) * 1_000_000,
                    direction: step.0,
                    kind: step.1,
                    payload: step.1 == .data || step.1 == .connectFailed ? Data(step.2.utf8) : nil
                )
            }
            return ReplayScript(sessionID: id, events: events)
        }
    }
}
