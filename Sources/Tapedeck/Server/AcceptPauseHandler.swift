import Atomics
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Pauses a listener for a moment when `accept` fails for want of descriptors or memory, and says so: once per
/// episode and route when it pauses, and once when it accepts again.
///
/// A failed `accept` leaves the client in the backlog, so the listening socket stays readable and the event loop
/// would retry at once, forever: both cores spin at 100% while no client is served. NIO's `AcceptBackoffHandler`
/// does not help on a listener bound with `ServerBootstrap.bind(to:)`: it delays the next `read()`, but after a
/// failed accept the channel still counts its read as pending and keeps its interest in readability, so no
/// `read()` ever comes to delay. Turning `autoRead` off does withdraw that interest; this handler turns it back on
/// after ``retryInterval``.
final class AcceptPauseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    /// How long a listener stops reading after an accept failed for want of resources; short, since descriptors
    /// come back as soon as sessions end, and one failed `accept` per interval costs nothing.
    static let retryInterval: TimeAmount = .milliseconds(100)

    /// Whether a route's listeners are paused, shared by the listeners of the route (one per event loop), so the
    /// route's episode is logged once.
    final class Episode: Sendable {
        private let paused = ManagedAtomic(false)
        private let pausedAt = ManagedAtomic<UInt64>(0)
        private let route: String
        private let logger: Logger

        init(route: String, logger: Logger) {
            self.route = route
            self.logger = logger
        }

        fileprivate func failed(_ reason: String) {
            guard paused.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
            pausedAt.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed)
            logger.warning("\(reason): accepting paused", metadata: ["tapedeck.route": "\(route)"])
        }

        fileprivate func accepted() {
            // A plain load first: this runs for every accepted connection, and almost always finds nothing to do.
            guard paused.load(ordering: .relaxed),
                paused.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged
            else { return }
            let paused = NIODeadline.now().uptimeNanoseconds &- pausedAt.load(ordering: .relaxed)
            logger.notice(
                "accepting again",
                metadata: [
                    "tapedeck.route": "\(route)",
                    "tapedeck.paused": "\(DurationText.format(.milliseconds(Int64(paused / 1_000_000))))",
                ]
            )
        }
    }

    private let episode: Episode
    /// The task that turns reading back on, while the listener is paused.
    private var resumption: Scheduled<Void>?

    init(episode: Episode) {
        self.episode = episode
    }

    /// What a resource failure of `accept` means to a user; nil for other failures (a client that reset before
    /// it was accepted, say), after which NIO retries at once, as it should.
    static func reason(for error: IOError) -> String? {
        switch error.errnoCode {
        case EMFILE, ENFILE: "too many open files"
        case ENOBUFS, ENOMEM: "out of memory for sockets"
        default: nil
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        episode.accepted()
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let ioError = error as? IOError, let reason = Self.reason(for: ioError) else {
            context.fireErrorCaught(error)
            return
        }
        episode.failed(reason)
        guard resumption == nil, let options = context.channel.syncOptions else { return }
        try? options.setOption(ChannelOptions.autoRead, value: false)
        resumption = context.eventLoop.assumeIsolated().scheduleTask(in: Self.retryInterval) {
            self.resumption = nil
            try? options.setOption(ChannelOptions.autoRead, value: true)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        resumption?.cancel()
        resumption = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Removed while paused: reading must not stay off for good.
        if let resumption {
            resumption.cancel()
            self.resumption = nil
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        }
    }
}
