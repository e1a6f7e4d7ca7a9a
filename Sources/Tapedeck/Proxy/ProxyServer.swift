import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Relays every accepted connection of each route to that route's upstream, byte for byte.
///
/// Start it, read the bound addresses, and shut it down; shutdown stops accepting, lets open sessions finish
/// for up to a drain timeout, and then cuts off what is left. It starts once: a second ``start()`` throws, and a
/// second ``shutdown(drainTimeout:)`` returns the first one's outcome.
///
/// ```swift
/// let server = ProxyServer(
///     configuration: try ProxyConfiguration(routes: [Route(upstream: try Endpoint(parsing: "127.0.0.1:6379"))]),
///     logger: Logger(label: "tapedeck.proxy")
/// )
/// let bound = try await server.start()
/// print(bound[0].address)  // 127.0.0.1:54321
/// await server.shutdown(drainTimeout: .seconds(5))
/// ```
///
/// It is also a `Service`: in a `ServiceGroup`, ``run()`` starts it (unless started), and a graceful shutdown
/// shuts it down with the drain timeout it was made with; cancellation resets open sessions at once.
public final class ProxyServer: Service {
    /// How a shutdown went.
    public struct ShutdownOutcome: Sendable, Hashable {
        /// Connections still open when the drain timeout ran out, which were then reset.
        public var interruptedConnections: Int
    }

    /// The routes this server serves.
    public let configuration: ProxyConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let recorder: Recorder?
    private let tlsContexts: TLSContexts?
    private let drainTimeout: Duration
    private let faults: FaultRegistry?
    private let tracker = ConnectionTracker()
    private let lifecycle = Lifecycle<Listener.Bound, ShutdownOutcome>("proxy server")

    /// Creates a server; nothing is bound until ``start()`` or ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: The routes to serve.
    ///   - group: The event loops to run on; defaults to one thread per core.
    ///   - recorder: When given, every session is recorded into its tape as it is relayed.
    ///   - drainTimeout: How long open sessions may go on when a graceful shutdown stops ``run()``.
    ///   - tlsContexts: Where routes that speak TLS get their certificates and contexts; routes with TLS need
    ///     them, and ``start()`` refuses them otherwise.
    ///   - faults: The toxics of the routes; with them, every connection gets a fault stage that applies them.
    ///   - logger: Where connection problems are reported.
    public init(
        configuration: ProxyConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        recorder: Recorder? = nil,
        drainTimeout: Duration = .seconds(5),
        tlsContexts: TLSContexts? = nil,
        faults: FaultRegistry? = nil,
        logger: Logger = Logger(label: "tapedeck.proxy")
    ) {
        self.faults = faults
        self.configuration = configuration
        self.tlsContexts = tlsContexts
        self.group = group
        self.recorder = recorder
        self.drainTimeout = drainTimeout
        self.logger = logger
    }

    /// The number of client and upstream connections open right now.
    public var openConnectionCount: Int {
        tracker.count
    }

    /// Binds every route's listener and starts relaying.
    ///
    /// Either every listener is bound or none is: on the first failure the ones already bound are closed.
    ///
    /// - Returns: The routes with their bound addresses, in configuration order.
    /// - Throws: ``TapedeckError`` with code `listenFailed` naming the route and address, for example when the
    ///   port is in use; with code `invalidArgument` if the server was started before.
    @discardableResult
    public func start() async throws -> [BoundRoute] {
        try await lifecycle.start(bind).bound
    }

    /// Starts relaying unless ``start()`` did, serves until a graceful shutdown or task cancellation, then shuts
    /// down: draining for the server's drain timeout after a graceful shutdown, at once after cancellation.
    ///
    /// Returns once shut down, however that came about (a ``shutdown(drainTimeout:)`` call ends it too).
    ///
    /// - Throws: ``TapedeckError`` if a listener cannot bind, or if another `run()` is serving this server.
    public func run() async throws {
        _ = try await lifecycle.run(start: bind) { cancelled in
            await self.shutdown(drainTimeout: cancelled ? .zero : self.drainTimeout)
        }
    }

    /// Stops accepting, waits up to `drainTimeout` for open sessions to end, then resets the rest.
    ///
    /// Safe to call more than once and before ``start()``: only the first call shuts down, and every call returns
    /// its outcome.
    @discardableResult
    public func shutdown(drainTimeout: Duration = .seconds(5)) async -> ShutdownOutcome {
        await lifecycle.stop { started in
            // UDP listeners first take in and relay what the kernel already queued for them.
            await Listener.drainDatagrams(started?.listeners ?? [], timeout: drainTimeout)
            await Listener.close(started?.listeners ?? [], routes: configuration.routes)
            let interrupted = await tracker.drain(timeout: drainTimeout)
            // With no drain (the recording failed, or the caller asked for none) resetting is the plan, not news.
            if interrupted > 0, drainTimeout > .zero {
                logger.warning(
                    "drain timeout passed, reset open connections",
                    metadata: ["tapedeck.connections": "\(interrupted)"]
                )
            }
            return ShutdownOutcome(interruptedConnections: interrupted)
        }
    }

