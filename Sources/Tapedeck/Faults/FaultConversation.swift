import Logging
import NIOCore

/// One connection as its toxics see it: its order on the route, where the conversation is (which exchange, how
/// many bytes each way), what the client's current exchange contains, and the toxics of both its streams.
///
/// Both fault stages of a connection share it, on the connection's event loop. It counts exchanges from what
/// enters the stages, before any toxic: an exchange begins when the client speaks after hearing from the
/// upstream (or first), so `exchange: 2` is the second request of a request-response protocol, however its bytes
/// were split.
final class FaultConversation {
    /// Where a stage's events go once they come out of the toxics.
    protocol Stage: AnyObject {
        /// Events to pass on, in order, each when due.
        func enqueue(_ events: [FaultEvent])
    }

    /// The most client bytes of one exchange kept for `match` and `match_regex`.
    static let matchWindow = 64 * 1024

    let faults: RouteFaults
    /// The connection's order on the route, counting from 1.
    let ordinal: Int
    let client: String
    private let logger: Logger
    /// On replay, the recorded session serving the connection, once chosen.
    var recordedSession: Int64?
    /// When recording: where each toxic that acts is noted, so that the tape says which fault the client met.
    var recorder: SessionRecorder?

    private(set) var exchange = 0
    private var upstreamSpokeLast = true
    private var streamOffsets = (upstream: 0, downstream: 0)
    private var exchangeOffsets = (upstream: 0, downstream: 0)
    /// The client's bytes of the current exchange, up to ``matchWindow``, and which toxics matched them.
    private var exchangeBytes: [UInt8] = []
    private var matched: Set<String> = []
    private var regexes: [String: Regex<AnyRegexOutput>] = [:]
    /// The route's toxics with a `match` or `match_regex`, as of the last refresh: most routes have none, and the
    /// client's bytes are then not kept at all.
    private var matchers: [Toxic] = []

    private var version = -1
    private var upstream = FaultStreamStateMachine(stream: .upstream)
    private var downstream = FaultStreamStateMachine(stream: .downstream)
    private var scratch: [FaultEvent] = []
    private weak var upstreamStage: (any Stage)?
    private weak var downstreamStage: (any Stage)?
    /// What came out for a stream whose stage is not in a pipeline yet (the upstream's, while it connects).
    private var unclaimed: (upstream: [FaultEvent], downstream: [FaultEvent]) = ([], [])
    /// The stages in a pipeline, and the route's observer while there is one.
    private var attached = 0
    private var observer: Int?

    init(faults: RouteFaults, client: String, logger: Logger) {
        self.faults = faults
        self.ordinal = faults.nextSessionOrdinal()
        self.client = client
        self.logger = logger
    }

    /// The handler that turns a client away from a route that is down: reset as soon as it is connected.
    static func refusal(for client: any Channel) -> ActivationHandler {
        ActivationHandler {
            RelayHandler.armReset(client)
            client.close(promise: nil)
        }
    }

    /// The fault stages of a replayed connection: the client's bytes faulted as they come in, replay's replies as
    /// they go out.
    static func replayStages(faults: RouteFaults, client: any Channel, logger: Logger) -> [any ChannelHandler] {
        let address = client.remoteAddress.map { "\(Endpoint($0))" } ?? "unknown"
        let conversation = FaultConversation(faults: faults, client: address, logger: logger)
        return [
            InboundFaultHandler(conversation: conversation, stream: .upstream),
            OutboundFaultHandler(conversation: conversation),
        ]
    }

    /// Makes `stage` the one `stream`'s events go to, and hands it what came out before it was there.
    func register(_ stage: any Stage, for stream: ToxicStream) {
        let waiting: [FaultEvent]
        switch stream {
        case .upstream:
            upstreamStage = stage
            waiting = unclaimed.upstream
            unclaimed.upstream = []
        case .downstream:
            downstreamStage = stage
            waiting = unclaimed.downstream
            unclaimed.downstream = []
        }
        if !waiting.isEmpty { stage.enqueue(waiting) }
    }

    private func hand(_ events: [FaultEvent], to stream: ToxicStream) {
        guard !events.isEmpty else { return }
        switch stream {
        case .upstream:
            if let upstreamStage { upstreamStage.enqueue(events) } else { unclaimed.upstream += events }
        case .downstream:
            if let downstreamStage { downstreamStage.enqueue(events) } else { unclaimed.downstream += events }
        }
    }

