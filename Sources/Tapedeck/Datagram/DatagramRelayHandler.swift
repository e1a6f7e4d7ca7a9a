import Logging
import NIOCore
import NIOPosix

/// Relays a UDP route's datagrams: sits on the route's listening socket, opens one connected upstream socket per
/// client address (a ``DatagramFlow``), and sends each upstream reply back to the client whose socket it came in
/// on. When recording, each flow is a session and each datagram one event.
///
/// Datagram boundaries are kept exactly: one read is one datagram, written as one. Memory stays bounded as a
/// kernel bounds it: a datagram for a socket that cannot take it now is dropped and counted, never queued
/// without limit.
///
/// With toxics on the route (see ``DatagramFaultStateMachine``), each flow's datagrams go through them each way;
/// what the tape records is what each socket really sent after them, so a datagram a `loss` toxic dropped is not
/// on it, and one a `latency` toxic delayed is recorded when it was sent.
final class DatagramRelayHandler: ChannelInboundHandler, DatagramDraining {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    /// What a route's relay needs, shared by the handlers of its listeners (one per event loop).
    struct Settings: Sendable {
        var route: Route
        /// The upstream, resolved once when the route was bound.
        var upstream: SocketAddress
        var recorder: Recorder?
        var logger: Logger
        /// The route's toxics; nil when the relay serves without faults, which then cost nothing.
        var faults: RouteFaults? = nil
    }

