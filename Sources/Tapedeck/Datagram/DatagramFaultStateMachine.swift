import Logging
import NIOCore

/// The toxics of a UDP route as one flow (one client address) meets them, without a channel: each datagram goes in
/// with the time, and out come the datagrams to send now, in order; those held back wait for ``takeDue(_:now:_:)``
/// at ``nextDeadline(_:)``.
///
/// Per direction (`upstream`: the client's datagrams, `downstream`: the replies), the route's toxics act in the
/// order they were added:
/// - `loss` drops a datagram, `duplicate` sends it twice, `reorder` holds it until the next datagram that way has
///   gone (or for its `latency` attribute, 10 ms when 0, if none comes), each with `probability`, correlated with
///   the datagram before (see ``DatagramToxicState/drawsDatagram()``);
/// - `latency` delays each datagram by `latency` ms ± `jitter`; datagrams delayed alike keep their order, jitter
///   may reorder them, as netem's does;
/// - while the route is down (a `down` toxic, or disabled), every datagram is dropped.
///
/// Whether a toxic acts on the flow at all is drawn once (its `toxicity`, ``RouteFaults/draws(_:session:)``) with
/// the flow's order on the route; its `session` pins it to one flow, `exchange` to the n-th client datagram and
/// the replies after it, `match` (or `match_regex`) to the exchanges whose client datagram holds it, `offset` to
/// the datagrams from the one holding that byte of the exchange (or of the flow's stream) on. Each datagram a
/// toxic acts on is one firing, claimed through ``RouteFaults/fire(_:at:)``, which spends a `count`; a `down` toxic
/// fires once per flow.
///
/// ```swift
/// var stage = DatagramFaultStateMachine(faults: faults, session: faults.nextSessionOrdinal(), client: "udp:…")
/// if stage.isActive() {
///     stage.receive(datagram, stream: .upstream, now: .now()) { send($0) }
/// }
/// ```
struct DatagramFaultStateMachine {
    /// One firing, and whether it is the toxic's first in this flow (logged louder than the rest).
    struct Firing {
        var fired: FiredToxic
        var isFirstInFlow: Bool

        /// Logs the firing: the first of a toxic in a flow at `info`, the rest (a `latency` toxic fires for every
        /// datagram) at `debug`; the deck's ``FaultLog`` lists them all.
        func log(to logger: Logger) {
            logger.log(
                level: isFirstInFlow ? .info : .debug,
                "toxic fired",
                metadata: [
                    "tapedeck.route": "\(fired.route)", "tapedeck.client": "\(fired.client)",
                    "tapedeck.session": "\(fired.session)", "tapedeck.toxic": "\(fired.description)",
                ]
            )
        }
    }

    /// How long a `reorder` toxic holds a datagram when no next one comes, unless its `latency` attribute says.
    static let defaultReorderHold: Int64 = 10_000_000

    /// The route's toxics.
    let faults: RouteFaults
    /// The flow's order on the route, counting from 1.
    let session: Int
    /// The client's address, for the firings.
    let client: String
    /// On replay, the recorded session the flow is served from, once known; a toxic's `recorded_session` needs it.
    var recordedSession: Int64?
    /// Firings since ``takeFirings()``.
    private(set) var firings: [Firing] = []
    /// Datagrams dropped since ``takeOverflow()`` because too many were held back (``DatagramTimeline/limit``).
    private(set) var overflow = 0

    /// The version of the toxics ``toxics`` follows; -1 before the first look.
    private var version = -1
    private var isUp = true
    private var toxics: [DatagramToxicState] = []
    private var downFired = false
    private var upstream = DatagramTimeline()
    private var downstream = DatagramTimeline()
    /// How many times the client has spoken: the current exchange.
    private var exchange = 0
    /// Bytes each way in the current exchange, and in the whole flow.
    private var exchangeBytes = (upstream: 0, downstream: 0)
    private var flowBytes = (upstream: 0, downstream: 0)

    /// A stage for the flow of order `session` on the route whose toxics `faults` holds.
    init(faults: RouteFaults, session: Int, client: String, recordedSession: Int64? = nil) {
        self.faults = faults
        self.session = session
        self.client = client
        self.recordedSession = recordedSession
    }

