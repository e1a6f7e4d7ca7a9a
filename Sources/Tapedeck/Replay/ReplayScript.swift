import Foundation

/// One recorded session, reshaped for playing back: the bytes the client is expected to send as one stream,
/// and what the upstream did, each step tied to how much of the client's stream had arrived by then.
///
/// Chunk boundaries are gone on purpose: replay compares byte streams, never reads.
struct ReplayScript: Sendable {
    /// A thing the upstream did, due once the client has sent `clientPosition` bytes.
    struct Step: Sendable, Equatable {
        enum Action: Sendable, Equatable {
            /// Send these bytes to the client.
            case send(UpstreamBytes)
            /// Shut down the write half (FIN); the client may go on sending.
            case halfClose
            /// Close the connection.
            case close
            /// Reset the connection.
            case reset
        }

        var clientPosition: Int
        /// The upstream did this only after the client had shut down its write half or closed.
        var afterClientEnd: Bool
        /// When it happened, in nanoseconds since the session started.
        var offset: Int64
        var action: Action
        /// Stretches of a held send that replay fills with live values (echoes of the client's volatile
        /// values, supplied secrets).
        var edits: [UpstreamEdit] = []
    }

    /// What a session's script is built with besides its events: the route's rules for the client's stream (and
    /// the recording listener's address), and where the recorder wrote placeholders.
    struct Rules: Sendable {
        /// The route's rules for the client's stream, with the address of the listener the session was recorded
        /// on.
        var client: CompiledRules
        /// The placeholders in the client's events, by event sequence number: where each starts, how long.
        var clientRedactions: [Int64: [Range<Int>]] = [:]
        /// The placeholders in the upstream's events that replay fills with a secret, by event sequence number.
        var upstreamSecrets: [Int64: [(range: Range<Int>, secret: String)]] = [:]
    }

    /// The session's id in the tape.
    var sessionID: Int64
    /// Everything the client sent, in order.
    var clientStream: Data
    /// What the upstream did, in order.
    var steps: [Step]
    /// Whether the client shut down its write half or closed, and after how many bytes.
    var clientEndsAt: Int?
    /// The client reset the connection at the end of its stream.
    var clientResets: Bool
    /// The recorded upstream connect failed: reset the client after `connectFailureDelay`.
    var connectFailed: Bool
    var connectFailureDelay: Int64
    /// The upstream bytes held in memory, in order: each `.inline` send is a slice of it. All of the session's
    /// upstream bytes unless some were left in the tape (`.stored` sends).
    var upstreamStream: Data
    /// How many bytes the upstream sent in all, held or not.
    var upstreamByteCount: Int

    /// Whether some of the upstream's bytes were left in the tape, to be read when due.
    var hasStoredSends: Bool { upstreamByteCount > upstreamStream.count }
    /// When the client's bytes arrived: the stream length after each client read, and its offset.
    var clientArrivals: [(end: Int, offset: Int64)]
    /// Where the client's exchanges start, ascending: 0, and every point of its stream at which the upstream
    /// sent something (a reply to what came before; what the client sent next began a new exchange).
    var exchangeStarts: [Int]

    /// Builds the script of a session from its events, every payload held in memory.
    ///
    /// - Parameter rules: The route's rules and the recording listener's address, whose spans in the client's
    ///   stream are replaced by tokens exactly as replay replaces them in what a live client sends.
    init(sessionID: Int64, events: [EventRecord], rules: Rules? = nil) {
        self.init(
            sessionID: sessionID,
            indexed: events.map { event in
                IndexedEvent(
                    sessionID: event.sessionID,
                    seq: event.seq,
                    offsetNanoseconds: event.offsetNanoseconds,
                    direction: event.direction,
                    kind: event.kind,
                    payload: event.payload,
                    size: event.payload?.count ?? 0
                )
            },
            rules: rules
        )
    }

