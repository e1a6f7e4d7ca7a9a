import Foundation

/// What a drift check re-issues for one recorded session: the client's bytes exchange by exchange, what the
/// upstream answered to each, and how each side ended.
///
/// An exchange is what the client sent, then what the upstream answered, as ``TapeDiff`` counts them: the client
/// speaking after the upstream answered begins the next one. A session the upstream opens (a greeting) starts with
/// an exchange whose client bytes are empty. The client's bytes are the recorded ones, as they reached the
/// upstream; the answers are kept raw, and normalized by the route's rules when compared.
struct DriftPlan: Sendable, Equatable {
    /// One exchange: the client's bytes, then the upstream's answer.
    struct Exchange: Sendable, Equatable {
        /// What the client sent, as its reads (its datagrams, on UDP, each sent as one).
        var clientParts: [Data] = []
        /// What the upstream answered, raw.
        var upstream = Data()
        /// The client shut down its write half (or closed) once it had sent this exchange's bytes, before the
        /// answer: a re-issue shuts down its write half there too, and still reads the answer.
        var clientEndsBeforeAnswer = false

        /// What the client sent, as the upstream received it: its reads one after the other.
        var client: Data {
            clientParts.count == 1 ? clientParts[0] : Data(clientParts.joined())
        }
    }

    /// How the client ended a session.
    enum ClientEnding: String, Sendable, Equatable {
        case halfClose = "half-close"
        case close
        case reset
    }

    /// How the upstream ended a session before the client did.
    enum UpstreamEnding: String, Sendable, Equatable {
        case closed
        case reset
    }

    var sessionID: Int64
    var route: String
    var exchanges: [Exchange]
    /// How the client ended, if it did.
    var clientEnding: ClientEnding?
    /// How the upstream ended, when it did so before the client ended: a re-issue expects the same.
    var upstreamEnding: UpstreamEnding?
    /// How long after the conversation's last bytes the upstream ended, in nanoseconds: an idle timeout of a
    /// minute is nothing a re-issue waits for.
    var upstreamEndingDelay: Int64 = 0
    /// The recorded connect failed: the upstream refused it or did not answer.
    var connectFailed: Bool
    /// A UDP flow: each client read is a datagram, and nothing ends but the flow.
    var isDatagram: Bool

    /// Builds the plan of a session from its events, in order.
    init(sessionID: Int64, route: String, events: [EventRecord], isDatagram: Bool = false) {
        self.sessionID = sessionID
        self.route = route
        self.isDatagram = isDatagram
        var exchanges: [Exchange] = []
        var current = Exchange()
        var clientEnding: ClientEnding?
        var upstreamEnding: UpstreamEnding?
        var connectFailed = false
        var upstreamEndingDelay: Int64 = 0
        var lastData: Int64 = 0
        for event in events {
            if event.kind == .data, event.payload?.isEmpty == false { lastData = event.offsetNanoseconds }
            switch (event.direction, event.kind) {
            case (.clientToUpstream, .data):
                guard let payload = event.payload, !payload.isEmpty else { break }
                if !current.upstream.isEmpty || current.clientEndsBeforeAnswer {
                    exchanges.append(current)
                    current = Exchange()
                }
                current.clientParts.append(payload)
            case (.upstreamToClient, .data):
                current.upstream.append(event.payload ?? Data())
            case (.clientToUpstream, .halfClose), (.clientToUpstream, .close), (.clientToUpstream, .reset):
                guard clientEnding == nil else { break }
                clientEnding =
                    event.kind == .reset ? .reset : event.kind == .close ? .close : .halfClose
                // Ending before the answer matters only when an answer follows; the plan's end says the rest.
                if current.upstream.isEmpty, !current.clientParts.isEmpty { current.clientEndsBeforeAnswer = true }
            case (.upstreamToClient, .halfClose), (.upstreamToClient, .close), (.upstreamToClient, .reset):
                if clientEnding == nil, upstreamEnding == nil {
                    upstreamEnding = event.kind == .reset ? .reset : .closed
                    upstreamEndingDelay = max(0, event.offsetNanoseconds - lastData)
                }
            case (_, .connectFailed):
                connectFailed = true
            case (_, .refused), (_, .fault):
                // A datagram refusal belongs to a UDP flow; a fault note's effect is in the events around it.
                break
            }
        }
        if current != Exchange() { exchanges.append(current) }
        // A client that ended before an answer that never came: nothing to read, so no early shutdown either.
        if let last = exchanges.indices.last, exchanges[last].upstream.isEmpty {
            exchanges[last].clientEndsBeforeAnswer = false
        }
        self.exchanges = exchanges
        // A flow ends when it goes idle, on either side's account: there is no ending to do again or expect.
        self.clientEnding = isDatagram ? nil : clientEnding
        self.upstreamEnding = isDatagram ? nil : upstreamEnding
        self.upstreamEndingDelay = upstreamEndingDelay
        self.connectFailed = connectFailed
    }
}