    private let settings: Settings
    private var flows: [SocketAddress: DatagramFlow] = [:]
    /// Flows with datagrams to send upstream at the end of the current read burst.
    private var unflushed: [DatagramFlow] = []
    private var context: ChannelHandlerContext?
    /// Closes the listener at shutdown once what the kernel queued has been taken in.
    private let quiet: DatagramQuietCloser
    /// Whether replies were written to clients since the last flush.
    private var repliesUnflushed = false

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
        // The listener closed (shutdown): every flow ends with it.
        endAllFlows()
        context.fireChannelInactive()
    }

    // MARK: Client to upstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let datagram = DatagramSocket.compacted(envelope.data)
        let flow = flows[envelope.remoteAddress] ?? openFlow(for: envelope.remoteAddress, context: context)
        let now = NIODeadline.now()
        flow.lastActivity = now
        quiet.datagramCame(at: now)
        if flow.faults != nil, flow.faults!.isActive() {
            flow.faults!.receive(datagram, stream: .upstream, now: now) { forwardUpstream($0, of: flow) }
            return faultsActed(on: flow, .upstream)
        }
        forwardUpstream(datagram, of: flow)
    }

    /// Records a client's datagram and queues it for the flow's upstream socket (or holds it until the socket is
    /// open).
    private func forwardUpstream(_ datagram: ByteBuffer, of flow: DatagramFlow) {
        flow.session?.recordDatagram(datagram, from: .clientToUpstream)
        guard flow.upstream != nil else {
            if !flow.hold(datagram) { flow.drop() }
            return
        }
        if flow.outbox.isEmpty { unflushed.append(flow) }
        flow.outbox.append(datagram)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        sendOutboxes()
        context.fireChannelReadComplete()
    }

    /// Sends what each flow queued for its upstream socket.
    private func sendOutboxes() {
        for flow in unflushed {
            if let upstream = flow.upstream { send(flow.outbox, to: upstream, of: flow) }
            flow.outbox.removeAll(keepingCapacity: true)
        }
        unflushed.removeAll(keepingCapacity: true)
    }

    /// Writes a burst of the client's datagrams to the flow's upstream socket and flushes them, so that NIO sends
    /// them together (`sendmmsg`); what the socket cannot take is dropped and counted.
    ///
    /// The last write carries a promise, one per burst: a send the upstream's host refused (ICMP port
    /// unreachable reported on this send) fails it, and every write after it, with ECONNREFUSED, and closes the
    /// socket, without an error event of its own.
    private func send(_ datagrams: [ByteBuffer], to upstream: any Channel, of flow: DatagramFlow) {
        guard !datagrams.isEmpty else { return }
        let written = upstream.eventLoop.makePromise(of: Void.self)
        var promiseWritten = false
        for (index, datagram) in datagrams.enumerated() {
            guard upstream.isWritable else {
                flow.drop()
                continue
            }
            let isLast = index == datagrams.count - 1
            upstream.write(datagram, promise: isLast ? written : nil)
            promiseWritten = isLast
        }
        // The last datagram was dropped: no write carries the promise, which must still be completed.
        if !promiseWritten { written.succeed() }
        upstream.flush()
        written.futureResult.assumeIsolated().whenFailure { [self] error in
            if let error = error as? IOError, error.errnoCode == ECONNREFUSED { upstreamRefused(error, flow: flow) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A listening UDP socket can see ECONNREFUSED for a reply a client's host refused; nothing to do for it,
        // and the socket stays open (NIO closes datagram channels only on fatal errors).
        settings.logger.debug(
            "udp listener error",
            metadata: ["tapedeck.route": "\(settings.route.name)", "tapedeck.error": "\(error)"]
        )
    }

    private func openFlow(for client: SocketAddress, context: ChannelHandlerContext) -> DatagramFlow {
        let session = settings.recorder?.beginSession(
            route: settings.route,
            clientAddress: "\(Endpoint(client).asDatagram)"
        )
        session?.beginFlow()
        let faults = settings.faults.map { faults in
            DatagramFaultStateMachine(
                faults: faults,
                session: faults.nextSessionOrdinal(),
                client: "\(Endpoint(client).asDatagram)"
            )
        }
        let flow = DatagramFlow(client: client, session: session, faults: faults)
        flows[client] = flow
        scheduleIdleCheck(flow, on: context.eventLoop)
        let handler = NIOLoopBound(
            DatagramUpstreamHandler(flow: flow, relay: self),
            eventLoop: context.eventLoop
        )
        let opening = DatagramBootstrap(group: context.eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try DatagramSocket.setOptions(on: channel, vectorReads: false)
                    try channel.pipeline.syncOperations.addHandler(handler.value)
                }
            }
            .connect(to: settings.upstream)
        opening.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let channel):
                guard !flow.ended else {
                    channel.close(promise: nil)
                    return
                }
                flow.upstream = channel
                session?.upstreamConnected(to: "\(Endpoint(settings.upstream).asDatagram)")
                send(flow.pending, to: channel, of: flow)
                flow.pending = []
                flow.pendingBytes = 0
            case .failure(let error):
                // No socket for this client (out of descriptors, say): what it sent is lost, and said so.
                settings.logger.warning(
                    "cannot open a UDP socket toward the upstream",
                    metadata: [
                        "tapedeck.route": "\(settings.route.name)", "tapedeck.client": "\(client)",
                        "tapedeck.error": "\(SocketErrorText.describe(error))",
                    ]
                )
                for _ in flow.pending { flow.drop() }
                flow.pending = []
                end(flow)
            }
        }
        return flow
    }

    // MARK: Upstream to client

    /// A reply from the upstream for `flow`'s client.
    func upstreamRead(_ received: ByteBuffer, flow: DatagramFlow) {
        guard !flow.ended, let context else { return }
        let datagram = DatagramSocket.compacted(received)
        let now = NIODeadline.now()
        flow.lastActivity = now
        quiet.datagramCame(at: now)
        if flow.faults != nil, flow.faults!.isActive() {
            flow.faults!.receive(datagram, stream: .downstream, now: now) {
                forwardDownstream($0, of: flow, context: context)
            }
            return faultsActed(on: flow, .downstream)
        }
        forwardDownstream(datagram, of: flow, context: context)
    }

    /// Records an upstream's reply and writes it to the flow's client; flushed at the end of the burst.
    private func forwardDownstream(_ datagram: ByteBuffer, of flow: DatagramFlow, context: ChannelHandlerContext) {
        flow.session?.recordDatagram(datagram, from: .upstreamToClient)
        guard context.channel.isWritable else { return flow.drop() }
        context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: flow.client, data: datagram)), promise: nil)
        repliesUnflushed = true
    }

    /// The upstream socket's read burst is over: send the replies it gave.
    func upstreamReadComplete() {
        guard repliesUnflushed, let context else { return }
        repliesUnflushed = false
        context.flush()
    }

    /// The upstream's host refused a datagram of `flow` (ICMP port unreachable, seen as ECONNREFUSED).
    ///
    /// A process cannot send ICMP on the client's socket without raw-socket privileges, so the refusal is recorded
    /// and logged (once per flow), and the client sees no reply, as it would see none if the upstream's host
    /// dropped the datagram.
    func upstreamRefused(_ error: any Error, flow: DatagramFlow) {
        guard !flow.ended else { return }
        let reason = SocketErrorText.describe(error)
        flow.session?.recordRefused(reason: reason)
        guard !flow.refusalLogged else { return }
        flow.refusalLogged = true
        settings.logger.warning(
            "the upstream refused a datagram (ICMP port unreachable): nothing listens there",
            metadata: [
                "tapedeck.route": "\(settings.route.name)", "tapedeck.client": "\(Endpoint(flow.client).asDatagram)",
                "tapedeck.upstream": "\(settings.route.upstreamText)",
            ]
        )
    }

    /// The upstream socket closed by itself (a fatal socket error): the flow is over.
    func upstreamClosed(flow: DatagramFlow) {
        end(flow)
    }

    // MARK: Toxics

    /// Toxics acted on a datagram of `flow`: logs what fired, and sends what they held back when it is due.
    private func faultsActed(on flow: DatagramFlow, _ stream: ToxicStream) {
        guard let firings = flow.faults?.takeFirings(), let loop = context?.eventLoop else { return }
        for firing in firings { firing.log(to: settings.logger) }
        // Too many held back: dropped, and counted as any datagram a socket could not take.
        for _ in 0..<(flow.faults?.takeOverflow() ?? 0) { flow.drop() }
        let deadline = flow.ended ? nil : flow.faults?.nextDeadline(stream)
        if let deadline { quiet.datagramCame(at: deadline) }
        flow.faultTimers.arm(stream, at: deadline) { at in
            loop.assumeIsolated().scheduleTask(deadline: at) { [self] in heldDatagramsDue(of: flow, stream) }
        }
    }

    /// The first datagram toxics held back `stream`'s way is due: sends every one that is.
    private func heldDatagramsDue(of flow: DatagramFlow, _ stream: ToxicStream) {
        flow.faultTimers.ran(stream)
        guard !flow.ended, let context else { return }
        let now = NIODeadline.now()
        switch stream {
        case .upstream:
            flow.faults?.takeDue(.upstream, now: now) { forwardUpstream($0, of: flow) }
            sendOutboxes()
        case .downstream:
            flow.faults?.takeDue(.downstream, now: now) { forwardDownstream($0, of: flow, context: context) }
            upstreamReadComplete()
        }
        faultsActed(on: flow, stream)
    }

    // MARK: Ending flows

    private func scheduleIdleCheck(_ flow: DatagramFlow, on loop: any EventLoop) {
        let deadline = flow.lastActivity + settings.route.udpIdleTimeout.timeAmount
        flow.idleCheck = loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            guard !flow.ended else { return }
            let idleSince = flow.lastActivity
            if idleSince + settings.route.udpIdleTimeout.timeAmount <= .now() {
                end(flow)
            } else {
                scheduleIdleCheck(flow, on: loop)
            }
        }
    }

    private func end(_ flow: DatagramFlow) {
        guard !flow.ended else { return }
        flow.ended = true
        flow.idleCheck?.cancel()
        // Datagrams toxics still hold back are lost with the flow, as a link going away loses what it carries.
        flow.faultTimers.cancel()
        flow.faults?.removeAll()
        flows[flow.client] = nil
        flow.upstream?.close(promise: nil)
        flow.session?.endFlow()
        if flow.dropped > 0 {
            settings.logger.warning(
                "dropped datagrams a socket could not take",
                metadata: [
                    "tapedeck.route": "\(settings.route.name)",
                    "tapedeck.client": "\(Endpoint(flow.client).asDatagram)",
                    "tapedeck.dropped": "\(flow.dropped)",
                ]
            )
        }
    }

    private func endAllFlows() {
        for flow in Array(flows.values) { end(flow) }
    }

    // MARK: Closing when quiet

    func closeWhenQuiet(deadline: NIODeadline) -> EventLoopFuture<Void> {
        quiet.closeWhenQuiet({ [weak self] in self?.context }, deadline: deadline)
    }
}