    /// A stage joined a pipeline: the first one takes the route's toxics and watches for changes, so that data
    /// held by `timeout` flows once it is removed, and toxics on the clock start without waiting for bytes.
    func attach(on loop: any EventLoop) {
        attached += 1
        guard attached == 1 else { return }
        let conversation = NIOLoopBound(self, eventLoop: loop)
        observer = faults.addObserver {
            loop.execute { conversation.value.refresh(now: loop.now) }
        }
        refresh(now: loop.now)
    }

    /// A stage left its pipeline; the last one stops watching.
    func detach() {
        attached -= 1
        guard attached == 0, let observer else { return }
        faults.removeObserver(observer)
        self.observer = nil
    }

    /// Takes the route's toxics if they changed since last time, and hands what that releases to the stages.
    func refresh(now: NIODeadline) {
        let current = faults.version
        guard current != version else { return }
        let snapshot = faults.snapshot()
        version = snapshot.version
        matchers = snapshot.toxics.filter { $0.placement.match != nil || $0.placement.matchRegex != nil }
        if matchers.isEmpty {
            exchangeBytes = []
            matched = []
        }
        var upstreamOut: [FaultEvent] = []
        var downstreamOut: [FaultEvent] = []
        upstream.sync(snapshot.toxics, now: now, conversation: self, into: &upstreamOut)
        downstream.sync(snapshot.toxics, now: now, conversation: self, into: &downstreamOut)
        hand(upstreamOut, to: .upstream)
        hand(downstreamOut, to: .downstream)
    }

    /// Whether neither stream has a toxic, checked against the route's current version: the fast path.
    func isIdle(_ stream: ToxicStream, now: NIODeadline) -> Bool {
        if faults.version != version { refresh(now: now) }
        switch stream {
        case .upstream: return upstream.isIdle
        case .downstream: return downstream.isIdle
        }
    }

    /// Notes an event entering a stage, before any toxic, and returns it placed in the conversation.
    func place(_ kind: FaultEvent.Kind, on stream: ToxicStream, now: NIODeadline) -> FaultEvent {
        if faults.version != version { refresh(now: now) }
        var count = 0
        if case .data(let buffer) = kind { count = buffer.readableBytes }
        if stream == .upstream, count > 0, upstreamSpokeLast {
            beginExchange(now: now)
        }
        let event: FaultEvent
        switch stream {
        case .upstream:
            event = FaultEvent(
                at: now,
                kind: kind,
                exchange: exchange,
                exchangeOffset: exchangeOffsets.upstream,
                streamOffset: streamOffsets.upstream
            )
            exchangeOffsets.upstream += count
            streamOffsets.upstream += count
            if case .data(let buffer) = kind { noteClientBytes(buffer) }
        case .downstream:
            event = FaultEvent(
                at: now,
                kind: kind,
                exchange: exchange,
                exchangeOffset: exchangeOffsets.downstream,
                streamOffset: streamOffsets.downstream
            )
            exchangeOffsets.downstream += count
            streamOffsets.downstream += count
            if count > 0 { upstreamSpokeLast = true }
        }
        return event
    }

    /// The fast path of a stage: when `stream` has no toxic (as of the route's current version), counts `buffer`'s
    /// bytes in the conversation and answers true, and the stage passes them on as they are; no event is made and
    /// the clock is not read unless a toxic on the other stream needs it.
    func passesUntouched(_ buffer: ByteBuffer, on stream: ToxicStream, loop: any EventLoop) -> Bool {
        if faults.version != version { refresh(now: loop.now) }
        let count = buffer.readableBytes
        switch stream {
        case .upstream:
            guard upstream.isIdle else { return false }
            if count > 0, upstreamSpokeLast {
                beginExchange(now: downstream.isIdle ? .uptimeNanoseconds(0) : loop.now)
            }
            exchangeOffsets.upstream += count
            streamOffsets.upstream += count
            if !matchers.isEmpty { noteClientBytes(buffer) }
        case .downstream:
            guard downstream.isIdle else { return false }
            exchangeOffsets.downstream += count
            streamOffsets.downstream += count
            if count > 0 { upstreamSpokeLast = true }
        }
        return true
    }

