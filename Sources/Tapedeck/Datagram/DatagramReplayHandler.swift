import Foundation
import Logging
import NIOCore

/// Serves a UDP route from the tape: sits on the route's listening socket, follows each client address as a
/// live flow, and answers every client datagram with the upstream datagrams recorded after the same one.
///
/// On a DNS route a query is answered by its question: the recorded answer to the same name (in any letter case),
/// type and class, sent with the live query's transaction id and letter case. A datagram the tape never saw is
/// reported as a mismatch, with the closest recorded one; a DNS query the tape never saw gets SERVFAIL, so that
/// the client fails at once rather than after its timeout.
///
/// With toxics on the route (see ``DatagramFaultStateMachine``), the client's datagrams go through the `upstream`
/// ones before they are answered (a lost query is never answered, a delayed one is answered late) and the replies
/// through the `downstream` ones as they are sent.
final class DatagramReplayHandler: ChannelInboundHandler, DatagramDraining {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    /// What a route's replay needs, shared by the handlers of its listeners (one per event loop).
    struct Settings: Sendable {
        var route: Route
        var book: DatagramReplayBook
        var ledger: ReplayLedger
        var pace: ReplayPace
        var logger: Logger
        /// The route's toxics; nil when replay serves without faults, which then cost nothing.
        var faults: RouteFaults? = nil
    }

    /// A client address being served.
    private final class LiveFlow {
        let client: SocketAddress
        var matcher: DatagramMatcher
        var lastActivity = NIODeadline.now()
        var idleCheck: Scheduled<Void>?
        var mismatched = false
        /// The session of the last DNS answer, for the report.
        var answeredFrom: Int64?
        /// The route's toxics as this flow meets them; nil on a route served without faults.
        var faults: DatagramFaultStateMachine?
        /// The tasks that send the datagrams toxics held back.
        var faultTimers = DatagramFaultTimers()

        init(client: SocketAddress, book: DatagramReplayBook, faults: DatagramFaultStateMachine?) {
            self.client = client
            matcher = DatagramMatcher(book: book)
            self.faults = faults
        }

        /// The recorded session the flow is served from, as far as known.
        var recordedSession: Int64? {
            matcher.currentSessionID ?? answeredFrom
        }
    }

    private let settings: Settings
    private var flows: [SocketAddress: LiveFlow] = [:]
    private var context: ChannelHandlerContext?
    /// Closes the listener at shutdown once what the kernel queued has been taken in.
    private let quiet: DatagramQuietCloser
    private var needsFlush = false

    init(settings: Settings, eventLoop: any EventLoop) {
        self.settings = settings
        quiet = DatagramQuietCloser(loop: eventLoop)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        endAllFlows()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        endAllFlows()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let flow = flows[envelope.remoteAddress] ?? open(envelope.remoteAddress, context: context)
        let now = NIODeadline.now()
        flow.lastActivity = now
        quiet.datagramCame(at: now)
        if flow.faults != nil, flow.faults!.isActive() {
            // Collected first: answering sends replies through the same toxics.
            var passed: [ByteBuffer] = []
            flow.faults!.recordedSession = flow.recordedSession
            flow.faults!.receive(envelope.data, stream: .upstream, now: now) { passed.append($0) }
            for datagram in passed { answer(datagram, flow: flow, context: context) }
            return faultsActed(on: flow, .upstream)
        }
        answer(envelope.data, flow: flow, context: context)
    }

