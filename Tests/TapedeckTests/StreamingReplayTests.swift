import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Tapedeck

/// Replay reads upstream bytes beyond its memory budget from the tape while playing, and serves them exactly.
@Suite(.timeLimit(.minutes(3)))
struct StreamingReplayTests {
    /// A tape of one session: the upstream speaks first with `banner` (sent as many reads), then the client
    /// says "thanks" and closes.
    static func recordBanner(_ banner: ByteBuffer, into tapePath: String) async throws {
        let upstream = try await TestServer.start(.speakFirst(banner))
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            let connection = try await TestClient.connect(to: address)
            try await connection.executeThenClose { inbound, outbound in
                #expect(await TestClient.readAll(inbound).bytes == banner)
                try await outbound.write(ByteBuffer(string: "thanks"))
                outbound.finish()
            }
            #expect(await upstream.log.waitFor { _ in upstream.log.bytesReceived == 6 })
        }
        await upstream.stop()
    }

    /// Replays `tapePath` holding at most `budget` upstream bytes in memory; returns what a client that reads
    /// everything, then says "thanks", hears.
    static func replayBanner(
        tapePath: String,
        budget: Int,
        closingTape: Bool = false
    ) async throws -> (ByteBuffer, ReplayReport) {
        let tape = try Tape(readingAt: tapePath)
        let server = try ReplayServer(
            tape: tape,
            routes: [Route()],
            options: .init(),
            group: MultiThreadedEventLoopGroup.singleton,
            logger: .init(label: "test"),
            inlineUpstreamBudget: budget,
            // One reader, the tape itself: closing it must leave replay nothing to read with.
            extraTapeReaders: closingTape ? 0 : ReplayServer.extraTapeReaders
        )
        let address = try await server.start()[0].address
        if closingTape { try tape.close() }
        do {
            // A replay that resets at once may reset the connect itself: the client heard nothing.
            guard let connection = try await TestClient.connectUnlessReset(to: address) else {
                return (ByteBuffer(), await server.shutdown(drainTimeout: .seconds(5)))
            }
            let heard = try await connection.executeThenClose { inbound, outbound in
                let (bytes, _) = await TestClient.readAll(inbound)
                try? await outbound.write(ByteBuffer(string: "thanks"))
                outbound.finish()
                return bytes
            }
            return (heard, await server.shutdown(drainTimeout: .seconds(5)))
        } catch {
            await server.shutdown(drainTimeout: .zero)
            throw error
        }
    }

    @Test func aReplyLeftInTheTapeIsServedExactly() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("bulk.tape")
        let banner = Payload.random(count: 6 << 20, seed: 11)
        try await Self.recordBanner(banner, into: tapePath)
        for budget in [0, 1 << 20, Int.max] {
            let (heard, report) = try await Self.replayBanner(tapePath: tapePath, budget: budget)
            #expect(heard == banner, "budget \(budget)")
            #expect(report.mismatches.isEmpty, "budget \(budget)")
            #expect(report.replayed.count == 1, "budget \(budget)")
        }
    }

    @Test func indexingLeavesUpstreamPayloadsBeyondTheBudgetInTheTape() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("bulk.tape")
        let banner = Payload.random(count: 2 << 20, seed: 12)
        try await Self.recordBanner(banner, into: tapePath)
        let tape = try Tape(readingAt: tapePath)
        let budget = 256 * 1024
        var held = 0
        var stored = 0
        var client = Data()
        try tape.forEachIndexedEvent(inlineBudget: budget) { event in
            switch (event.direction, event.kind) {
            case (.upstreamToClient, .data):
                if event.isStored { stored += event.size } else { held += event.payload?.count ?? 0 }
            case (.clientToUpstream, .data):
                client.append(event.payload ?? Data())
            default:
                break
            }
        }
        #expect(held + stored == banner.readableBytes)
        #expect(held <= budget + 64 * 1024)
        #expect(stored >= banner.readableBytes - budget - 64 * 1024)
        #expect(client == Data("thanks".utf8))
    }

    @Test func aTapeThatCannotBeReadMidReplayFailsTheConnectionLoudly() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("bulk.tape")
        let banner = Payload.random(count: 1 << 20, seed: 13)
        try await Self.recordBanner(banner, into: tapePath)
        let (heard, report) = try await Self.replayBanner(tapePath: tapePath, budget: 0, closingTape: true)
        #expect(heard.readableBytes < banner.readableBytes)
        #expect(report.replayed.isEmpty)
        let reason = try #require(report.mismatches.first?.reason)
        #expect(reason.hasPrefix("cannot read the recorded reply: cannot read tape '\(tapePath)'"))
    }

    @Test func sessionsWhoseUpstreamsAreInTheTapeAreComparedByTheirBytes() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("two.tape")
        let banner = Payload.random(count: 512 * 1024, seed: 14)
        var changed = banner
        changed.setInteger(~banner.getInteger(at: 300_000, as: UInt8.self)!, at: 300_000)
        try await Self.recordBanner(banner, into: tapePath)
        try await Self.recordBanner(banner, into: tapePath)
        try await Self.recordBanner(changed, into: tapePath)
        let tape = try Tape(readingAt: tapePath)
        let scripts = try #require(try tape.replayScripts(inlineBudget: 0)[Route.defaultName])
        #expect(scripts.count == 3)
        #expect(scripts.allSatisfy { $0.upstreamStream.isEmpty })
        let catalog = SessionCatalog(scripts: scripts, repeatable: false, payloads: UpstreamPayloadSource(tape: tape))
        #expect(catalog.index.upstreamAgrees(0, 1, count: banner.readableBytes))
        #expect(catalog.index.upstreamAgrees(0, 2, count: 300_000))
        #expect(!catalog.index.upstreamAgrees(0, 2, count: 300_001))
        #expect(!catalog.index.upstreamAgrees(0, 2, count: banner.readableBytes))
        // Without the tape, bytes that are only there agree with nothing.
        let blind = SessionCatalog(scripts: scripts, repeatable: false)
        #expect(!blind.index.upstreamAgrees(0, 1, count: 1))
    }
}