    /// Whether datagrams must go through ``receive(_:stream:now:_:)``: the route has toxics, is down, or holds
    /// datagrams back. Otherwise they go straight on: one atomic load when nothing changed.
    mutating func isActive() -> Bool {
        if faults.version != version { refresh() }
        return !toxics.isEmpty || !isUp || !upstream.isEmpty || !downstream.isEmpty
    }

    /// When the first datagram held back `stream`'s way is due.
    func nextDeadline(_ stream: ToxicStream) -> NIODeadline? {
        stream == .upstream ? upstream.nextDeadline : downstream.nextDeadline
    }

    /// Takes the firings since the last call.
    mutating func takeFirings() -> [Firing] {
        defer { firings.removeAll() }
        return firings
    }

    /// Takes the count of datagrams dropped for want of room since the last call.
    mutating func takeOverflow() -> Int {
        defer { overflow = 0 }
        return overflow
    }

    /// Forgets the datagrams held back, when the flow ends.
    mutating func removeAll() {
        upstream.removeAll()
        downstream.removeAll()
    }

    /// A datagram that came `stream`'s way at `now`: hands `emit` what is to be sent now, in order.
    mutating func receive(
        _ datagram: ByteBuffer,
        stream: ToxicStream,
        now: NIODeadline,
        _ emit: (ByteBuffer) -> Void
    ) {
        if faults.version != version { refresh() }
        let count = datagram.readableBytes
        if stream == .upstream {
            exchange += 1
            exchangeBytes = (0, 0)
            for index in toxics.indices { toxics[index].clientSpoke(datagram) }
        }
        let exchangeStart = stream == .upstream ? exchangeBytes.upstream : exchangeBytes.downstream
        let flowStart = stream == .upstream ? flowBytes.upstream : flowBytes.downstream
        if stream == .upstream {
            exchangeBytes.upstream += count
            flowBytes.upstream += count
        } else {
            exchangeBytes.downstream += count
            flowBytes.downstream += count
        }
        guard isUp else {
            fireDown(stream: stream, offset: exchangeStart)
            return takeDue(stream, now: now, emit)
        }

        var items: [Item]? = nil
        for index in toxics.indices {
            let start = toxics[index].toxic.placement.isPerExchange ? exchangeStart : flowStart
            guard
                toxics[index].acts(
                    on: stream,
                    exchange: exchange,
                    start: start,
                    count: count,
                    recordedSession: recordedSession
                )
            else { continue }
            if items == nil { items = [Item(datagram: datagram)] }
            apply(index, to: &items!, stream: stream, offset: start)
        }
        guard let items else { return pass(datagram, stream: stream, now: now, emit) }
        var dropped = 0
        withTimeline(stream) { timeline in
            var releasedAfter: NIODeadline? = nil
            for item in items where !item.held {
                guard timeline.hasRoom(for: item.datagram.readableBytes) else {
                    dropped += 1
                    continue
                }
                let at = now + .nanoseconds(item.delay)
                timeline.insert(item.datagram, at: at)
                if releasedAfter == nil { releasedAfter = at }
            }
            // The held datagram of an earlier one goes right after this one's first copy.
            if let releasedAfter { timeline.releaseHeld(after: releasedAfter) }
            for item in items where item.held {
                guard timeline.hasRoom(for: item.datagram.readableBytes) else {
                    dropped += 1
                    continue
                }
                let hold = Int64(item.holdMilliseconds) * 1_000_000
                timeline.insert(item.datagram, at: now + .nanoseconds(item.delay + hold), held: true)
            }
            timeline.takeDue(now: now, emit)
        }
        overflow += dropped
    }

    /// Hands `emit` the datagrams held back `stream`'s way that are due by `now`, in order.
    mutating func takeDue(_ stream: ToxicStream, now: NIODeadline, _ emit: (ByteBuffer) -> Void) {
        withTimeline(stream) { $0.takeDue(now: now, emit) }
    }

    // MARK: Acting

    /// A datagram on its way through the toxics: copies, delays and holds.
    private struct Item {
        var datagram: ByteBuffer
        /// Nanoseconds it waits, from `latency`.
        var delay: Int64 = 0
        /// Whether a `reorder` toxic holds it, and for how long at most.
        var held = false
        var holdMilliseconds = 0
    }