    /// Builds the script of a session from its indexed events: upstream payloads left in the tape become
    /// `.stored` sends, read when they are due.
    ///
    /// - Parameter lens: The route's protocol lens: the client's stream is compared in its canonical form, as a
    ///   live client's is, before the rules apply to it.
    init(sessionID: Int64, indexed events: [IndexedEvent], rules: Rules? = nil, lens: (any StreamLens)? = nil) {
        self.sessionID = sessionID
        var client = Data()
        var upstream = Data()
        var upstreamCount = 0
        var steps: [Step] = []
        var clientEndsAt: Int?
        var clientResets = false
        var connectFailed = false
        var connectFailureDelay: Int64 = 0
        var arrivals: [(end: Int, offset: Int64)] = []
        var ended = false
        var sendRanges: [(step: Int, bytes: Range<Int>)] = []
        var forced: [CompiledRules.Span] = []
        var secretEdits: [(step: Int, edit: UpstreamEdit)] = []
        for event in events {
            switch (event.direction, event.kind) {
            case (.clientToUpstream, .data):
                for range in rules?.clientRedactions[event.seq] ?? [] {
                    let start = client.count + range.lowerBound
                    forced.append(.init(range: start..<(start + range.count), meaning: .redact(rule: -1)))
                }
                client.append(event.payload ?? Data())
                arrivals.append((client.count, event.offsetNanoseconds))
            case (.clientToUpstream, .halfClose), (.clientToUpstream, .close):
                if clientEndsAt == nil { clientEndsAt = client.count }
                ended = true
            case (.clientToUpstream, .reset):
                if clientEndsAt == nil { clientEndsAt = client.count }
                clientResets = true
                ended = true
            case (.upstreamToClient, .data):
                // Each recorded send stays a step of its own, with its own time, so that `--pace recorded` keeps
                // the gaps between them (pub/sub messages a second apart). Its bytes are filled in below, as a
                // slice of the upstream stream.
                guard event.size > 0 else { break }
                upstreamCount += event.size
                let bytes: UpstreamBytes
                if event.isStored {
                    bytes = .stored(StoredPayload(sessionID: event.sessionID, seq: event.seq, bytes: 0..<event.size))
                } else {
                    let start = upstream.count
                    upstream.append(event.payload ?? Data())
                    sendRanges.append((steps.count, start..<upstream.count))
                    bytes = .inline(Data())
                    for site in rules?.upstreamSecrets[event.seq] ?? [] where site.range.upperBound <= event.size {
                        secretEdits.append((steps.count, UpstreamEdit(range: site.range, source: .secret(site.secret))))
                    }
                }
                steps.append(
                    Step(
                        clientPosition: client.count,
                        afterClientEnd: ended,
                        offset: event.offsetNanoseconds,
                        action: .send(bytes)
                    )
                )
            case (.upstreamToClient, .halfClose):
                steps.append(
                    Step(
                        clientPosition: client.count,
                        afterClientEnd: ended,
                        offset: event.offsetNanoseconds,
                        action: .halfClose
                    )
                )
            case (.upstreamToClient, .close):
                steps.append(
                    Step(
                        clientPosition: client.count,
                        afterClientEnd: ended,
                        offset: event.offsetNanoseconds,
                        action: .close
                    )
                )
            case (.upstreamToClient, .reset):
                steps.append(
                    Step(
                        clientPosition: client.count,
                        afterClientEnd: ended,
                        offset: event.offsetNanoseconds,
                        action: .reset
                    )
                )
            case (_, .connectFailed):
                connectFailed = true
                connectFailureDelay = event.offsetNanoseconds
            case (_, .refused):
                // A datagram refusal belongs to a UDP flow, which replays from its own book, never a script.
                break
            case (_, .fault):
                // A note of the toxic that acted; what it did is in the events around it, which replay as they are.
                break
            }
        }
        // The sends share the upstream stream's storage: a session's upstream bytes are held once, and building
        // the script is linear in its size (appending each send to the one before copied it again and again).
        for (index, range) in sendRanges {
            steps[index].action = .send(
                .inline(upstream[(upstream.startIndex + range.lowerBound)..<(upstream.startIndex + range.upperBound)])
            )
        }
        for (step, edit) in secretEdits { steps[step].edits.append(edit) }
        if let lens {
            let canonical = lens.canonicalize(client)
            if !canonical.replacements.isEmpty {
                Self.move(&steps, &arrivals, &clientEndsAt, to: canonical)
                // A redaction inside a replaced message went with it; one outside moves with the stream.
                forced = forced.compactMap { span in
                    guard !canonical.replacements.contains(where: { $0.raw.overlaps(span.range) }) else { return nil }
                    var cursor = 0
                    let start = canonical.normalizedPosition(ofRaw: span.range.lowerBound, cursor: &cursor)
                    return CompiledRules.Span(range: start..<(start + span.range.count), meaning: span.meaning)
                }
                client = canonical.bytes
            }
        }
        if let rules, !rules.client.isEmpty || !forced.isEmpty {
            // Replay compares normalized streams: positions in the raw stream move to where they land there.
            let normalized = StreamNormalizer.normalize(client, rules: rules.client, forced: forced)
            if !normalized.replacements.isEmpty {
                Self.move(&steps, &arrivals, &clientEndsAt, to: normalized)
                Self.findEchoes(of: normalized, in: client, steps: &steps, sendRanges: sendRanges, upstream: upstream)
                client = normalized.bytes
            }
        }
        self.clientStream = client
        self.upstreamStream = upstream
        self.upstreamByteCount = upstreamCount
        self.steps = steps
        self.clientEndsAt = clientEndsAt
        self.clientResets = clientResets
        self.connectFailed = connectFailed
        self.connectFailureDelay = connectFailureDelay
        self.clientArrivals = arrivals
        var starts = [0]
        for step in steps where !step.afterClientEnd && step.clientPosition > starts[starts.count - 1] {
            if case .send = step.action { starts.append(step.clientPosition) }
        }
        self.exchangeStarts = starts
    }

