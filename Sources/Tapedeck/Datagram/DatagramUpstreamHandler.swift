import Foundation
import NIOCore

/// Sits on a flow's connected upstream socket and hands every reply to the route's ``DatagramRelayHandler``,
/// which sends it to the flow's client.
final class DatagramUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let flow: DatagramFlow
    private let relay: DatagramRelayHandler
    /// Datagrams read in the current burst.
    private var burst = 0
    /// Whether the socket reads many datagrams per system call already.
    private var readsVectors = false

    /// Datagrams in one burst from which a flow counts as busy, and its socket switches to vector reads.
    static let busyBurst = 4

    init(flow: DatagramFlow, relay: DatagramRelayHandler) {
        self.flow = flow
        self.relay = relay
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        burst += 1
        relay.upstreamRead(unwrapInboundIn(data).data, flow: flow)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        relay.upstreamReadComplete()
        // A busy flow reads its replies many per system call; a quiet one keeps a single 64 KiB buffer rather
        // than sixteen, since every flow has a socket of its own and there may be thousands.
        if !readsVectors, burst >= Self.busyBurst {
            readsVectors = true
            try? DatagramSocket.setOptions(on: context.channel, vectorReads: true, receiveBuffer: false)
        }
        burst = 0
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
