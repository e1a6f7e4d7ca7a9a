import NIOCore
import NIOPosix

/// One half of a relay: sits in one channel's pipeline and hands everything it reads to its partner, the
/// handler in the other channel of the same session.
///
/// Both channels of a session live on the same event loop, so partners call each other directly. The handler
/// carries the three things a faithful relay needs beyond copying bytes:
/// - backpressure: a read is only passed on while the partner's channel is writable (and, when recording, while
///   the tape writer has room);
/// - half-close: end of input on one side becomes a write shutdown on the other, after its queued writes;
/// - reset: a connection reset on one side resets the other (`SO_LINGER` 0), rather than closing it cleanly.
///
/// When a session recorder is attached, every read, half-close, close and reset is reported to it as it happens.
///
/// The decisions (when a read waits, when to shut, close or reset, how an end is recorded) are made by a
/// ``RelayStateMachine``; the handler feeds it the channel's events and carries out its answers. Bytes themselves
/// go straight to the partner, without passing through it.
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Which connection of the session this handler sits on.
    enum Side: Sendable {
        case client
        case upstream

        /// The direction of the bytes this side's peer sends.
        var direction: Direction {
            switch self {
            case .client: return .clientToUpstream
            case .upstream: return .upstreamToClient
            }
        }
    }

    /// Sent through a pipeline to reset a connection on the relay's own initiative: at shutdown, when the drain
    /// time is up (`interrupted`), or when the upstream cannot be reached.
    struct ResetRequest: Sendable {
        var interrupted: Bool
    }

    let side: Side
    private let lingerTimeout: TimeAmount
    private let recorder: SessionRecorder?
    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    /// Half-closes, closes, resets and held reads: every decision about this side's connection is made there.
    private var state = RelayStateMachine()
    /// While queued bytes drain to a side whose partner has gone: the next check that its peer still takes them.
    private var lingerCheck: Scheduled<Void>?

    private init(side: Side, lingerTimeout: TimeAmount, recorder: SessionRecorder?) {
        self.side = side
        self.lingerTimeout = lingerTimeout
        self.recorder = recorder
    }

    /// Makes the two handlers of one session, already introduced to each other.
    ///
    /// - Parameters:
    ///   - lingerTimeout: How long a side whose partner has gone may take none of the bytes queued for it before
    ///     it is reset anyway.
    ///   - recorder: Where to report the session's events, when recording.
    static func matchedPair(
        lingerTimeout: TimeAmount,
        recorder: SessionRecorder? = nil
    ) -> (client: RelayHandler, upstream: RelayHandler) {
        let client = RelayHandler(side: .client, lingerTimeout: lingerTimeout, recorder: recorder)
        let upstream = RelayHandler(side: .upstream, lingerTimeout: lingerTimeout, recorder: recorder)
        client.partner = upstream
        upstream.partner = client
        return (client, upstream)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { perform(state.channelBecameActive(), context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(state.channelBecameActive(), context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        recorder?.recordData(buffer, from: side.direction)
        partner?.partnerWrite(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            state.inputClosed()
            recorder?.recordHalfClose(from: side.direction)
            partner?.partnerInputEnded()
        } else if let request = event as? ResetRequest {
            if request.interrupted { recorder?.markInterrupted() }
            perform(state.resetRequested(channelIsActive: context.channel.isActive), context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, Self.isReset(errno: error.errnoCode) {
            state.peerReset()
        }
        // NIO closes a channel after most I/O errors by itself; closing here covers the rest.
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let ending = state.channelInactive()
        if let recorder {
            if ending.peerHalfClosedUnseen { recorder.recordHalfClose(from: side.direction) }
            recorder.recordEnd(of: side.direction, reset: ending.recordedAsReset, byPeer: ending.byPeer)
        }
        partner?.partnerEnded(reset: ending.resetPartner)
        partner = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        let tapeHasRoom = recorder?.budget.hasRoom ?? true
        switch state.readRequested(partnerWritable: partner?.isWritable ?? true, tapeHasRoom: tapeHasRoom) {
        case .read:
            context.read()
        case .hold:
            break
        case .holdUntilTapeHasRoom:
            if let recorder { waitForTape(recorder.budget, context: context) }
        }
    }

    // MARK: Backpressure from the tape

    /// Asks the tape's budget to call back once it has room, and then asks for the held read again.
    private func waitForTape(_ budget: RecordingBudget, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        budget.whenRoom {
            loop.execute {
                let handler = handler.value
                // The wake-up is spent whether or not a read waits for it.
                guard handler.state.tapeHasRoom(), let context = handler.context else { return }
                // Through this handler's own `read(context:)`, which checks both partner and tape again:
                // `context.read()` would go past it, straight to the socket, with the tape still over its budget
                // (or the partner full).
                handler.read(context: context)
            }
        }
    }

    // MARK: Calls from the partner (same event loop)

    /// Whether this side can take more bytes from the partner; not before the handler is in a pipeline.
    private var isWritable: Bool {
        context?.channel.isWritable ?? false
    }

    /// Writes what the partner read, without flushing: the partner's read-complete flushes once per batch.
    private func partnerWrite(_ buffer: ByteBuffer) {
        // nil promise: a failed write closes the channel, which channelInactive reports.
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    /// The partner's batch of reads is over.
    private func partnerFlush() {
        context?.flush()
    }

    /// The partner's channel can take more: a read held for it may go.
    private func partnerBecameWritable() {
        guard let context, state.partnerBecameWritable() else { return }
        read(context: context)
    }

    /// The partner's peer shut down its write half: ours follows once every byte before it is written.
    private func partnerInputEnded() {
        guard let context else { return }
        perform(state.partnerHalfClosed(), context: context)
    }

    /// The partner's connection is gone: this side ends the same way, when its channel is active.
    private func partnerEnded(reset: Bool) {
        partner = nil
        let action = state.partnerEnded(reset: reset, channelIsActive: context?.channel.isActive ?? false)
        if let context { perform(action, context: context) }
    }

    // MARK: Carrying out what the state machine answers

    /// Carries out one answer of the state machine on this side's channel; waiting for queued writes feeds the
    /// machine again when they are written (or the linger time runs out).
    private func perform(_ action: RelayStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            return
        case .shutOutput:
            context.close(mode: .output, promise: nil)
        case .close(let reset):
            if reset { Self.armReset(context.channel) }
            context.close(promise: nil)
        case .shutOutputAfterQueuedWrites:
            // The channel must also be connected: a shutdown before that would abort the connect while a write
            // waits for it.
            guard !context.channel.isActive || hasQueuedBytes(context) else {
                perform(state.shutdownDrained(), context: context)
                return
            }
            // An empty write completes only after every earlier write.
            let drained = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: drained)
            drained.futureResult.assumeIsolated().whenSuccess {
                self.perform(self.state.shutdownDrained(), context: context)
            }
        case .closeAfterQueuedWrites(let reset):
            guard hasQueuedBytes(context) else {
                perform(state.closeDrained(reset: reset, channelIsActive: context.channel.isActive), context: context)
                return
            }
            let drained = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: drained)
            watchLinger(context: context, queued: queuedBytes(context))
            drained.futureResult.assumeIsolated().whenComplete { _ in
                self.lingerCheck?.cancel()
                self.lingerCheck = nil
                self.perform(
                    self.state.closeDrained(reset: reset, channelIsActive: context.channel.isActive),
                    context: context
                )
            }
        }
    }

    /// Resets this side once its peer has taken none of the queued bytes for the linger time, checking again
    /// while it takes some: a peer that stopped reading must not hold the connection open for ever, but one still
    /// reading, however slowly, gets every byte. A reset would throw away what its kernel already holds for it.
    private func watchLinger(context: ChannelHandlerContext, queued: Int) {
        lingerCheck?.cancel()
        lingerCheck = context.eventLoop.assumeIsolated().scheduleTask(in: lingerTimeout) {
            let left = self.queuedBytes(context)
            guard left >= queued else {
                self.watchLinger(context: context, queued: left)
                return
            }
            self.lingerCheck = nil
            self.perform(self.state.lingerTimedOut(channelIsActive: context.channel.isActive), context: context)
        }
    }

    /// Whether writes are still queued on this side; when none are, an end can be passed on at once, without
    /// the empty write, promise and linger timer that waiting for them costs on every connection.
    private func hasQueuedBytes(_ context: ChannelHandlerContext) -> Bool {
        queuedBytes(context) > 0
    }

    /// How many bytes of writes are queued on this side, not yet taken by the kernel; `Int.max` when the channel
    /// cannot tell.
    private func queuedBytes(_ context: ChannelHandlerContext) -> Int {
        let queued = try? context.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)
        return queued ?? Int.max
    }

    /// Makes the next close send RST instead of FIN. Unix sockets have no reset; there it is a plain close.
    static func armReset(_ channel: any Channel) {
        // Completes synchronously when called on the channel's event loop, which every caller is.
        _ = (channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
    }

    /// Whether a failed read or write means the peer reset the connection, rather than some other failure.
    static func isReset(errno: CInt) -> Bool {
        errno == ECONNRESET || errno == EPIPE || errno == ETIMEDOUT || errno == ECONNABORTED
    }
}
