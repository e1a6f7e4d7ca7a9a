import Foundation

/// One recorded session read as a conversation, for comparing tapes: its exchanges (what the client sent, then what
/// the upstream answered), each direction normalized as replay compares it, and how it ended.
struct RecordedConversation: Sendable {
    /// One exchange: the client's bytes, then the upstream's answer.
    struct Exchange: Sendable, Equatable {
        var client = Data()
        var upstream = Data()
    }

    var id: Int64
    var route: String
    var exchanges: [Exchange]
    /// The client's whole stream, normalized: what pairs sessions.
    var clientKey: Data
    var clientBytes: Int
    /// How it ended: the outcome, and the kinds of its events other than data, in order.
    var ending: String

    /// Every session of `tape`, probes included, in recording order.
    ///
    /// - Throws: ``TapedeckError`` when the tape cannot be read or a stored rule does not compile.
    static func all(in tape: Tape) throws -> [RecordedConversation] {
        var listens: [Int64: Endpoint] = [:]
        for route in try tape.routes() {
            if let id = route.id, let endpoint = try? Endpoint(parsing: route.listen) { listens[id] = endpoint }
        }
        var compiled: [String: (client: CompiledRules, upstream: CompiledRules)] = [:]
        func rules(route: String, listen: Endpoint?) throws -> (client: CompiledRules, upstream: CompiledRules) {
            let key = route + "\u{0}" + (listen.map { "\($0)" } ?? "")
            if let found = compiled[key] { return found }
            let list = try tape.rules(ofRoute: route)
            let made = (
                client: try CompiledRules(
                    list,
                    direction: .clientToUpstream,
                    listen: listen.flatMap(ListenAddressText.init)
                ),
                upstream: try CompiledRules(list, direction: .upstreamToClient)
            )
            compiled[key] = made
            return made
        }
        // One read of the sessions: their rows have the route id that finds the listen address, and all a
        // conversation needs besides.
        let sessions = try tape.sessions()
        var events: [Int64: [EventRecord]] = [:]
        try tape.forEachEventInOrder { events[$0.sessionID, default: []].append($0) }
        return try sessions.compactMap { session in
            guard let id = session.id else { return nil }
            let rules = try rules(route: session.route, listen: listens[session.routeID])
            return RecordedConversation(session: session, id: id, events: events[id] ?? [], rules: rules)
        }
    }

    init(
        session: SessionRecord,
        id: Int64,
        events: [EventRecord],
        rules: (client: CompiledRules, upstream: CompiledRules)
    ) {
        self.id = id
        route = session.route
        // Exchanges are cut where drift cuts them: the client speaking after the upstream answered begins the next.
        exchanges = DriftPlan(sessionID: id, route: session.route, events: events).exchanges.map { exchange in
            Exchange(
                client: StreamNormalizer.normalize(exchange.client, rules: rules.client).bytes,
                upstream: StreamNormalizer.normalize(exchange.upstream, rules: rules.upstream).bytes
            )
        }
        clientKey = exchanges.reduce(into: Data()) { $0.append($1.client) }
        clientBytes = Int(Tape.dataBytes(events, .clientToUpstream))
        let endings = events.filter { $0.kind != .data }.map {
            "\($0.direction == .clientToUpstream ? "client" : "upstream") \($0.kind.rawValue)"
        }
        ending = ([session.outcome.rawValue] + endings).joined(separator: ", ")
    }

    /// How many bytes the two client streams share from the start.
    func sharedStart(with other: RecordedConversation) -> Int {
        zip(clientKey, other.clientKey).prefix { $0 == $1 }.count
    }

    /// This session as one found in one tape only.
    var lone: TapeDiff.Lone {
        TapeDiff.Lone(session: id, route: route, clientBytes: clientBytes)
    }

    /// The first exchange, direction and byte where `other` differs, or nil when the conversations are equal.
    func firstDifference(from other: RecordedConversation) -> TapeDiff.Change? {
        for index in 0..<max(exchanges.count, other.exchanges.count) {
            let mine = index < exchanges.count ? exchanges[index] : Exchange()
            let theirs = index < other.exchanges.count ? other.exchanges[index] : Exchange()
            for (direction, one, two) in [
                (Direction.clientToUpstream, mine.client, theirs.client),
                (Direction.upstreamToClient, mine.upstream, theirs.upstream),
            ] where one != two {
                let offset = zip(one, two).prefix { $0 == $1 }.count
                return TapeDiff.Change(
                    a: id,
                    b: other.id,
                    route: route,
                    exchange: index + 1,
                    direction: direction.rawValue,
                    offset: offset,
                    aExcerpt: Self.excerpt(one, at: offset),
                    bExcerpt: Self.excerpt(two, at: offset)
                )
            }
        }
        guard ending == other.ending else {
            return TapeDiff.Change(
                a: id,
                b: other.id,
                route: route,
                exchange: exchanges.count,
                direction: "end",
                offset: 0,
                aExcerpt: ending,
                bExcerpt: other.ending
            )
        }
        return nil
    }

    /// The bytes around `offset`: up to 16 before it and 48 from it, rendered.
    static func excerpt(_ bytes: Data, at offset: Int) -> String {
        let start = max(0, offset - 16)
        let end = min(bytes.count, offset + 48)
        guard start < end else { return "" }
        return ByteExcerpt.render(bytes[(bytes.startIndex + start)..<(bytes.startIndex + end)])
    }
}
