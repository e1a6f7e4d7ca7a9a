import NIOCore

/// The toxics of one stream (one direction) of one connection, as a value: which of them act on each event, and
/// what they turn it into.
///
/// Fed the stream's events with their place in the conversation (``FaultEvent``) and the route's toxics whenever
/// they change, it answers with the events to pass on and when. A toxic acts once it is drawn for the
/// connection (its toxicity), its placement holds (session, exchange, match, offset) and it may fire (its
/// count); bytes before its offset go past it untouched, so an event is split where a toxic starts.
///
/// ```swift
/// var machine = FaultStreamStateMachine(stream: .downstream)
/// var out: [FaultEvent] = []
/// machine.sync(toxics, now: now, conversation: conversation, into: &out)
/// machine.process(event, now: now, conversation: conversation, into: &out)
/// ```
struct FaultStreamStateMachine {
    /// One toxic's state on this connection.
    private struct Window {
        var toxic: Toxic
        /// Whether the toxic is drawn for this connection at all (toxicity and session).
        var drawn: Bool
        /// The effect while the toxic acts, and the firing it acts for (an exchange, or 0 for the connection).
        var effect: ToxicEffect?
        var firing: Int?
        /// A firing that was refused (its count spent): not asked for again.
        var refused: Int?
    }

    /// Which stream this is.
    let stream: ToxicStream
    private var windows: [Window] = []
    /// Scratch arrays, reused so that an event costs no allocation once warm.
    private var pending: [FaultEvent] = []
    private var next: [FaultEvent] = []

    init(stream: ToxicStream) {
        self.stream = stream
    }

    /// Whether any toxic is on this stream: without one, events pass as they are.
    var isIdle: Bool {
        windows.isEmpty
    }

    /// Takes the route's toxics as they are now: toxics gone release what they held, new ones are drawn for
    /// this connection, and whole-connection toxics that act without bytes (`timeout`, `down`) start.
    mutating func sync(
        _ toxics: [Toxic],
        now: NIODeadline,
        conversation: FaultConversation,
        into output: inout [FaultEvent]
    ) {
        let mine = toxics.filter { $0.kind == .down ? stream == .downstream : $0.stream == stream }
        var kept: [Window] = []
        for toxic in mine {
            if var window = windows.first(where: { $0.toxic.name == toxic.name }) {
                if window.toxic != toxic {
                    // Changed in place: what it held goes on, and the new settings act from the next event.
                    window.effect?.release(now: now, into: &output)
                    window.effect = nil
                    window.firing = nil
                    window.toxic = toxic
                }
                kept.append(window)
            } else {
                kept.append(Window(toxic: toxic, drawn: conversation.draws(toxic)))
            }
        }
        for var window in windows where !mine.contains(where: { $0.name == window.toxic.name }) {
            window.effect?.release(now: now, into: &output)
        }
        windows = kept
        // Toxics on the whole connection that act by the clock start now, not at the next byte.
        for index in windows.indices {
            let toxic = windows[index].toxic
            guard
                toxic.placement.isEmpty
                    || (toxic.placement.isPerExchange == false && (toxic.placement.offset ?? 0) == 0),
                toxic.kind == .down || (toxic.kind == .timeout && toxic.attributes.timeout > 0)
            else { continue }
            let template = FaultEvent(
                at: now,
                kind: .halfClose,
                exchange: conversation.exchange,
                exchangeOffset: 0,
                streamOffset: conversation.streamOffset(stream)
            )
            _ = fire(index, for: template, now: now, conversation: conversation, into: &output)
        }
    }

    /// Passes one event through the toxics, appending what comes out (in order, with due times) to `output`.
    mutating func process(
        _ event: FaultEvent,
        now: NIODeadline,
        conversation: FaultConversation,
        into output: inout [FaultEvent]
    ) {
        guard !windows.isEmpty else {
            output.append(event)
            return
        }
        // Taken out while they are filled, so that routing (which changes the windows) has `self` to itself.
        var current = pending
        var following = next
        pending = []
        next = []
        current.removeAll(keepingCapacity: true)
        current.append(event)
        for index in windows.indices {
            following.removeAll(keepingCapacity: true)
            for item in current {
                route(item, through: index, now: now, conversation: conversation, into: &following)
            }
            swap(&current, &following)
        }
        output.append(contentsOf: current)
        pending = current
        next = following
    }

    /// The conversation moved to a new exchange: toxics that acted on the last one stop, releasing what they held.
    mutating func exchangeEnded(now: NIODeadline, into output: inout [FaultEvent]) {
        for index in windows.indices where windows[index].toxic.placement.isPerExchange {
            windows[index].effect?.release(now: now, into: &output)
            windows[index].effect = nil
            windows[index].firing = nil
        }
    }

    // MARK: One toxic

    private mutating func route(
        _ event: FaultEvent,
        through index: Int,
        now: NIODeadline,
        conversation: FaultConversation,
        into output: inout [FaultEvent]
    ) {
        let window = windows[index]
        guard window.drawn, conversation.placementHolds(window.toxic, at: event) else {
            output.append(event)
            return
        }
        let placement = window.toxic.placement
        let start = placement.offset ?? 0
        let position = placement.isPerExchange ? event.exchangeOffset : event.streamOffset
        var acted = event
        if case .data = event.kind {
            let count = event.byteCount
            if position + count <= start {
                output.append(event)
                return
            }
            if position < start {
                // The bytes before the offset go past; the toxic acts from there.
                output.append(event.slice(from: 0, to: start - position))
                acted = event.slice(from: start - position, to: count)
            }
        } else if window.effect == nil, position < start {
            output.append(event)
            return
        }
        guard fire(index, for: acted, now: now, conversation: conversation, into: &output) else {
            output.append(acted)
            return
        }
        windows[index].effect!.apply(acted, into: &output)
    }

    /// Makes the toxic act for the event's firing (its exchange, or the connection), unless it does already.
    ///
    /// - Returns: Whether the toxic acts.
    private mutating func fire(
        _ index: Int,
        for event: FaultEvent,
        now: NIODeadline,
        conversation: FaultConversation,
        into output: inout [FaultEvent]
    ) -> Bool {
        let toxic = windows[index].toxic
        let firing = toxic.placement.isPerExchange ? event.exchange : 0
        if windows[index].effect != nil, windows[index].firing == firing { return true }
        if windows[index].refused == firing { return false }
        guard conversation.fire(toxic, exchange: event.exchange, offset: event.streamOffset) else {
            windows[index].refused = firing
            return false
        }
        windows[index].firing = firing
        var effect = ToxicEffect(toxic: toxic, random: conversation.generator(for: toxic, firing: firing))
        effect.start(now: now, template: event, into: &output)
        windows[index].effect = effect
        return true
    }
}
