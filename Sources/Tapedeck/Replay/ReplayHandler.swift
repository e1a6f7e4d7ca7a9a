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
    /// Everything the client sent, kept only when a missing session may have to be recorded from it.
    private var clientBytes = ByteBuffer()
    /// Replay gave up and is handing the connection to the real upstream.
    private var handingOff = false
    /// The client shut down its write half: the upstream must hear it too once the relay is glued.
    private var clientInputEnded = false
    private var context: ChannelHandlerContext?
    private var pending: [ReplayMatcher.Action] = []
    private var pendingIndex = 0
    private var waiting = false
    private var client = "unknown"
    /// The address this client connected to, as it may write it; normalized like the tape's recorded one.
    private var listenAddress: ListenAddressText?

    init(matcher: ReplayMatcher, route: String, ledger: ReplayLedger, logger: Logger, missing: MissingSessionHandoff?) {
        self.matcher = matcher
        self.route = route
        self.ledger = ledger
        self.logger = logger
        self.missing = missing
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        listenAddress = context.channel.localAddress.flatMap { ListenAddressText(Endpoint($0)) }
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
        guard !handingOff else { return }
        let bytes = Data(buffer.readableBytesView)
        run(matcher.receive(listenAddress?.normalize(bytes) ?? bytes))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            clientInputEnded = true
            if !handingOff { run(matcher.endOfInput(reset: false)) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, RelayHandler.isReset(errno: error.errnoCode) {
            run(matcher.endOfInput(reset: true))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
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
        pending.append(contentsOf: actions)
        drain()
    }

    private func drain() {
        while !waiting, pendingIndex < pending.count, let context {
            let action = pending[pendingIndex]
            let delay = Self.delay(of: action)
            if delay > 0 {
                waiting = true
                context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay)) {
                    self.waiting = false
                    self.perform(action)
                    self.pendingIndex += 1
                    self.drain()
                }
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

    /// Relays the rest of the connection to the real upstream and records it as a new session: first the
    /// client's bytes so far, then whatever both sides say. The upstream's first bytes, as many as the tape
    /// already answered, are recorded but not passed on: the client heard their recorded equivalent.
    private func handOff(context: ChannelHandlerContext, reason: String) {
        guard let missing, !handingOff else { return }
        handingOff = true
        pending.removeAll()
        pendingIndex = 0
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
        case .send(_, let delay), .halfClose(let delay), .close(let delay), .reset(let delay): return delay
        case .mismatch: return 0
        }
    }

    private func perform(_ action: ReplayMatcher.Action) {
        guard let context, context.channel.isActive else { return }
        switch action {
        case .send(let bytes, _):
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
        case .halfClose:
            let flushed = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: flushed)
            flushed.futureResult.assumeIsolated().whenSuccess { context.close(mode: .output, promise: nil) }
        case .close:
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

    private func report(_ mismatch: ReplayMatcher.Mismatch) {
        let entry = ReplayReport.Mismatch(
            route: route,
            client: client,
            closestSession: mismatch.closestSessionID,
            offset: mismatch.offset,
            expected: ByteExcerpt.render(mismatch.expected),
            actual: ByteExcerpt.render(mismatch.actual),
            reason: mismatch.reason
        )
        logger.warning("replay mismatch: \(entry)")
        ledger.mismatched(entry)
    }
}

/// Everything a replay connection needs to hand itself over to the real upstream.
struct MissingSessionHandoff: Sendable {
    var route: Route
    var upstream: Endpoint
    var recorder: Recorder
    var tracker: ConnectionTracker
}
