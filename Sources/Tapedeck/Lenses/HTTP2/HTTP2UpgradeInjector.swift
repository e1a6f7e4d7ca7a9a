import NIOCore

/// After an `Upgrade: h2c` was answered with `101 Switching Protocols`, puts the upgrade request into the
/// client's HTTP/2 stream as stream 1's frames, where the server's codec expects a client's first frames to be:
/// after the preface and the client's first SETTINGS frame. Then it steps aside.
///
/// SwiftNIO's HTTP/2 codec has no h2c upgrade of its own; seen through this, the connection is one whose client
/// sent stream 1 itself, which the codec serves like any other stream.
final class HTTP2UpgradeInjector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let frames: [UInt8]
    private var held = ByteBuffer()
    private var done = false

    /// - Parameter frames: Stream 1's request as frames (``HTTP2UpgradeRequest/frames(body:)``).
    init(frames: [UInt8]) {
        self.frames = frames
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        var buffer = unwrapInboundIn(data)
        held.writeBuffer(&buffer)
        // The preface, then a frame header whose length says where the client's first frame ends.
        let headerEnd = HTTP2FrameReader.preface.count + 9
        guard held.readableBytes >= headerEnd,
            let length = held.getInteger(at: held.readerIndex + HTTP2FrameReader.preface.count, as: UInt32.self)
                .map({ Int($0 >> 8) }),
            held.readableBytes >= headerEnd + length
        else { return }
        done = true
        var first = held.readSlice(length: headerEnd + length)!
        var rest = held
        held = ByteBuffer()
        first.writeBytes(frames)
        context.fireChannelRead(wrapInboundOut(first))
        if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
        rest = ByteBuffer()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
