import NIOCore

/// Applies the `downstream` stream's toxics to what replay writes to a client: bytes are delayed, sliced,
/// throttled, cut or dropped, and replay's FIN or close comes after the bytes before it.
///
/// Replay has no upstream connection for an ``InboundFaultHandler`` to sit on, so its replies are faulted on
/// their way out. Writes are taken at once (their promises succeed as they are held); replay holds its own
/// recorded bytes in memory already, so holding them here costs no more.
final class OutboundFaultHandler: ChannelOutboundHandler, FaultConversation.Stage {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let conversation: FaultConversation
    private var context: ChannelHandlerContext?
    private var schedule = FaultSchedule()
    /// The promises of the FIN and close held, in order.
    private var endPromises = CircularBuffer<EventLoopPromise<Void>?>()
    private var timer = FaultTimer()
    private var cut = false
    private var scratch: [FaultEvent] = []

    init(conversation: FaultConversation) {
        self.conversation = conversation
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        conversation.attach(on: context.eventLoop)
        conversation.register(self, for: .downstream)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer.cancel()
        self.context = nil
        while let promise = endPromises.popFirst() { promise?.succeed() }
        conversation.detach()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !cut else {
            promise?.succeed()
            return
        }
        let buffer = unwrapOutboundIn(data)
        if schedule.isEmpty, conversation.passesUntouched(buffer, on: .downstream, loop: context.eventLoop) {
            context.write(data, promise: promise)
            return
        }
        promise?.succeed()
        accept(.data(buffer), now: context.eventLoop.now)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if let chosen = event as? ReplayedSessionChosen {
            conversation.recordedSession = chosen.session
            promise?.succeed()
            return
        }
        context.triggerUserOutboundEvent(event, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        // Bytes held are flushed as they become due.
        if schedule.isEmpty { context.flush() }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        let now = context.eventLoop.now
        guard !cut, mode != .input, !(schedule.isEmpty && conversation.isIdle(.downstream, now: now)) else {
            context.close(mode: mode, promise: promise)
            return
        }
        endPromises.append(promise)
        accept(mode == .output ? .halfClose : .close, now: now)
    }

    func enqueue(_ events: [FaultEvent]) {
        guard !cut else { return }
        schedule.append(contentsOf: events)
        pump()
    }

    private func accept(_ kind: FaultEvent.Kind, now: NIODeadline) {
        let event = conversation.place(kind, on: .downstream, now: now)
        scratch.removeAll(keepingCapacity: true)
        conversation.process(event, on: .downstream, now: now, into: &scratch)
        schedule.append(contentsOf: scratch)
        pump()
    }

    private func pump() {
        guard let context else { return }
        let now = context.eventLoop.now
        var wrote = false
        while !cut, let event = schedule.popDue(now: now) {
            switch event.kind {
            case .data(let buffer):
                context.write(wrapOutboundOut(buffer), promise: nil)
                wrote = true
            case .halfClose:
                if wrote { context.flush() }
                wrote = false
                context.close(mode: .output, promise: endPromises.popFirst() ?? nil)
            case .close:
                if wrote { context.flush() }
                wrote = false
                context.close(promise: endPromises.popFirst() ?? nil)
            case .cut(let reset):
                if wrote { context.flush() }
                wrote = false
                cut = true
                _ = schedule.popAll()
                context.fireUserInboundEventTriggered(FaultCut())
                if reset {
                    RelayHandler.armReset(context.channel)
                    context.close(promise: nil)
                } else {
                    context.close(mode: .output, promise: nil)
                }
            }
        }
        if wrote { context.flush() }
        arm(context)
    }

    private func arm(_ context: ChannelHandlerContext) {
        timer.arm(for: cut ? nil : schedule.nextDeadline, on: context.eventLoop) { [self] in
            timer.fired()
            pump()
        }
    }
}