    /// Binds every route's listener, all or none.
    private func bind() async throws -> Listener.Bound {
        for route in configuration.routes {
            _ = try route.requireUpstream(for: "relaying")
            if route.tls.mode != .off, tlsContexts == nil {
                throw TapedeckError(.invalidConfiguration, "route '\(route.name)' speaks TLS, which needs TLS contexts")
            }
        }
        // A UDP route's upstream is resolved once here, not for every flow.
        var datagramSettings: [Int: DatagramRelayHandler.Settings] = [:]
        for (index, route) in configuration.routes.enumerated() where route.isDatagram {
            let upstream = try route.requireUpstream(for: "relaying")
            let address: SocketAddress
            do {
                address = try SocketAddress.makeAddressResolvingHost(upstream.host ?? "", port: upstream.port ?? 0)
            } catch {
                throw TapedeckError(
                    .invalidConfiguration,
                    "route '\(route.name)': cannot resolve upstream \(upstream): \(SocketErrorText.describe(error))"
                )
            }
            datagramSettings[index] = DatagramRelayHandler.Settings(
                route: route,
                upstream: address,
                recorder: recorder,
                logger: logger,
                faults: faults?.faults(for: route)
            )
        }
        let started = try await Listener.bindAll(
            configuration.routes,
            group: group,
            logger: logger,
            makeDatagramHandler: { [datagramSettings] index, loop in
                // Only UDP routes reach here, and each has its settings.
                DatagramRelayHandler(settings: datagramSettings[index]!, eventLoop: loop)
            }
        ) { index, loop in
            bootstrap(for: configuration.routes[index], on: loop)
        }
        for (route, address) in zip(configuration.routes, started.bound.map(\.address)) {
            logger.info(
                "listening",
                metadata: [
                    "tapedeck.route": "\(route.name)", "tapedeck.address": "\(address)",
                    "tapedeck.upstream": "\(route.upstreamText)",
                ]
            )
        }
        recorder?.routesBound(started.bound)
        return started
    }

    // MARK: Accepting

    private func bootstrap(for route: Route, on loop: any EventLoop) -> ServerBootstrap {
        // No child channel options: the bootstrap applies those one future at a time, which costs more than the
        // rest of setting up a connection; the initializer sets them synchronously instead. TCP_NODELAY needs no
        // setting: accepted sockets inherit it from the listener, where NIO sets it.
        ServerBootstrap(group: loop, childGroup: loop)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.initializeClient(channel, route: route)
                }
            }
    }

    /// Runs on the client channel's event loop before it is registered.
    private func initializeClient(_ client: any Channel, route: Route) throws {
        // Never throws: start() refused routes without an upstream.
        let upstream = try route.requireUpstream(for: "relaying")
        // Reads wait until the upstream is connected and the relay is glued.
        try RelaySocket.setOptions(on: client, autoRead: false)
        tracker.track(client)
        let clientAddress = client.remoteAddress.map { "\(Endpoint($0))" } ?? "unknown"
        let routeFaults = faults?.faults(for: route)
        if let routeFaults, !routeFaults.isUp {
            // The route is down: the client is turned away at once, with nothing relayed or recorded.
            try client.pipeline.syncOperations.addHandler(FaultConversation.refusal(for: client))
            return
        }
        let session = recorder?.beginSession(route: route, clientAddress: clientAddress) {
            [logger] upgrade in
            logger.warning(
                "the client started TLS, which is recorded as ciphertext and cannot replay; record with --tls intercept",
                metadata: [
                    "tapedeck.route": "\(route.name)", "tapedeck.client": "\(clientAddress)",
                    "tapedeck.tls-start": "\(upgrade.rawValue)",
                ]
            )
        }
        var splice = RelaySplice(route: route, upstream: upstream, session: session, tracker: tracker, logger: logger)
        if route.tls.mode != .off, let tlsContexts {
            splice.tls = TLSRelaySession(route: route, contexts: tlsContexts, recorder: session, logger: logger)
        }
        if let routeFaults {
            let logger = self.logger
            let makeConversation = {
                let conversation = FaultConversation(faults: routeFaults, client: clientAddress, logger: logger)
                conversation.recorder = session
                return conversation
            }
            if routeFaults.snapshot().toxics.isEmpty {
                // No toxic yet: no stage either, until one comes (see LateFaultStages).
                splice.lateFaults = LateFaultStages(
                    faults: routeFaults,
                    on: client.eventLoop,
                    makeConversation: makeConversation
                )
            } else {
                let conversation = makeConversation()
                splice.faultStages = (
                    InboundFaultHandler(conversation: conversation, stream: .upstream),
                    InboundFaultHandler(conversation: conversation, stream: .downstream)
                )
            }
        }
        try splice.attach(to: client)
    }
}
