import NIOCore

/// What replay needs to record a session the tape is missing: the recorder. Each route's real upstream and
/// connect timeout are its ``Route/upstream`` and ``Route/connectTimeout``.
///
/// Like a VCR cassette's "new episodes" mode: a connection no recorded session matches is relayed to the real
/// upstream and recorded as a new session, for the next replay to serve.
public struct MissingSessionRecording: Sendable {
    /// Where new sessions are recorded; usually a recorder on the tape being replayed.
    public var recorder: Recorder

    /// Creates the settings for recording missing sessions.
    public init(recorder: Recorder) {
        self.recorder = recorder
    }
}

/// Drops the first bytes an upstream sends (still recording them): the client already heard their recorded
/// equivalent from the tape before replay switched to the real upstream.
final class SkipPrefixHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var remaining: Int
    private let session: SessionRecorder

    init(count: Int, session: SessionRecorder) {
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
        session.recordData(skipped, from: .upstreamToClient)
        if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
        if remaining == 0 { context.pipeline.syncOperations.removeHandler(context: context, promise: nil) }
    }
}
