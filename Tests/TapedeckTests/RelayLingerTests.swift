import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Tapedeck

/// A side whose partner has gone keeps its queued bytes while its peer still takes them, however slowly, and is
/// reset once its peer takes none for the linger time. On real sockets, through the relay handlers alone, with a
/// linger of a second or less (the proxy's is 30 s).
///
/// In both tests the client sends nothing and shuts its output at once; the upstream sends an answer, shuts its
/// output, and closes when its input ends. The upstream's connection is then over in both directions, and the
/// relay must still hand the client what is queued for it.
@Suite(.timeLimit(.minutes(2)))
struct RelayLingerTests {
    /// 192 KiB to a client whose kernel holds a few KiB at most and which reads 1 KiB every 20 ms (50 KB/s),
    /// with a linger of 1 s: the bytes queued in the relay when the upstream's connection ended (64 KiB or more)
    /// take longer than the linger time to go, but some go in every second. A relay that reset the client after
    /// the linger time in all failed here.
    ///
    /// A client starved of the processor for most of a second in a loaded test run did not keep its side of the
    /// bargain: such a try proves nothing and is run again, three times at most.
    @Test func aClientStillReadingSlowlyGetsEveryByteAfterTheUpstreamEnded() async throws {
        let payload = Payload.random(count: 192 << 10, seed: 11)
        let linger = TimeAmount.seconds(1)
        for _ in 0..<3 {
            let read = try await Self.relay(payload, linger: linger) { connection in
                connection.drip(chunk: 1_024, pause: .milliseconds(20), limit: 1 << 20)
            }
            if read.longestWait >= .milliseconds(800) { continue }
            #expect(read.bytes == payload.readableBytes)
            #expect(read.ending == .eof)
            return
        }
        Issue.record("the reading client was starved for most of a second in every try")
    }

    /// 48 KiB, which the relay reads whole (below its high-water mark, so it sees the upstream end), to a client
    /// that reads nothing for two seconds, with a linger of 100 ms: it is reset, and what its kernel held goes
    /// with the reset.
    @Test func aClientThatStoppedReadingIsResetAfterTheLingerTime() async throws {
        let payload = Payload.random(count: 48 << 10, seed: 12)
        let read = try await Self.relay(payload, linger: .milliseconds(100)) { connection in
            Thread.sleep(forTimeInterval: 2)
            return connection.drip(chunk: 65_536, pause: .zero, limit: 1 << 20)
        }
        #expect(read.ending == .reset)
        #expect(read.bytes < payload.readableBytes)
    }

    /// Relays a client, which shuts its output at once and then runs `read`, to an upstream that answers
    /// `payload`, with `linger`; returns what `read` returned.
    static func relay(
        _ payload: ByteBuffer,
        linger: TimeAmount,
        read: @escaping @Sendable (BlockingConnection) -> BlockingConnection.Drip
    ) async throws -> BlockingConnection.Drip {
        let upstream = try await TestServer.start(.speakFirst(payload))
        defer { Task { await upstream.stop() } }
        let relay = try await Self.bareRelay(to: upstream.channel.localAddress!, linger: linger)
        let address = Endpoint(relay.localAddress!)
        let result = try await offThePool {
            let connection = try BlockingConnection(to: address, timeout: .seconds(20), receiveBuffer: 4_096)
            connection.finishSending()
            return read(connection)
        }
        try await relay.close()
        return result
    }

    /// A listener whose connections are relayed to `upstream` by a matched pair of relay handlers with `linger`,
    /// and a small send buffer towards the client so that bytes queue in the relay, not the kernel.
    static func bareRelay(to upstream: SocketAddress, linger: TimeAmount) async throws -> any Channel {
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
