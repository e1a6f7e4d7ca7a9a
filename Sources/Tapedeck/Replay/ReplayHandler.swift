import Foundation
import Logging
import NIOCore

/// Serves one client connection from the tape: feeds the client's bytes to a `ReplayMatcher` and carries out
/// what it answers, in order, waiting where the pace asks for it.
final class ReplayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var matcher: ReplayMatcher
    private let route: String
    private let ledger: ReplayLedger
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var pending: [ReplayMatcher.Action] = []
    private var pendingIndex = 0
    private var waiting = false
    private var client = "unknown"

    init(matcher: ReplayMatcher, route: String, ledger: ReplayLedger, logger: Logger) {
        self.matcher = matcher
        self.route = route
        self.ledger = ledger
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
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
        run(matcher.receive(Data(buffer.readableBytesView)))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            run(matcher.endOfInput(reset: false))
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
        if !matcher.clientEnded, !matcher.finished {
            // The client went away without a FIN we saw (it reset, or closed while we wrote).
            run(matcher.endOfInput(reset: true))
        }
        if let session = matcher.connectionClosed() {
            ledger.replayed(.init(route: route, session: session, client: client))
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
        case .mismatch(let mismatch):
            let entry = ReplayReport.Mismatch(
                route: route, client: client, closestSession: mismatch.closestSessionID, offset: mismatch.offset,
                expected: ByteExcerpt.render(mismatch.expected), actual: ByteExcerpt.render(mismatch.actual),
                reason: mismatch.reason
            )
            logger.warning("replay mismatch: \(entry)")
            ledger.mismatched(entry)
            RelayHandler.armReset(context.channel)
            context.close(promise: nil)
        }
    }
}
