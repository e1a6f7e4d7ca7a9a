import NIOCore

/// Drops the first bytes an upstream sends (still recording them): the client already heard their recorded
/// equivalent from the tape before replay switched to the real upstream.
final class SkipPrefixHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var remaining: Int
    private let session: SessionRecorder?

    /// Skips the first `count` bytes read, recording them into `session` when there is one.
    init(count: Int, session: SessionRecorder?) {
        self.remaining = count
        self.session = session
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard remaining > 0 else {
            context.fireChannelRead(data)
            return
        }
        let skipped = buffer.readSlice(length: min(remaining, buffer.readableBytes))!
        remaining -= skipped.readableBytes
        session?.recordData(skipped, from: .upstreamToClient)
        if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
        if remaining == 0 { context.pipeline.syncOperations.removeHandler(context: context, promise: nil) }
    }
}
