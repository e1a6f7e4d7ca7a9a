import Foundation

/// One recorded UDP flow as replay answers from it: each datagram the client sent, with what the upstream sent
/// after it and before the client's next datagram.
struct RecordedFlow: Sendable {
    /// What the upstream did after a client datagram: a datagram, or a refusal (ICMP port unreachable).
    struct Reply: Sendable {
        /// Nanoseconds after the client datagram it followed.
        var delay: Int64
        /// The datagram; nil for a refusal.
        var payload: Data?
    }

    /// A client datagram and the upstream's datagrams that followed it.
    struct Exchange: Sendable {
        /// The client datagram as recorded (with placeholders where it was redacted).
        var request: Data
        /// The request normalized by the route's rules: what a live datagram must equal.
        var key: Data
        /// The request's volatile spans, for putting the live values into replies that echo them.
        var volatile: [Range<Int>]
        var replies: [Reply]
    }

    /// The session the flow is on the tape.
    var sessionID: Int64
    var exchanges: [Exchange]

    /// A flow from exchanges already made.
    init(sessionID: Int64, exchanges: [Exchange]) {
        self.sessionID = sessionID
        self.exchanges = exchanges
    }

    /// A recorded DNS-over-TCP session as a flow: each message the client sent is an exchange, and each message
    /// the upstream sent is a reply of the client's last message before it (RFC 1035 4.2.2 framing: a two-byte
    /// length before each message). A message is timed by the event that completed it.
    init(dnsStreamSessionID sessionID: Int64, events: [EventRecord]) {
        var client = DNSStreamFramer()
        var upstream = DNSStreamFramer()
        var exchanges: [Exchange] = []
        var requestOffset: Int64 = 0
        for event in events where event.kind == .data {
            let bytes = event.payload ?? Data()
            switch event.direction {
            case .clientToUpstream:
                for message in client.feed(bytes) {
                    exchanges.append(Exchange(request: Data(message), key: Data(message), volatile: [], replies: []))
                    requestOffset = event.offsetNanoseconds
                }
            case .upstreamToClient:
                for message in upstream.feed(bytes) where !exchanges.isEmpty {
                    exchanges[exchanges.count - 1].replies.append(
                        Reply(delay: max(0, event.offsetNanoseconds - requestOffset), payload: Data(message))
                    )
                }
            }
        }
        self.init(sessionID: sessionID, exchanges: exchanges)
    }

    /// Builds a flow from its events in order.
    ///
    /// - Parameters:
    ///   - rules: The route's client rules, as replay applies them.
    ///   - redactions: Where the recorder wrote placeholders in the client's datagrams, by event number.
    init(
        sessionID: Int64,
        events: [EventRecord],
        rules: CompiledRules,
        redactions: [Int64: [CompiledRules.Span]] = [:]
    ) {
        self.sessionID = sessionID
        var exchanges: [Exchange] = []
        var requestOffset: Int64 = 0
        for event in events {
            switch (event.direction, event.kind) {
            case (.clientToUpstream, .data):
                let request = event.payload ?? Data()
                let normalized = StreamNormalizer.normalize(
                    request,
                    rules: rules,
                    forced: redactions[event.seq] ?? []
                )
                exchanges.append(
                    Exchange(
                        request: request,
                        key: normalized.bytes,
                        volatile: normalized.replacements.compactMap {
                            if case .volatile = $0.meaning { return $0.raw }
                            return nil
                        },
                        replies: []
                    )
                )
                requestOffset = event.offsetNanoseconds
            case (.upstreamToClient, .data), (.upstreamToClient, .refused):
                // A flow begins with the client's datagram, so the upstream never speaks before one.
                guard !exchanges.isEmpty else { continue }
                exchanges[exchanges.count - 1].replies.append(
                    Reply(
                        delay: max(0, event.offsetNanoseconds - requestOffset),
                        payload: event.kind == .data ? event.payload ?? Data() : nil
                    )
                )
            default:
                continue
            }
        }
        self.exchanges = exchanges
    }
}