    /// What a protocol lens recognizes the session by (see ``LensRecognizer``): the start of the client's stream,
    /// and of the upstream's when its first send is held in memory.
    var opening: (client: Data, upstream: Data) {
        let firstSend = steps.first { if case .send = $0.action { return true } else { return false } }
        var upstream = Data()
        if case .send(.inline(let bytes)) = firstSend?.action {
            upstream = Data(bytes.prefix(LensRecognizer.openingLength))
        }
        return (Data(clientStream.prefix(LensRecognizer.openingLength)), upstream)
    }

    /// Moves positions in the raw client stream to where they land in its normalized form.
    private static func move(
        _ steps: inout [Step],
        _ arrivals: inout [(end: Int, offset: Int64)],
        _ clientEndsAt: inout Int?,
        to normalized: StreamNormalizer.Whole
    ) {
        var cursor = 0
        for index in steps.indices {
            steps[index].clientPosition = normalized.normalizedPosition(
                ofRaw: steps[index].clientPosition,
                cursor: &cursor
            )
        }
        cursor = 0
        for index in arrivals.indices {
            arrivals[index].end = normalized.normalizedPosition(ofRaw: arrivals[index].end, cursor: &cursor)
        }
        if let end = clientEndsAt {
            cursor = 0
            clientEndsAt = normalized.normalizedPosition(ofRaw: end, cursor: &cursor)
        }
    }

    /// How many of the sends after a volatile client value are searched for its echo.
    static let echoSearchSteps = 64

    /// Marks where the upstream echoed a volatile value of the client's: each occurrence of the recorded value in
    /// a held send due after the client sent it becomes an edit that replay fills with the live value.
    private static func findEchoes(
        of normalized: StreamNormalizer.Whole,
        in raw: Data,
        steps: inout [Step],
        sendRanges: [(step: Int, bytes: Range<Int>)],
        upstream: Data
    ) {
        for replacement in normalized.replacements {
            guard case .volatile = replacement.meaning, replacement.raw.count >= UpstreamEdit.echoMinimumLength else {
                continue
            }
            let value = raw[
                (raw.startIndex + replacement.raw.lowerBound)..<(raw.startIndex + replacement.raw.upperBound)
            ]
            let after = sendRanges.drop { steps[$0.step].clientPosition < replacement.normalized.upperBound }
            for (step, bytes) in after.prefix(echoSearchSteps) {
                let send = upstream[(upstream.startIndex + bytes.lowerBound)..<(upstream.startIndex + bytes.upperBound)]
                var from = send.startIndex
                while let found = send.range(of: value, in: from..<send.endIndex) {
                    let range = (found.lowerBound - send.startIndex)..<(found.upperBound - send.startIndex)
                    if !steps[step].edits.contains(where: { $0.range.overlaps(range) }) {
                        steps[step].edits.append(
                            UpstreamEdit(
                                range: range,
                                source: .clientValue(position: replacement.normalized.lowerBound)
                            )
                        )
                    }
                    from = found.upperBound
                }
            }
        }
    }

    /// The start of the exchange that the client's byte at `position` belongs to; `position` itself if an
    /// exchange starts there.
    func exchangeStart(atOrBefore position: Int) -> Int {
        var low = 0
        var high = exchangeStarts.count
        while low < high {
            let middle = (low + high) / 2
            if exchangeStarts[middle] <= position { low = middle + 1 } else { high = middle }
        }
        return exchangeStarts[max(0, low - 1)]
    }

    /// The index of the first step not yet due when the client has sent exactly `position` bytes.
    func firstStep(after position: Int) -> Int {
        steps.firstIndex { $0.clientPosition > position || $0.afterClientEnd } ?? steps.count
    }

    /// When, in the recording, the client had sent `position` bytes: the moment a step due at that position
    /// became due. Zero for position 0, the session's start.
    func recordedArrival(ofPosition position: Int) -> Int64 {
        guard position > 0 else { return 0 }
        // Arrivals are in stream order; the first read that reached `position` made it due.
        var low = 0
        var high = clientArrivals.count
        while low < high {
            let middle = (low + high) / 2
            if clientArrivals[middle].end < position { low = middle + 1 } else { high = middle }
        }
        return low < clientArrivals.count ? clientArrivals[low].offset : (clientArrivals.last?.offset ?? 0)
    }

    /// Whether the session was a readiness probe: a connection that opened and closed without a byte either
    /// way (`nc -z`, a health check). Replay does not require such a session to be replayed.
    var isProbe: Bool {
        clientStream.isEmpty && upstreamByteCount == 0 && !connectFailed
            && !steps.contains { $0.action == .reset }
    }
}
