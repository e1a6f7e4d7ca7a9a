import NIOCore
import NIOPosix

/// Applies one stream's toxics to what a connection's peer sends, before the handler behind it (the relay, or
/// replay) sees it: bytes are delayed, sliced, throttled, cut or dropped, the peer's FIN comes after the bytes
/// before it, and a toxic's cut arrives as the peer's reset or FIN would.
///
/// In a relay there is one on each connection: on the client's for the `upstream` stream, on the upstream's for
/// the `downstream` stream, so a recording records what passed, which is what the other side saw. Reads are held
/// while more than ``highWater`` bytes wait, so a throttled stream slows its sender instead of filling memory.
final class InboundFaultHandler: ChannelDuplexHandler, FaultConversation.Stage {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Reads stop while this many bytes wait, and go on below ``lowWater``.
    static let highWater = 1 << 20
    static let lowWater = 256 << 10

    private let conversation: FaultConversation
    private let stream: ToxicStream
    private var context: ChannelHandlerContext?
    private var schedule = FaultSchedule()
    private var timer = FaultTimer()
    private var readHeld = false
    /// A toxic cut the stream: nothing more passes but the channel's own end.
    private var cut = false
    private var finPassed = false
    private var scratch: [FaultEvent] = []

    init(conversation: FaultConversation, stream: ToxicStream) {
        self.conversation = conversation
        self.stream = stream
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        conversation.attach(on: context.eventLoop)
        conversation.register(self, for: stream)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer.cancel()
        self.context = nil
        conversation.detach()
    }

    // MARK: What the peer sends

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !cut else { return }
        let buffer = unwrapInboundIn(data)
        if schedule.isEmpty, conversation.passesUntouched(buffer, on: stream, loop: context.eventLoop) {
            // No toxic on this stream: the bytes only moved the conversation on.
            context.fireChannelRead(data)
            return
        }
        accept(.data(buffer), now: context.eventLoop.now)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard !cut else { return }
        let now = context.eventLoop.now
        if schedule.isEmpty, conversation.isIdle(stream, now: now) {
            finPassed = true
            context.fireUserInboundEventTriggered(event)
            return
        }
        accept(.halfClose, now: now)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset cannot wait: what was held goes first, at once, then the error.
        passAll()
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        passAll()
        timer.cancel()
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if schedule.bytes > Self.highWater {
            readHeld = true
            return
        }
        context.read()
    }

    // MARK: Passing on

    func enqueue(_ events: [FaultEvent]) {
        guard !cut else { return }
        schedule.append(contentsOf: events)
        pump()
    }

    private func accept(_ kind: FaultEvent.Kind, now: NIODeadline) {
        let event = conversation.place(kind, on: stream, now: now)
        scratch.removeAll(keepingCapacity: true)
        conversation.process(event, on: stream, now: now, into: &scratch)
        schedule.append(contentsOf: scratch)
        pump()
    }

    /// Passes on every event that is due, and sets a timer for the next.
    private func pump() {
        guard let context else { return }
        let now = context.eventLoop.now
        var passedData = false
        while !cut, let event = schedule.popDue(now: now) {
            passedData = pass(event, context: context) || passedData
        }
        if passedData { context.fireChannelReadComplete() }
        if readHeld, schedule.bytes < Self.lowWater {
            readHeld = false
            context.read()
        }
        arm(context)
    }

    private func arm(_ context: ChannelHandlerContext) {
        timer.arm(for: cut ? nil : schedule.nextDeadline, on: context.eventLoop) { [self] in
            timer.fired()
            pump()
        }
    }

    /// Passes everything held at once.
    private func passAll() {
        guard let context else { return }
        var passedData = false
        for event in schedule.popAll() where !cut {
            passedData = pass(event, context: context) || passedData
        }
        if passedData { context.fireChannelReadComplete() }
    }

    /// Passes one event to the handler behind; returns whether it was bytes.
    private func pass(_ event: FaultEvent, context: ChannelHandlerContext) -> Bool {
        switch event.kind {
        case .data(let buffer):
            context.fireChannelRead(wrapInboundOut(buffer))
            return true
        case .halfClose, .close:
            guard !finPassed else { return false }
            finPassed = true
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        case .cut(let reset):
            cut = true
            _ = schedule.popAll()
            context.fireUserInboundEventTriggered(FaultCut())
            if reset {
                // The peer of this side is made to reset: the handler behind resets its partner as for a real one,
                // and this side's close sends RST too.
                RelayHandler.armReset(context.channel)
                context.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "reset by a toxic"))
            } else if !finPassed {
                finPassed = true
                context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            }
        }
        return false
    }
}
