import Foundation
import NIOCore

/// Sits on a flow's connected upstream socket and hands every reply to the route's ``DatagramRelayHandler``,
/// which sends it to the flow's client.
final class DatagramUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let flow: DatagramFlow
    private let relay: DatagramRelayHandler

    init(flow: DatagramFlow, relay: DatagramRelayHandler) {
        self.flow = flow
        self.relay = relay
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        relay.upstreamRead(unwrapInboundIn(data).data, flow: flow)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        relay.upstreamReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // On a connected UDP socket, ECONNREFUSED is the kernel reporting an ICMP port unreachable for an earlier
        // datagram; NIO keeps the socket open for it.
        if let error = error as? IOError, error.errnoCode == ECONNREFUSED {
            relay.upstreamRefused(error, flow: flow)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        relay.upstreamClosed(flow: flow)
    }
}
