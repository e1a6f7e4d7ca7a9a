import NIOCore

/// Hands a connected UDP socket's datagrams on as their bytes alone, so that a drift check reads a flow's
/// answers as it reads a stream's: the sender is the one address the socket is connected to.
final class DatagramPayloadHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias InboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(wrapInboundOut(unwrapInboundIn(data).data))
    }
}