    /// Answers a client's datagram from the tape.
    private func answer(_ received: ByteBuffer, flow: LiveFlow, context: ChannelHandlerContext) {
        if settings.book.isDNS {
            let query = Array(received.readableBytesView)
            if let question = DNSQuestion.Key.ofQuery(query)
                ?? DNSQuestion(message: query).map({ (key: $0.key, nameRange: $0.nameRange) })
            {
                return answerQuery(
                    query,
                    key: question.key,
                    nameRange: question.nameRange,
                    flow: flow,
                    context: context
                )
            }
        }
        let datagram = Data(received.readableBytesView)
        switch flow.matcher.match(datagram) {
        case .answer(let exchange, _, let echoes):
            for reply in exchange.replies {
                guard let payload = reply.payload else {
                    // The upstream's host refused this datagram when recording; replay cannot send ICMP on the
                    // client's behalf, so the client sees no reply, as it saw none then.
                    settings.logger.debug(
                        "the recorded upstream refused this datagram (ICMP port unreachable); nothing is sent",
                        metadata: ["tapedeck.route": "\(settings.route.name)"]
                    )
                    continue
                }
                send(
                    ByteBuffer(bytes: DatagramMatcher.applying(echoes, to: payload)),
                    to: flow,
                    after: reply.delay,
                    context: context
                )
            }
        case .mismatch:
            reportMismatch(datagram, flow: flow, reason: "a datagram the tape never saw")
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context)
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A client's host may refuse a reply (its socket closed): ECONNREFUSED on the listener, which stays open.
        settings.logger.debug(
            "udp listener error",
            metadata: ["tapedeck.route": "\(settings.route.name)", "tapedeck.error": "\(error)"]
        )
    }

    // MARK: DNS

    private func answerQuery(
        _ query: [UInt8],
        key: DNSQuestion.Key,
        nameRange: Range<Int>,
        flow: LiveFlow,
        context: ChannelHandlerContext
    ) {
        guard let answer = settings.book.nextAnswer(to: key) else {
            var reason = "a DNS query the tape never saw: \(key.name) type \(key.type)"
            if let closest = settings.book.closestQuestion(to: key) {
                reason +=
                    " (closest recorded: \(closest.key.name) type \(closest.key.type), session \(closest.sessionID))"
            }
            reportMismatch(Data(query), flow: flow, reason: reason)
            if let failure = DNSQuestion.serverFailure(answering: query) {
                send(ByteBuffer(bytes: failure), to: flow, after: 0, context: context)
            }
            return
        }
        flow.answeredFrom = answer.sessionID
        // The upstream never answered this query when recording: neither does replay.
        guard let reply = answer.fitted(to: query, nameRange: nameRange, allocator: context.channel.allocator) else {
            return
        }
        send(reply, to: flow, after: answer.delay, context: context)
    }

    // MARK: Sending

