import Foundation
import Logging
import NIOCore

/// Serves one client connection from the tape: feeds the client's bytes to a `ReplayMatcher` and carries out
/// what it answers, in order, waiting where the pace asks for it.
final class ReplayHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var matcher: ReplayMatcher
    private let route: String
    private let ledger: ReplayLedger
    private let logger: Logger
    private let missing: MissingSessionHandoff?
    /// Where upstream bytes left in the tape are read when due.
    private let payloads: UpstreamPayloadSource
    /// Everything the client sent, kept only when a missing session may have to be recorded from it.
    private var clientBytes = ByteBuffer()
    /// Replay gave up and is handing the connection to the real upstream.
    private var handingOff = false
    /// The client shut down its write half: the upstream must hear it too once the relay is glued.
    private var clientInputEnded = false
    /// A toxic cut the connection: the session it followed goes back unplayed, and nothing more is matched.
    private var cutByToxic = false
    /// The recorded session the fault stages were last told the connection follows.
    private var announcedSession: Int64?
    private var context: ChannelHandlerContext?
    private var pending: [ReplayMatcher.Action] = []
    private var pendingIndex = 0
    /// A delay or a read from the tape is under way: later actions wait for it.
    private var waiting = false
    /// The delay of `pending[pendingIndex]` has passed.
    private var delayServed = false
    /// The client is not reading fast enough: bytes from the tape wait until the channel is writable again, so
    /// that a bulk reply is held a batch at a time, never whole.
    private var awaitingWritability = false
    /// A batch of stored sends being read from the tape: where it starts in `pending`, how many sends it holds.
    private struct TapeRead {
        var start: Int
        var count: Int
        var bytes: EventLoopFuture<ByteBuffer>
    }
    /// The batches after the one being written, read ahead, in order: the first starts at `pendingIndex`.
    private var readsAhead: [TapeRead] = []
    /// How many batches are read ahead: one per reader of the tape, so that reads overlap each other and the
    /// writes to the client.
    private static let readDepth = 2
    /// Counts batches, to spread them over the tape's readers.
    private var batchesRead = 0
    private var client = "unknown"
    /// The route's rules for the client's stream, by the address the client connected to.
    private let clientRules: ListenRulesCache
    /// The client's stream with rule spans and the address it connected to replaced by tokens, as the tape's
    /// recorded streams were; made once the connection's address is known.
    private var normalizer: StreamNormalizer?
    /// Supplied secrets, by name: what redacted upstream spans are replayed as.
    private let secrets: [String: String]
    /// When the client stops with bytes that may begin a span, they are matched as they are after this long.
    static let holdTimeout = TimeAmount.milliseconds(20)
    private var holdTimer: Scheduled<Void>?
    /// Answers a PostgreSQL SCRAM-SHA-256 login with the supplied password; passes everything else through.
    private var scram: PostgresScramResponder
    /// The route's protocol lens: the client's bytes go through it before the rules and the matcher, as the
    /// recorded clients' streams did, and the recorded upstream bytes through it before the client gets them.
    private var lens: (any StreamLens)?

    /// How many bytes of consecutive sends one read from the tape fetches at most.
    static let readBatchBytes = 1024 * 1024

    init(
        matcher: ReplayMatcher,
        route: String,
        ledger: ReplayLedger,
        logger: Logger,
        missing: MissingSessionHandoff?,
        payloads: UpstreamPayloadSource,
        clientRules: ListenRulesCache,
        secrets: [String: String] = [:],
        lens: (any StreamLens)? = nil
    ) {
        self.lens = lens
        self.clientRules = clientRules
        self.secrets = secrets
        self.scram = PostgresScramResponder(password: secrets[RulePreset.postgresPasswordSecret])
        self.matcher = matcher
        self.route = route
        self.ledger = ledger
        self.logger = logger
        self.missing = missing
        self.payloads = payloads
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let listen = context.channel.localAddress.flatMap { ListenAddressText(Endpoint($0)) }
        normalizer = StreamNormalizer(rules: clientRules.rules(listeningAt: listen))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        client = context.channel.remoteAddress.map { "\(Endpoint($0))" } ?? "unknown"
        ledger.connectionOpened()
        run(matcher.start())
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if missing != nil { clientBytes.writeImmutableBuffer(buffer) }
        guard !handingOff, !cutByToxic else { return }
        var bytes = Data(buffer.readableBytesView)
        // Before matching: the reply the client's bytes call for may be a SCRAM message built from them.
        if !scram.isPassingThrough { scram.observeClient(bytes) }
        var replies: [Data] = []
        if lens != nil, !lens!.isPassingThrough {
            let output = lens!.feed(bytes)
            bytes = output.canonical
            replies = output.replies
        }
        defer { answer(replies) }
        guard normalizer != nil else { return bytes.isEmpty ? () : run(matcher.receive(bytes)) }
        let normalized = normalizer!.feed(bytes)
        if !normalized.isEmpty { run(matcher.receive(normalized)) }
        holdTimer?.cancel()
        holdTimer = nil
        if normalizer!.isHolding {
            holdTimer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.holdTimeout) {
                self.holdTimer = nil
                self.releaseHeld()
            }
        }
    }

    /// What the lens answers the client itself (a WebSocket pong): sent after what the tape already had due.
    private func answer(_ replies: [Data]) {
        guard !replies.isEmpty, !handingOff else { return }
        run(replies.map { .send(.inline($0), delay: 0) })
    }

    /// Matches the bytes the normalizer held, as they are: the client went quiet or ended.
    private func releaseHeld() {
        holdTimer?.cancel()
        holdTimer = nil
        guard !handingOff, let held = normalizer?.flush(), !held.isEmpty else { return }
        run(matcher.receive(held))
    }

    /// The client ended: what the lens held (a message cut short) counts as sent, through the rules as usual.
    private func releaseLens() {
        guard !handingOff, lens?.isHolding == true else { return }
        let output = lens!.flush()
        let canonical = output.canonical
        guard !canonical.isEmpty else { return }
        guard normalizer != nil else { return run(matcher.receive(canonical)) }
        let normalized = normalizer!.feed(canonical)
        if !normalized.isEmpty { run(matcher.receive(normalized)) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is FaultCut {
            // Cut on purpose: the recorded session is free for the next connection (a retry), and the end that
            // follows is the toxic's doing, not a mismatch.
            cutByToxic = true
            if let session = matcher.abandon() { ledger.cut(.init(route: route, session: session, client: client)) }
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed, !cutByToxic {
            clientInputEnded = true
            releaseLens()
            releaseHeld()
            if !handingOff { run(matcher.endOfInput(reset: false)) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, awaitingWritability {
            awaitingWritability = false
            drain()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, RelayHandler.isReset(errno: error.errnoCode) {
            releaseLens()
            releaseHeld()
            run(matcher.endOfInput(reset: true))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        releaseLens()
        releaseHeld()
        if !matcher.clientEnded, !matcher.finished, !handingOff {
            // The client went away without a FIN we saw (it reset, or closed while we wrote).
            run(matcher.endOfInput(reset: true))
        }
        if matcher.regroupedExchanges > 0 { ledger.regrouped(matcher.regroupedExchanges) }
        if let session = matcher.connectionClosed() {
            ledger.replayed(.init(route: route, session: session, client: client))
        } else if matcher.probe {
            ledger.probed()
        } else if let twice = matcher.replayedTwice {
            report(twice)
        }
        context.fireChannelInactive()
    }

    // MARK: Carrying out actions in order

    private func run(_ actions: [ReplayMatcher.Action]) {
        if let session = matcher.sessionID, session != announcedSession, let context {
            // Toxics pinned to a recorded session learn which one this connection follows (as the client's bytes
            // narrow it down), before its replies.
            announcedSession = session
            context.triggerUserOutboundEvent(ReplayedSessionChosen(session: session), promise: nil)
        }
        pending.append(contentsOf: actions)
        drain()
    }

    private func drain() {
        while !waiting, !awaitingWritability, pendingIndex < pending.count, let context {
            let action = pending[pendingIndex]
            let delay = Self.delay(of: action)
            if delay > 0, !delayServed {
                waiting = true
                context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay)) {
                    self.waiting = false
                    self.delayServed = true
                    self.drain()
                }
                return
            }
            delayServed = false
            if case .send(.stored, _) = action {
                readFromTape(context: context)
                return
            }
            pendingIndex += 1
            perform(action)
        }
        if pendingIndex == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingIndex = 0
        }
    }

    /// Sends the stored sends from `pendingIndex` on that are due at once (up to ``readBatchBytes``), read from
    /// the tape, then goes on with what follows once the client has room for more. The next batches are read
    /// while this one is written, on the tape's readers in turn, so that the socket never waits for the tape: at
    /// most ``readDepth`` batches are held besides the one being written.
    private func readFromTape(context: ChannelHandlerContext) {
        readAhead(on: context.eventLoop)
        guard let batch = readsAhead.first else { return }
        waiting = true
        batch.bytes.assumeIsolated().whenComplete { result in
            self.waiting = false
            guard let context = self.context, context.channel.isActive else { return }
            switch result {
            case .success(let buffer):
                self.readsAhead.removeFirst()
                self.pendingIndex += batch.count
                self.writeUpstream(buffer, context: context)
                self.readAhead(on: context.eventLoop)
                if !context.channel.isWritable { self.awaitingWritability = true }
                self.drain()
            case .failure(let error):
                self.failReading(context: context, reason: "\(error)")
            }
        }
    }

    /// Starts reading batches of stored sends from `pendingIndex` on, until ``readDepth`` are under way.
    private func readAhead(on loop: any EventLoop) {
        if let first = readsAhead.first, first.start != pendingIndex { readsAhead.removeAll() }
        var next = readsAhead.last.map { $0.start + $0.count } ?? pendingIndex
        while readsAhead.count < Self.readDepth, let read = startRead(at: next, on: loop) {
            readsAhead.append(read)
            next = read.start + read.count
        }
    }

    /// Starts reading the batch of stored sends at `start`: the first, and those after it that are due at once.
    /// Nil when no stored send is there.
    private func startRead(at start: Int, on loop: any EventLoop) -> TapeRead? {
        var batch: [StoredPayload] = []
        var bytes = 0
        var index = start
        while index < pending.count, bytes < Self.readBatchBytes,
            case .send(.stored(let payload), let delay) = pending[index], batch.isEmpty || delay == 0
        {
            batch.append(payload)
            bytes += payload.bytes.count
            index += 1
        }
        guard !batch.isEmpty else { return nil }
        defer { batchesRead += 1 }
        return TapeRead(start: start, count: batch.count, bytes: payloads.read(batch, reader: batchesRead, on: loop))
    }

    /// The tape could not give the bytes a session needs: the client would get a reply cut short, so it is
    /// reset and the replay fails with the reason.
    private func failReading(context: ChannelHandlerContext, reason: String) {
        pending.removeAll()
        pendingIndex = 0
        readsAhead.removeAll()
        report(matcher.abandon(reason: "cannot read the recorded reply: \(reason)"))
        RelayHandler.armReset(context.channel)
        context.close(promise: nil)
    }

    /// Relays the rest of the connection to the real upstream and records it as a new session: first the
    /// client's bytes so far, then whatever both sides say. The upstream's first bytes, as many as the tape
    /// already answered, are recorded but not passed on: the client heard their recorded equivalent.
    private func handOff(context: ChannelHandlerContext, reason: String) {
        guard let missing, !handingOff else { return }
        handingOff = true
        pending.removeAll()
        pendingIndex = 0
        readsAhead.removeAll()
        // The tape could not serve this connection: give back any session it was following.
        _ = matcher.connectionClosed()
        let client = context.channel
        let clientAddress = self.client
        logger.info(
            "no recorded session matches, recording a new one",
            metadata: [
                "tapedeck.route": "\(route)", "tapedeck.client": "\(clientAddress)", "tapedeck.reason": "\(reason)",
            ]
        )
        let session = missing.recorder.beginSession(route: missing.route, clientAddress: clientAddress)
        // Once the upstream answers, this handler steps aside and hands over what the client sent so far.
        let handover = RelaySplice.Handover(upstreamBytesToSkip: matcher.upstreamBytesSent) {
            self.ledger.recorded(.init(route: self.route, client: clientAddress, reason: reason))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            defer { self.clientBytes = ByteBuffer() }
            return .init(bytes: self.clientBytes, ended: self.clientInputEnded)
        }
        // Only a fresh connection's pipeline can refuse the relay: with a handover nothing is added yet.
        try? RelaySplice(
            route: missing.route,
            upstream: missing.upstream,
            session: session,
            tracker: missing.tracker,
            logger: logger,
            handover: handover
        ).attach(to: client)
    }

    private static func delay(of action: ReplayMatcher.Action) -> Int64 {
        switch action {
        case .send(_, let delay), .sendEdited(_, _, let delay), .halfClose(let delay), .close(let delay),
            .reset(let delay):
            return delay
        case .mismatch: return 0
        }
    }

    private func perform(_ action: ReplayMatcher.Action) {
        guard let context, context.channel.isActive else { return }
        switch action {
        case .send(.inline(let bytes), _):
            writeUpstream(bytes, context: context)
        case .send(.stored, _):
            // Read from the tape by `drain()`, never performed directly.
            assertionFailure("a stored send reached perform")
        case .sendEdited(let bytes, let edits, _):
            let edited = UpstreamEdit.apply(edits, to: bytes) { source in
                switch source {
                case .clientValue(let position): return self.normalizer?.captures[position]
                case .secret(let name): return self.secrets[name].map { Data($0.utf8) }
                }
            }
            writeUpstream(edited, context: context)
        case .halfClose:
            flushScram(context: context)
            let flushed = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: flushed)
            flushed.futureResult.assumeIsolated().whenSuccess { context.close(mode: .output, promise: nil) }
        case .close:
            flushScram(context: context)
            let flushed = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: flushed)
            flushed.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        case .reset:
            RelayHandler.armReset(context.channel)
            context.close(promise: nil)
        case .mismatch(let mismatch) where missing != nil:
            handOff(context: context, reason: mismatch.reason)
        case .mismatch(let mismatch):
            report(mismatch)
            RelayHandler.armReset(context.channel)
            context.close(promise: nil)
        }
    }

    /// Writes recorded upstream bytes, through the lens and the SCRAM responder while they may rewrite them.
    private func writeUpstream(_ bytes: Data, context: ChannelHandlerContext) {
        var bytes = bytes
        if lens?.isRewritingUpstream == true { bytes = lens!.rewriteUpstream(bytes) }
        guard !scram.isPassingThrough else {
            return context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
        }
        let rewritten = scram.rewriteUpstream(bytes)
        if let reason = scram.needsPassword ?? scram.failure {
            // The client would check a server signature the tape cannot give: say why, rather than let it fail.
            return failScram(reason, context: context)
        }
        if !rewritten.isEmpty { context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: rewritten)), promise: nil) }
    }

    private func writeUpstream(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard !scram.isPassingThrough || lens?.isRewritingUpstream == true else {
            return context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
        writeUpstream(Data(buffer.readableBytesView), context: context)
    }

    /// The recorded upstream is done sending: what the responder held back goes out first.
    private func flushScram(context: ChannelHandlerContext) {
        guard !scram.isPassingThrough else { return }
        let held = scram.flush()
        if !held.isEmpty { context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: held)), promise: nil) }
    }

    private func failScram(_ reason: String, context: ChannelHandlerContext) {
        pending.removeAll()
        pendingIndex = 0
        readsAhead.removeAll()
        if !matcher.finished { report(matcher.abandon(reason: reason)) }
        RelayHandler.armReset(context.channel)
        context.close(promise: nil)
    }

    private func report(_ mismatch: ReplayMatcher.Mismatch) {
        ledger.mismatched(
            route: route,
            client: client,
            closestSession: mismatch.closestSessionID,
            offset: mismatch.offset,
            expected: mismatch.expected,
            actual: mismatch.actual,
            reason: mismatch.reason,
            logger: logger
        )
    }
}

/// Everything a replay connection needs to hand itself over to the real upstream.
struct MissingSessionHandoff: Sendable {
    var route: Route
    var upstream: Endpoint
    var recorder: Recorder
    var tracker: ConnectionTracker
}
