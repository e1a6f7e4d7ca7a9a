import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import Tapedeck

#if canImport(Glibc)
import Glibc
#endif

/// The bind of a port's shared listeners after a probe: a port a forked child held for a moment is tried again, and
/// a port someone else holds is still an error.
@Suite struct ProbedRebindTests {
    @Test func aRaceIsTriedAgainUntilTheBindSucceeds() async throws {
        var calls = 0
        let result = try await ProbedRebind.retrying { () async throws -> String in
            calls += 1
            if calls < 3 { throw ProbedRebind.Raced(underlying: IOError(errnoCode: EADDRINUSE, reason: "bind")) }
            return "bound"
        }
        #expect(result == "bound")
        #expect(calls == 3)
    }

    @Test func aRaceThatNeverEndsThrowsWhatTheLastBindThrew() async throws {
        var calls = 0
        do {
            _ = try await ProbedRebind.retrying { () async throws -> Int in
                calls += 1
                throw ProbedRebind.Raced(underlying: IOError(errnoCode: EADDRINUSE, reason: "bind"))
            }
            Issue.record("no error")
        } catch let error as IOError {
            #expect(error.errnoCode == EADDRINUSE)
        }
        #expect(calls == ProbedRebind.attempts)
    }

    @Test func anyOtherErrorIsThrownAtOnce() async throws {
        var calls = 0
        await #expect(throws: IOError.self) {
            _ = try await ProbedRebind.retrying { () async throws -> Int in
                calls += 1
                throw IOError(errnoCode: EACCES, reason: "bind")
            }
        }
        #expect(calls == 1)
    }

    /// A shared bind that finds the probed port in use is a race; the probe finding it in use is not, and neither
    /// is a bind without a probe (one loop).
    @Test func onlyABindAfterASuccessfulProbeIsARace() async throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 4_000)
        let loops: [any EventLoop] = [EmbeddedEventLoop(), EmbeddedEventLoop()]
        let inUse = IOError(errnoCode: EADDRINUSE, reason: "bind")
        var probes = 0
        var closed = 0
        await #expect(throws: ProbedRebind.Raced.self) {
            _ = try await Listener.bindSharedOnce(
                address,
                loops: loops,
                probe: { _, _ in
                    probes += 1
                    return EmbeddedChannel()
                },
                bind: { _, _, reusePort in
                    #expect(reusePort)
                    // The first loop's socket binds; the second finds the port in use.
                    if closed == 0 {
                        closed += 1
                        return EmbeddedChannel()
                    }
                    throw inUse
                }
            )
        }
        #expect(probes == 1)
        await #expect(throws: IOError.self) {
            _ = try await Listener.bindSharedOnce(address, loops: loops, probe: { _, _ in throw inUse }) { _, _, _ in
                EmbeddedChannel()
            }
        }
        await #expect(throws: IOError.self) {
            _ = try await Listener.bindSharedOnce(address, loops: [loops[0]], probe: { _, _ in EmbeddedChannel() }) {
                _,
                _,
                _ in throw inUse
            }
        }
    }

    /// Port 0 over TCP: no probe, the first socket chooses and the second joins its port. Over UDP the probe
    /// chooses, and the shared sockets bind the port it got.
    @Test func portZeroIsChosenByTheFirstSocketOrByTheProbe() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        do {
            try await Self.checkPortZero(loops: Array(group.makeIterator()))
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    private static func checkPortZero(loops: [any EventLoop]) async throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 0)
        let reusePortOption = ChannelOptions.socket(SocketOptionLevel(SOL_SOCKET), SO_REUSEPORT)

        let streams = try await Listener.bindShared(
            address,
            loops: loops,
            probe: { _, _ in
                Issue.record("a TCP bind to port 0 needs no probe")
                throw ChannelError.ioOnClosedChannel
            },
            bind: { address, loop, reusePort in
                try await ServerBootstrap(group: loop).serverChannelOption(reusePortOption, value: reusePort ? 1 : 0)
                    .bind(to: address).get()
            }
        )
        #expect(streams.count == 2)
        #expect(streams[0].localAddress?.port != 0)
        #expect(streams[0].localAddress?.port == streams[1].localAddress?.port)
        for stream in streams { try await stream.close() }

        var probed = 0
        let datagrams = try await Listener.bindShared(
            address,
            loops: loops,
            probingPortZero: true,
            probe: { address, loop in
                let probe = try await DatagramBootstrap(group: loop).bind(to: address).get()
                probed = probe.localAddress?.port ?? 0
                return probe
            },
            bind: { address, loop, reusePort in
                try await DatagramBootstrap(group: loop).channelOption(reusePortOption, value: reusePort ? 1 : 0)
                    .bind(to: address).get()
            }
        )
        #expect(probed != 0)
        #expect(datagrams.map { $0.localAddress?.port } == [probed, probed])
        for datagram in datagrams { try await datagram.close() }
    }
}