    /// Passes an event of `stream` through its toxics into `output`.
    func process(_ event: FaultEvent, on stream: ToxicStream, now: NIODeadline, into output: inout [FaultEvent]) {
        switch stream {
        case .upstream: upstream.process(event, now: now, conversation: self, into: &output)
        case .downstream: downstream.process(event, now: now, conversation: self, into: &output)
        }
    }

    /// The stream's bytes so far, before any toxic.
    func streamOffset(_ stream: ToxicStream) -> Int {
        stream == .upstream ? streamOffsets.upstream : streamOffsets.downstream
    }

    private func beginExchange(now: NIODeadline) {
        upstreamSpokeLast = false
        exchange += 1
        exchangeOffsets = (0, 0)
        guard !matchers.isEmpty || !upstream.isIdle || !downstream.isIdle else { return }
        exchangeBytes.removeAll(keepingCapacity: true)
        matched = []
        scratch.removeAll(keepingCapacity: true)
        upstream.exchangeEnded(now: now, into: &scratch)
        hand(scratch, to: .upstream)
        scratch.removeAll(keepingCapacity: true)
        downstream.exchangeEnded(now: now, into: &scratch)
        hand(scratch, to: .downstream)
    }

    private func noteClientBytes(_ buffer: ByteBuffer) {
        guard !matchers.isEmpty else { return }
        exchangeBytes.append(contentsOf: buffer.readableBytesView)
        if exchangeBytes.count > Self.matchWindow { exchangeBytes.removeFirst(exchangeBytes.count - Self.matchWindow) }
        for toxic in matchers where !matched.contains(toxic.name) {
            if let bytes = toxic.placement.match {
                let found = bytes.withUnsafeBytes { needle in
                    exchangeBytes.withUnsafeBytes { haystack in ByteSearch.contains(needle, in: haystack) }
                }
                if found { matched.insert(toxic.name) }
            } else if let pattern = toxic.placement.matchRegex, let regex = regex(pattern, for: toxic.name) {
                let text = String(String.UnicodeScalarView(exchangeBytes.map { Unicode.Scalar($0) }))
                if text.contains(regex) { matched.insert(toxic.name) }
            }
        }
    }

    private func regex(_ pattern: String, for name: String) -> Regex<AnyRegexOutput>? {
        if let cached = regexes[name] { return cached }
        let compiled = try? Regex(pattern)
        regexes[name] = compiled
        return compiled
    }

    // MARK: What the streams ask

    /// Whether `toxic` is drawn for this connection: its session pin holds, and its toxicity draw.
    func draws(_ toxic: Toxic) -> Bool {
        if let session = toxic.placement.session, session != ordinal { return false }
        return faults.draws(toxic, session: ordinal)
    }

    /// Whether the toxic's placement holds for an event: its recorded session, its exchange, its match.
    func placementHolds(_ toxic: Toxic, at event: FaultEvent) -> Bool {
        let placement = toxic.placement
        if let recorded = placement.recordedSession, recorded != recordedSession { return false }
        if let wanted = placement.exchange, wanted != event.exchange { return false }
        if placement.match != nil || placement.matchRegex != nil {
            return event.exchange == exchange && matched.contains(toxic.name)
        }
        return true
    }

    /// Claims a firing of `toxic` (its count), logs it and lists it.
    func fire(_ toxic: Toxic, exchange: Int, offset: Int) -> Bool {
        let fired = FiredToxic(
            route: faults.route,
            toxic: toxic,
            session: ordinal,
            recordedSession: recordedSession,
            client: client,
            exchange: exchange,
            offset: offset
        )
        guard faults.fire(toxic, at: fired) else { return false }
        recorder?.recordFault(fired.description, on: toxic.stream.direction)
        logger.notice(
            "toxic fired",
            metadata: [
                "tapedeck.route": "\(faults.route)", "tapedeck.toxic": "\(toxic.name)",
                "tapedeck.type": "\(toxic.kind.rawValue)", "tapedeck.stream": "\(toxic.stream.rawValue)",
                "tapedeck.session": "\(ordinal)", "tapedeck.client": "\(client)",
                "tapedeck.exchange": "\(exchange)", "tapedeck.offset": "\(offset)",
            ]
        )
        return true
    }

    /// The random source of one firing of a toxic: the same seed, connection and firing give the same numbers.
    func generator(for toxic: Toxic, firing: Int) -> SeededGenerator {
        faults.generator(for: toxic, session: ordinal, salt: UInt64(firing))
    }
}
