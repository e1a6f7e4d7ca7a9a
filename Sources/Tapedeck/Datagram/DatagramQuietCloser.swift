import NIOCore

/// Closes a UDP listening socket at shutdown once it has been quiet a while: a stream listener's waiting clients
/// are refused when it closes, but datagrams the kernel already queued for a UDP socket would be lost without a
/// word. Shared by the relay's and replay's listener handlers; used on the socket's event loop only.
final class DatagramQuietCloser {
    /// How long a socket must go without a datagram either way before it closes: long enough for what the kernel
    /// queued to be read and relayed, and for the replies in flight to come back.
    static let quietPeriod: TimeAmount = .milliseconds(100)

    private let loop: any EventLoop
    /// When the last datagram came, either way.
    private var lastDatagram = NIODeadline.now()

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// A datagram came, either way; or one that toxics hold back is to be sent then, and the socket is not
    /// quiet before (a graceful stop sends it, within the deadline).
    func datagramCame(at time: NIODeadline) {
        lastDatagram = max(lastDatagram, time)
    }

    /// Closes the channel `context` gives (nil once the handler is gone) after ``quietPeriod`` without a datagram,
    /// or at `deadline`, whichever is first; the first look comes a quiet period from now, so that what the kernel
    /// queued meanwhile is read first.
    func closeWhenQuiet(
        _ context: @escaping () -> ChannelHandlerContext?,
        deadline: NIODeadline
    ) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        check(after: Self.quietPeriod, context, deadline: deadline, promise: promise)
        return promise.futureResult
    }

    private func check(
        after delay: TimeAmount,
        _ context: @escaping () -> ChannelHandlerContext?,
        deadline: NIODeadline,
        promise: EventLoopPromise<Void>
    ) {
        loop.assumeIsolated().scheduleTask(in: delay) { [self] in
            guard let current = context() else { return promise.succeed() }
            let now = NIODeadline.now()
            let quietSince = lastDatagram + Self.quietPeriod
            if quietSince <= now || deadline <= now {
                current.close(promise: promise)
            } else {
                check(after: min(quietSince, deadline) - now, context, deadline: deadline, promise: promise)
            }
        }
    }
}
