import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Tapedeck

/// A fast sender facing a slow reader must not make the relay buffer the difference.
///
/// The relay runs as the real executable so its peak resident memory (VmHWM) is its own.
@Suite(.timeLimit(.minutes(3)))
struct BackpressureTests {
    /// The executable's own footprint is about 20 MiB; without backpressure these tests would reach hundreds.
    static let memoryCeiling = 96 << 20

    @Test func fastClientFacingSlowUpstreamKeepsRelayMemoryBounded() async throws {
        let total = 256 << 20
        let upstream = try await TestServer.start(.slowReader(interval: .milliseconds(1)))
        defer { Task { await upstream.stop() } }
        let child = try TapedeckProcess(["proxy", "--upstream", "\(upstream.endpoint)"])
        let address = try #require(try await child.waitForListening()["default"])
        let block = Payload.random(count: 1 << 20, seed: 9)

        let connection = try await TestClient.connect(to: address)
        try await connection.executeThenClose { _, outbound in
            for _ in 0..<(total >> 20) {
                try await outbound.write(block)
            }
            outbound.finish()
            #expect(await upstream.log.waitFor(timeout: .seconds(90)) { _ in upstream.log.bytesReceived == total })
        }
        let peak = try #require(child.peakResidentBytes)
        // A sanitizer's shadow memory and quarantine outgrow the ceiling; the bytes still all arrive.
        #expect(Sanitizer.isActive || peak < Self.memoryCeiling, "relay peaked at \(peak >> 20) MiB")
        child.signal(SIGTERM)
        _ = try await child.waitForExit(timeout: .seconds(10))
    }

    @Test func fastUpstreamFacingSlowClientKeepsRelayMemoryBounded() async throws {
        let total = 128 << 20
        let upstream = try await TestServer.start(.speakFirst(Payload.random(count: total, seed: 11)))
        defer { Task { await upstream.stop() } }
        let child = try TapedeckProcess(["proxy", "--upstream", "\(upstream.endpoint)"])
        let address = try #require(try await child.waitForListening()["default"])

        let connection = try await TestClient.connect(to: address)
        let received = try await connection.executeThenClose { inbound, _ in
            // Read nothing for a while: the upstream has everything ready to send at once.
            try await Task.sleep(for: .seconds(1))
            var count = 0
            var reads = 0
            for try await chunk in inbound {
                count += chunk.readableBytes
                reads += 1
                // Slow for the first part, then drain.
                if reads < 200 { try await Task.sleep(for: .milliseconds(2)) }
            }
            return count
        }
        #expect(received == total)
        let peak = try #require(child.peakResidentBytes)
        // A sanitizer's shadow memory and quarantine outgrow the ceiling; the bytes still all arrive.
        #expect(Sanitizer.isActive || peak < Self.memoryCeiling, "relay peaked at \(peak >> 20) MiB")
        child.signal(SIGTERM)
        _ = try await child.waitForExit(timeout: .seconds(10))
    }
}