    private func send(_ payload: ByteBuffer, to flow: LiveFlow, after delay: Int64, context: ChannelHandlerContext) {
        guard case .recorded(let factor) = settings.pace, delay > 0 else {
            return deliver(payload, to: flow, context: context)
        }
        let wait = Int64((Double(delay) / factor).rounded())
        context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(wait)) { [self] in
            guard let context = self.context else { return }
            deliver(payload, to: flow, context: context)
            flushIfNeeded(context)
        }
    }

    /// Sends a reply to the flow's client through the route's `downstream` toxics.
    private func deliver(_ payload: ByteBuffer, to flow: LiveFlow, context: ChannelHandlerContext) {
        guard flows[flow.client] === flow, flow.faults != nil, flow.faults!.isActive() else {
            return write(payload, to: flow, context: context)
        }
        flow.faults!.recordedSession = flow.recordedSession
        flow.faults!.receive(payload, stream: .downstream, now: .now()) { write($0, to: flow, context: context) }
        faultsActed(on: flow, .downstream)
    }

    /// Writes a reply to the flow's client; flushed at the end of the burst.
    private func write(_ payload: ByteBuffer, to flow: LiveFlow, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: flow.client, data: payload)), promise: nil)
        needsFlush = true
    }

    private func flushIfNeeded(_ context: ChannelHandlerContext) {
        guard needsFlush else { return }
        needsFlush = false
        context.flush()
    }

    // MARK: Toxics

    /// Toxics acted on a datagram of `flow`: logs what fired, and sends what they held back when it is due.
    private func faultsActed(on flow: LiveFlow, _ stream: ToxicStream) {
        guard let firings = flow.faults?.takeFirings(), let loop = context?.eventLoop else { return }
        for firing in firings { firing.log(to: settings.logger) }
        if let dropped = flow.faults?.takeOverflow(), dropped > 0 {
            settings.logger.debug(
                "dropped datagrams toxics held back beyond the limit",
                metadata: ["tapedeck.route": "\(settings.route.name)", "tapedeck.dropped": "\(dropped)"]
            )
        }
        let deadline = flows[flow.client] === flow ? flow.faults?.nextDeadline(stream) : nil
        if let deadline { quiet.datagramCame(at: deadline) }
        flow.faultTimers.arm(stream, at: deadline) { at in
            loop.assumeIsolated().scheduleTask(deadline: at) { [self] in heldDatagramsDue(of: flow, stream) }
        }
    }

    /// The first datagram toxics held back `stream`'s way is due: answers or sends every one that is.
    private func heldDatagramsDue(of flow: LiveFlow, _ stream: ToxicStream) {
        flow.faultTimers.ran(stream)
        guard flows[flow.client] === flow, let context else { return }
        let now = NIODeadline.now()
        switch stream {
        case .upstream:
            var passed: [ByteBuffer] = []
            flow.faults?.takeDue(.upstream, now: now) { passed.append($0) }
            for datagram in passed { answer(datagram, flow: flow, context: context) }
        case .downstream:
            flow.faults?.takeDue(.downstream, now: now) { write($0, to: flow, context: context) }
        }
        flushIfNeeded(context)
        faultsActed(on: flow, stream)
    }

    // MARK: Flows

    private func open(_ client: SocketAddress, context: ChannelHandlerContext) -> LiveFlow {
        let faults = settings.faults.map { faults in
            DatagramFaultStateMachine(
                faults: faults,
                session: faults.nextSessionOrdinal(),
                client: "\(Endpoint(client).asDatagram)"
            )
        }
        let flow = LiveFlow(client: client, book: settings.book, faults: faults)
        flows[client] = flow
        settings.ledger.connectionOpened()
        scheduleIdleCheck(flow, on: context.eventLoop)
        return flow
    }

    private func scheduleIdleCheck(_ flow: LiveFlow, on loop: any EventLoop) {
        let timeout = settings.route.udpIdleTimeout.timeAmount
        flow.idleCheck = loop.assumeIsolated().scheduleTask(deadline: flow.lastActivity + timeout) { [self] in
            guard flows[flow.client] === flow else { return }
            if flow.lastActivity + timeout <= .now() {
                end(flow)
            } else {
                scheduleIdleCheck(flow, on: loop)
            }
        }
    }

    private func end(_ flow: LiveFlow) {
        guard flows[flow.client] === flow else { return }
        flows[flow.client] = nil
        flow.idleCheck?.cancel()
        // Datagrams toxics still hold back are lost with the flow.
        flow.faultTimers.cancel()
        flow.faults?.removeAll()
        if !flow.mismatched, let session = flow.matcher.currentSessionID ?? flow.answeredFrom {
            settings.ledger.replayed(
                ReplayReport.Replayed(
                    route: settings.route.name,
                    session: session,
                    client: "\(Endpoint(flow.client).asDatagram)"
                )
            )
        }
        flow.matcher.end()
    }

    private func endAllFlows() {
        for flow in Array(flows.values) { end(flow) }
    }

    private func reportMismatch(_ datagram: Data, flow: LiveFlow, reason: String) {
        flow.mismatched = true
        let closest = settings.book.closest(to: datagram)
        let offset = closest.map { recorded in zip(recorded.request, datagram).prefix { $0 == $1 }.count } ?? 0
        settings.ledger.mismatched(
            route: settings.route.name,
            client: "\(Endpoint(flow.client).asDatagram)",
            closestSession: closest?.sessionID,
            offset: offset,
            expected: Self.excerpt(closest?.request ?? Data(), around: offset),
            actual: Self.excerpt(datagram, around: offset),
            reason: reason,
            logger: settings.logger
        )
    }

    /// Up to 64 bytes of a datagram from a little before `offset`, as the mismatch shows them.
    private static func excerpt(_ bytes: Data, around offset: Int) -> Data {
        let start = max(0, min(offset - 16, bytes.count))
        return bytes.subdata(in: (bytes.startIndex + start)..<(bytes.startIndex + min(bytes.count, start + 64)))
    }

    // MARK: Closing when quiet

    func closeWhenQuiet(deadline: NIODeadline) -> EventLoopFuture<Void> {
        quiet.closeWhenQuiet({ [weak self] in self?.context }, deadline: deadline)
    }
}
