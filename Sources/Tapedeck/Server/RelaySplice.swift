import Logging
import NIOCore

/// Splices a relay between an accepted client connection and its route's upstream: connects the upstream on the
/// client's event loop, glues a matched pair of ``RelayHandler``s between the two, records the session when asked,
/// tracks the upstream for shutdown, and resets the client when the upstream cannot be reached.
///
/// The proxy splices every connection it accepts. Replay splices a connection the tape cannot serve, to record it
/// as a new session: that connection comes with a ``Handover`` of what the client already sent.
///
/// ```swift
/// // In a child channel initializer, with reads off until the relay is glued:
/// try RelaySplice(route: route, upstream: upstream, session: session, tracker: tracker, logger: logger)
///     .attach(to: channel)
/// ```
struct RelaySplice {
    /// What a connection served by another handler until now passes on to the relay: replay handing over a
    /// session the tape lacks to the real upstream.
    struct Handover {
        /// What the client sent before the relay was in place.
        struct ClientInput {
            /// The client's bytes so far, written upstream before anything the relay reads.
            var bytes: ByteBuffer
            /// The client's FIN came too: the upstream hears it after those bytes.
            var ended: Bool
        }

        /// How many of the upstream's first bytes the client already heard (their recorded equivalent, from the
        /// tape): recorded, but not passed on again.
        var upstreamBytesToSkip: Int
        /// Called once the upstream is connected, just before the relay takes the client's pipeline over: the
        /// previous handler steps out and says what the client sent. Not at the handoff itself, because bytes of
        /// the read in progress and a FIN can still arrive while the upstream connects.
        var takeOver: () -> ClientInput
    }

    /// The route relayed: its name and connect timeout, for the connect and for reporting its failure.
    var route: Route
    /// Where the relay connects.
    var upstream: Endpoint
    /// Where the session's events go, when recording.
    var session: SessionRecorder?
    /// The server's open connections; the upstream joins them once connected, so shutdown can drain it too.
    var tracker: ConnectionTracker
    /// Where a failed connect is reported.
    var logger: Logger
    /// What the client already sent, when another handler served the connection until now.
    var handover: Handover?
    /// The session's TLS, on a route that speaks TLS.
    var tls: TLSRelaySession?
    /// The session's fault stages, when the route's toxics apply: one on the client connection for the
    /// `upstream` stream, one on the upstream connection for the `downstream` stream, each in front of its relay.
    var faultStages: (client: InboundFaultHandler, upstream: InboundFaultHandler)?
    /// Instead of ``faultStages`` on a route without toxics yet: the stages join once a toxic does.
    var lateFaults: LateFaultStages?

    /// Splices the relay onto `client`, on its event loop.
    ///
    /// A fresh connection gets its client relay at once, so that a FIN or a close that comes while the upstream
    /// connects already reaches it, and connects the upstream once the client is active; call this from the
    /// child channel initializer, with reads off. With a ``Handover`` the client is active and its previous
    /// handler keeps it until the upstream is connected. Either way reads stay off until the relay is glued:
    /// what the client sends meanwhile waits in the kernel.
    ///
    /// - Parameter client: The accepted connection.
    /// - Throws: When the client's pipeline cannot take the relay.
    func attach(to client: any Channel) throws {
        let relays = RelayHandler.matchedPair(lingerTimeout: RelaySocket.lingerTimeout, recorder: session)
        guard handover != nil else {
            // Sits behind the relay, which passes on lifecycle events but never reads, so it costs nothing per byte.
            let connectOnActive = ActivationHandler { connect(client, relays) }
            if let tls { try client.pipeline.syncOperations.addHandler(tls.clientGate()) }
            if let stage = faultStages?.client { try client.pipeline.syncOperations.addHandler(stage) }
            try client.pipeline.syncOperations.addHandlers(relays.client, connectOnActive)
            lateFaults?.clientReady(client, relay: relays.client)
            return
        }
        // Cannot fail on an active channel; if the client is gone, the connect below finds out soon enough.
        try? client.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
        connect(client, relays)
    }

    private func connect(_ client: any Channel, _ relays: (client: RelayHandler, upstream: RelayHandler)) {
        let skipped = handover?.upstreamBytesToSkip ?? 0
        let skip = skipped > 0 ? SkipPrefixHandler(count: skipped, session: session) : nil
        let upstreamHandlers = NIOLoopBound(
            (skip, relays.upstream, tls, faultStages?.upstream),
            eventLoop: client.eventLoop
        )
        let connected = UpstreamConnector.connect(
            to: upstream,
            timeout: route.connectTimeout,
            on: client.eventLoop
        ) { channel in
            let (skip, relay, tls, stage) = upstreamHandlers.value
            if let skip { try channel.pipeline.syncOperations.addHandler(skip) }
            if let tls { try channel.pipeline.syncOperations.addHandler(tls.upstreamGate()) }
            if let stage { try channel.pipeline.syncOperations.addHandler(stage) }
            try channel.pipeline.syncOperations.addHandler(relay)
        }
        connected.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let upstream):
                glue(client, to: upstream, clientRelay: relays.client)
                lateFaults?.upstreamReady(upstream, relay: relays.upstream)
            case .failure(let error):
                fail(client, error: error)
            }
        }
    }

    /// The upstream is connected: hands it what the client already sent, puts the client relay in place if it
    /// is not yet, and starts reading.
    private func glue(_ client: any Channel, to upstream: any Channel, clientRelay: RelayHandler) {
        tracker.track(upstream)
        if let session, let address = upstream.remoteAddress {
            session.upstreamConnected(to: "\(Endpoint(address))")
        }
        if let handover {
            let input = handover.takeOver()
            if input.bytes.readableBytes > 0 {
                session?.recordData(input.bytes, from: .clientToUpstream)
                upstream.writeAndFlush(input.bytes, promise: nil)
            }
            try? client.pipeline.syncOperations.addHandler(clientRelay)
            if input.ended {
                // The FIN came before the relay was in place: pass it through the client relay as if it had read
                // it, so that it is recorded, the upstream's output is shut after the bytes above, and both relay
                // halves know it. Shut behind their backs, the upstream's own FIN later looked like a reset.
                client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            }
        }
        // The relay is glued: from now on every byte read has somewhere to go.
        try? client.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
    }

    /// The upstream cannot be reached: report why, and reset the client.
    private func fail(_ client: any Channel, error: any Error) {
        UpstreamConnector.reportFailure(error, route: route, client: client, session: session, logger: logger)
        guard handover == nil else {
            // No relay on the client to do it: its side of the session ends here, by our hand.
            session?.recordEnd(of: .clientToUpstream, reset: false, byPeer: false)
            RelayHandler.armReset(client)
            client.close(promise: nil)
            return
        }
        // Through the client relay, so that it knows the end was ours and records it so.
        client.pipeline.fireUserInboundEventTriggered(RelayHandler.ResetRequest(interrupted: false))
    }
}
