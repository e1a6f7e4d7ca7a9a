import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

@testable import Tapedeck

/// An in-process UDP upstream on a free loopback port: echoes every datagram to its sender, or only counts them.
final class UDPTestUpstream: Sendable {
    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let echoes: Bool
        let received: NIOLockedCounter

        init(echoes: Bool, received: NIOLockedCounter) {
            self.echoes = echoes
            self.received = received
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received.increment()
            guard echoes else { return }
            context.write(data, promise: nil)
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            context.flush()
        }
    }

    let channel: any Channel
    private let received: NIOLockedCounter

    /// The upstream as a route names it.
    var endpoint: Endpoint { .udp(host: "127.0.0.1", port: channel.localAddress?.port ?? 0) }

    /// Datagrams received so far.
    var receivedCount: Int { received.value }

    private init(channel: any Channel, received: NIOLockedCounter) {
        self.channel = channel
        self.received = received
    }

    static func start(echoes: Bool = true) async throws -> UDPTestUpstream {
        let received = NIOLockedCounter()
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(echoes: echoes, received: received))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return UDPTestUpstream(channel: channel, received: received)
    }

    func stop() async {
        try? await channel.close()
    }
}

/// A counter shared across threads.
final class NIOLockedCounter: Sendable {
    private let count = NIOLockedValueBox(0)

    func increment() {
        count.withLockedValue { $0 += 1 }
    }

    var value: Int {
        count.withLockedValue { $0 }
    }
}

/// A blocking UDP client socket on loopback, for use off Swift's cooperative threads (see `offThePool`).
final class UDPTestClient: @unchecked Sendable {
    // @unchecked: the descriptor is only used by one test at a time, from one thread at a time (each call is made
    // inside an awaited `offThePool`).
    private let descriptor: Int32

    init() throws {
        descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestProcessError("cannot make a UDP socket") }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    /// Sends `payload` to the loopback `port`.
    func send(_ payload: [UInt8], to port: Int) throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let sent = payload.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent == payload.count else {
            throw TestProcessError("sendto failed: \(String(cString: strerror(errno)))")
        }
    }

    /// The next datagram, or nil after `timeout`.
    func receive(timeout: Duration = .seconds(2)) -> [UInt8]? {
        var wait = timeval(
            tv_sec: Int(timeout.components.seconds),
            tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000)
        )
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return Array(buffer.prefix(count))
    }

    /// Sends `payload` and waits for one reply.
    func exchange(_ payload: [UInt8], port: Int, timeout: Duration = .seconds(10)) throws -> [UInt8]? {
        try send(payload, to: port)
        return receive(timeout: timeout)
    }
}
