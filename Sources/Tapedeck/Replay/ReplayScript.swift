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
    /// - Parameter listenAddress: The recording listener's address as clients wrote it, normalized in the
    ///   client's bytes exactly as replay normalizes its own listener's address in what clients send.
    init(sessionID: Int64, events: [EventRecord], listenAddress: ListenAddressText? = nil) {
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
            listenAddress: listenAddress
        )
    }

    /// Builds the script of a session from its indexed events: upstream payloads left in the tape become
    /// `.stored` sends, read when they are due.
    init(sessionID: Int64, indexed events: [IndexedEvent], listenAddress: ListenAddressText? = nil) {
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
        for event in events {
            switch (event.direction, event.kind) {
            case (.clientToUpstream, .data):
                let payload = event.payload ?? Data()
                client.append(listenAddress?.normalize(payload) ?? payload)
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
            }
        }
        // The sends share the upstream stream's storage: a session's upstream bytes are held once, and building
        // the script is linear in its size (appending each send to the one before copied it again and again).
        for (index, range) in sendRanges {
            steps[index].action = .send(
                .inline(upstream[(upstream.startIndex + range.lowerBound)..<(upstream.startIndex + range.upperBound)])
            )
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
