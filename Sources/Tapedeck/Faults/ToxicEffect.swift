import NIOCore

/// What one toxic does to the events of one stream of one connection, while it acts: a channel-free transform
/// from events with due times to events with due times.
///
/// Each kind keeps what it needs between events (the bandwidth's busy time, the bytes `limit_data` has let
/// through, the events `timeout 0` holds). Times only grow: a later stage never sends an event before an earlier
/// one, so a FIN is never overtaken by the bytes before it.
struct ToxicEffect {
    let toxic: Toxic
    private var random: SeededGenerator
    /// `bandwidth`: when the bytes let through so far are done.
    private var busyUntil = NIODeadline.uptimeNanoseconds(0)
    /// `limit_data`: the bytes let through so far.
    private var passed = 0
    /// `timeout` 0: what is held until the toxic goes.
    private(set) var held: [FaultEvent] = []
    /// `reset_peer`, `limit_data`, `timeout`: the cut is made, so everything after it is dropped.
    private var cut = false

    init(toxic: Toxic, random: SeededGenerator) {
        self.toxic = toxic
        self.random = random
    }

    /// What the toxic does as it starts acting, before any event: `timeout` schedules its close, `down` cuts.
    mutating func start(now: NIODeadline, template: FaultEvent, into output: inout [FaultEvent]) {
        switch toxic.kind {
        case .timeout where toxic.attributes.timeout > 0:
            var event = template
            event.kind = .cut(reset: false)
            event.at = now + .milliseconds(Int64(toxic.attributes.timeout))
            output.append(event)
        case .down:
            var event = template
            event.kind = .cut(reset: true)
            event.at = now
            cut = true
            output.append(event)
        default:
            break
        }
    }

    /// Transforms one event.
    mutating func apply(_ event: FaultEvent, into output: inout [FaultEvent]) {
        if case .cut = event.kind {
            // A cut made upstream in the chain goes through: this toxic no longer matters.
            output.append(event)
            return
        }
        guard !cut else { return }
        let attributes = toxic.attributes
        switch toxic.kind {
        case .latency:
            output.append(event.at(event.at + delay()))
        case .bandwidth:
            applyBandwidth(event, rate: attributes.rate, into: &output)
        case .slowClose:
            output.append(event.isEnd ? event.at(event.at + .milliseconds(Int64(attributes.delay))) : event)
        case .timeout:
            if attributes.timeout == 0 {
                held.append(event)
            } else if event.isEnd {
                output.append(event)
            }
        // With a timeout, data is dropped until the close `start` scheduled.
        case .resetPeer:
            // As Toxiproxy: the first bytes (and all after) are dropped, and the connection reset a timeout later.
            guard event.byteCount > 0 else {
                output.append(event)
                return
            }
            cut = true
            var reset = event
            reset.kind = .cut(reset: true)
            reset.at = event.at + .milliseconds(Int64(attributes.timeout))
            output.append(reset)
        case .slicer:
            applySlicer(event, into: &output)
        case .limitData:
            let room = attributes.bytes - passed
            let count = event.byteCount
            guard count > 0 else {
                output.append(event)
                return
            }
            if count < room {
                passed += count
                output.append(event)
                return
            }
            if room > 0 { output.append(event.slice(from: 0, to: room)) }
            passed += max(0, room)
            cut = true
            var close = event
            close.kind = .cut(reset: false)
            output.append(close)
        case .down:
            break
        case .loss, .duplicate, .reorder:
            // Datagram toxics never reach a stream: routes refuse them.
            output.append(event)
        }
    }

    /// The toxic stopped acting (removed, or its exchange is over): what it held goes on now.
    mutating func release(now: NIODeadline, into output: inout [FaultEvent]) {
        for event in held { output.append(event.at(max(event.at, now))) }
        held = []
    }

    private mutating func delay() -> TimeAmount {
        let latency = Int64(toxic.attributes.latency)
        let jitter = Int64(toxic.attributes.jitter)
        let spread = jitter > 0 ? Int64.random(in: -jitter...jitter, using: &random) : 0
        return .milliseconds(max(0, latency + spread))
    }

    private mutating func applyBandwidth(_ event: FaultEvent, rate: Int, into output: inout [FaultEvent]) {
        guard rate > 0 else {
            output.append(event)
            return
        }
        let bytesPerSecond = Int64(rate) * 1000
        guard case .data = event.kind else {
            output.append(event.at(max(event.at, busyUntil)))
            return
        }
        // Pieces of at most a tenth of a second's worth, as Toxiproxy sends them, so a slow rate still trickles.
        let piece = max(1, Int(bytesPerSecond / 10))
        var start = 0
        let count = event.byteCount
        while start < count {
            let end = min(count, start + piece)
            let begins = max(event.at, busyUntil)
            busyUntil = begins + .nanoseconds(Int64(end - start) * 1_000_000_000 / bytesPerSecond)
            output.append(event.slice(from: start, to: end).at(busyUntil))
            start = end
        }
    }

    private mutating func applySlicer(_ event: FaultEvent, into output: inout [FaultEvent]) {
        let attributes = toxic.attributes
        guard case .data = event.kind, attributes.averageSize > 0 else {
            output.append(event.at(max(event.at, busyUntil)))
            return
        }
        var start = 0
        var at = max(event.at, busyUntil)
        let count = event.byteCount
        while start < count {
            let variation = attributes.sizeVariation
            let size = max(
                1,
                attributes.averageSize + (variation > 0 ? Int.random(in: -variation...variation, using: &random) : 0)
            )
            let end = min(count, start + size)
            output.append(event.slice(from: start, to: end).at(at))
            start = end
            if start < count { at = at + .microseconds(Int64(attributes.delay)) }
        }
        busyUntil = at
    }
}