    /// A datagram no toxic acts on: sent now, unless datagrams held back wait before it.
    private mutating func pass(
        _ datagram: ByteBuffer,
        stream: ToxicStream,
        now: NIODeadline,
        _ emit: (ByteBuffer) -> Void
    ) {
        var dropped = false
        withTimeline(stream) { timeline in
            guard !timeline.isEmpty else { return emit(datagram) }
            guard timeline.hasRoom(for: datagram.readableBytes) else {
                dropped = true
                return
            }
            timeline.insert(datagram, at: now)
            timeline.releaseHeld(after: now)
            timeline.takeDue(now: now, emit)
        }
        if dropped { overflow += 1 }
    }

    /// Applies the toxic at `index` to a datagram's copies; `offset` is where the datagram starts in the stream
    /// the toxic counts bytes in, for its firings.
    private mutating func apply(_ index: Int, to items: inout [Item], stream: ToxicStream, offset: Int) {
        switch toxics[index].toxic.kind {
        case .loss:
            items.removeAll { _ in toxics[index].drawsDatagram() && fire(index, offset: offset) }
        case .duplicate:
            var doubled: [Item] = []
            doubled.reserveCapacity(items.count * 2)
            for item in items {
                doubled.append(item)
                if toxics[index].drawsDatagram(), fire(index, offset: offset) { doubled.append(item) }
            }
            items = doubled
        case .reorder:
            let holdsOne = stream == .upstream ? upstream.holdsOne : downstream.holdsOne
            // One datagram held at a time each way: the next one is the one that overtakes it.
            var holding = holdsOne || items.contains { $0.held }
            for position in items.indices {
                // Drawn even while one is held, so that the draws follow the traffic alone.
                guard toxics[index].drawsDatagram(), !holding, fire(index, offset: offset) else { continue }
                let latency = toxics[index].toxic.attributes.latency
                items[position].held = true
                items[position].holdMilliseconds = latency > 0 ? latency : Int(Self.defaultReorderHold / 1_000_000)
                holding = true
            }
        case .latency:
            for position in items.indices {
                let delay = toxics[index].latencyNanoseconds()
                guard fire(index, offset: offset) else { continue }
                items[position].delay += delay
            }
        case .down, .bandwidth, .slowClose, .timeout, .resetPeer, .slicer, .limitData:
            // `down` is the route's state (see refresh); stream toxics never reach a UDP route.
            break
        }
    }

    /// Claims a firing of the toxic at `index` and keeps it for the log; false when its count is spent.
    private mutating func fire(_ index: Int, offset: Int) -> Bool {
        let toxic = toxics[index].toxic
        let fired = firing(of: toxic, offset: offset)
        guard faults.fire(toxic, at: fired) else { return false }
        firings.append(Firing(fired: fired, isFirstInFlow: !toxics[index].hasFired))
        toxics[index].hasFired = true
        return true
    }

    /// The record of `toxic` firing here in the flow, at byte `offset`.
    private func firing(of toxic: Toxic, offset: Int) -> FiredToxic {
        FiredToxic(
            route: faults.route,
            toxic: toxic,
            session: session,
            recordedSession: recordedSession,
            client: client,
            exchange: exchange,
            offset: offset
        )
    }

    /// The route is down: a `down` toxic fires once in the flow, at its first dropped datagram.
    private mutating func fireDown(stream: ToxicStream, offset: Int) {
        guard !downFired else { return }
        downFired = true
        for toxic in faults.toxics where toxic.kind == .down {
            let fired = firing(of: toxic, offset: offset)
            if faults.fire(toxic, at: fired) { firings.append(Firing(fired: fired, isFirstInFlow: true)) }
        }
    }

    // MARK: Following changes

    /// Takes the toxics as they are now, keeping the state of those already met (their draws and correlation).
    private mutating func refresh() {
        let snapshot = faults.snapshot()
        version = snapshot.version
        if isUp != snapshot.isUp { downFired = false }
        isUp = snapshot.isUp
        let known = toxics
        toxics = snapshot.toxics.compactMap { toxic in
            guard toxic.kind.appliesToDatagrams, toxic.kind != .down else { return nil }
            if let kept = known.first(where: { $0.toxic == toxic }) { return kept }
            return DatagramToxicState(toxic, faults: faults, session: session)
        }
    }

    private mutating func withTimeline(_ stream: ToxicStream, _ body: (inout DatagramTimeline) -> Void) {
        switch stream {
        case .upstream: body(&upstream)
        case .downstream: body(&downstream)
        }
    }
}
