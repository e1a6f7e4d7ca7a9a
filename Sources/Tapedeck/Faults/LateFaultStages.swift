import NIOCore

/// A relayed connection's fault stages, put in its pipelines only once its route has a toxic.
///
/// A stage costs a connection one more handler on each channel for every read, even with nothing to do, which
/// small request-response traffic feels; so a connection accepted while its route has no toxic starts without
/// stages and watches the route instead. When a toxic arrives (through the control API, say) the stages join
/// both pipelines in front of the relay, and act from the next byte: exchanges and offsets then count from there.
final class LateFaultStages {
    private let faults: RouteFaults
    private let makeConversation: () -> FaultConversation
    private var client: (channel: any Channel, relay: RelayHandler)?
    private var upstream: (channel: any Channel, relay: RelayHandler)?
    private var observer: Int?
    private var placed = false

    /// Watches `faults` for the connection accepted on `loop`.
    init(faults: RouteFaults, on loop: any EventLoop, makeConversation: @escaping () -> FaultConversation) {
        self.faults = faults
        self.makeConversation = makeConversation
        let stages = NIOLoopBound(self, eventLoop: loop)
        observer = faults.addObserver {
            loop.execute { stages.value.routeChanged() }
        }
    }

    /// The client's relay is in its pipeline.
    func clientReady(_ channel: any Channel, relay: RelayHandler) {
        client = (channel, relay)
        channel.closeFuture.assumeIsolated().whenComplete { _ in self.stopWatching() }
    }

    /// The upstream is connected and its relay in its pipeline: a toxic that came meanwhile acts now.
    func upstreamReady(_ channel: any Channel, relay: RelayHandler) {
        upstream = (channel, relay)
        routeChanged()
    }

    private func routeChanged() {
        guard !placed, let client, let upstream, !faults.snapshot().toxics.isEmpty else { return }
        placed = true
        stopWatching()
        let conversation = makeConversation()
        do {
            try client.channel.pipeline.syncOperations.addHandler(
                InboundFaultHandler(conversation: conversation, stream: .upstream),
                position: .before(client.relay)
            )
            try upstream.channel.pipeline.syncOperations.addHandler(
                InboundFaultHandler(conversation: conversation, stream: .downstream),
                position: .before(upstream.relay)
            )
        } catch {
            // A channel closing meanwhile has nothing left to fault.
        }
    }

    private func stopWatching() {
        guard let observer else { return }
        faults.removeObserver(observer)
        self.observer = nil
    }
}
