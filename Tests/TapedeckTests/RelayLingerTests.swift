import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Tapedeck

/// A side whose partner has gone keeps its queued bytes while its peer still takes them, however slowly, and is
/// reset once its peer takes none for the linger time. On real sockets, through the relay handlers alone, with a
/// linger of 100 ms (the proxy's is 30 s).
///
/// In both tests the client sends nothing and shuts its output at once; the upstream sends an answer, shuts its
/// output, and closes when its input ends. The upstream's connection is then over in both directions, and the
/// relay must still hand the client what is queued for it.
@Suite(.timeLimit(.minutes(1)))
struct RelayLingerTests {
    static let linger = TimeAmount.milliseconds(100)

    /// 256 KiB to a client whose kernel holds a few KiB at most and which reads 2 KiB every 10 ms: the bytes
    /// queued in the relay when the upstream's connection ended take several linger times to go.
    @Test func aClientStillReadingSlowlyGetsEveryByteAfterTheUpstreamEnded() async throws {
        let payload = Payload.random(count: 256 << 10, seed: 11)
        let (bytes, ending) = try await Self.relay(payload) { connection in
            connection.drip(chunk: 2_048, pause: .milliseconds(10), limit: 1 << 20)
        }
        #expect(bytes == payload.readableBytes)
        #expect(ending == .eof)
    }

    /// 48 KiB, which the relay reads whole (below its high-water mark, so it sees the upstream end), to a client
    /// that reads nothing for a second: it is reset after the linger time, and what its kernel held goes with
    /// the reset.
    @Test func aClientThatStoppedReadingIsResetAfterTheLingerTime() async throws {
        let payload = Payload.random(count: 48 << 10, seed: 12)
        let (bytes, ending) = try await Self.relay(payload) { connection in
            Thread.sleep(forTimeInterval: 1)
            return connection.drip(chunk: 65_536, pause: .zero, limit: 1 << 20)
        }
        #expect(ending == .reset)
        #expect(bytes < payload.readableBytes)
    }

    /// Relays a client, which shuts its output at once and then runs `read`, to an upstream that answers
    /// `payload`; returns what `read` returned.
    static func relay(
        _ payload: ByteBuffer,
        read: @escaping @Sendable (BlockingConnection) -> (bytes: Int, ending: BlockingConnection.Ending)
    ) async throws -> (bytes: Int, ending: BlockingConnection.Ending) {
        let upstream = try await TestServer.start(.speakFirst(payload))
        defer { Task { await upstream.stop() } }
        let relay = try await Self.bareRelay(to: upstream.channel.localAddress!)
        let address = Endpoint(relay.localAddress!)
        let result = try await offThePool {
            let connection = try BlockingConnection(to: address, timeout: .seconds(20), receiveBuffer: 4_096)
            connection.finishSending()
            return read(connection)
        }
        try await relay.close()
        return result
    }

    /// A listener whose connections are relayed to `upstream` by a matched pair of relay handlers with
    /// ``linger``, and a small send buffer towards the client so that bytes queue in the relay, not the kernel.
    static func bareRelay(to upstream: SocketAddress) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelOption(ChannelOptions.socketOption(.so_sndbuf), value: 8_192)
            .childChannelInitializer { client in
                client.eventLoop.makeCompletedFuture {
                    let relays = RelayHandler.matchedPair(lingerTimeout: linger)
                    try client.pipeline.syncOperations.addHandler(relays.client)
                    let upstreamRelay = NIOLoopBound(relays.upstream, eventLoop: client.eventLoop)
                    ClientBootstrap(group: client.eventLoop)
                        .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                        .channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(upstreamRelay.value)
                            }
                        }
                        .connect(to: upstream)
                        .whenSuccess { _ in
                            client.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                        }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }
}
