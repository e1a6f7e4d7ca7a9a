import Foundation
import Testing

@testable import Tapedeck

/// Building a session's script from its events.
struct ReplayScriptTests {
    /// A session whose upstream sent `count` chunks of `size` bytes in a row, the client silent.
    static func bulk(count: Int, size: Int) -> ReplayScript {
        let events = (0..<count).map { index in
            EventRecord(
                sessionID: 1,
                seq: Int64(index),
                offsetNanoseconds: Int64(index) * 1_000_000,
                direction: .upstreamToClient,
                kind: .data,
                payload: Data(repeating: UInt8(index & 0xFF), count: size)
            )
        }
        return ReplayScript(sessionID: 1, events: events)
    }

    @Test func eachRecordedSendKeepsItsOwnTimeAndBoundaries() {
        let script = Self.bulk(count: 3, size: 5)
        #expect(script.steps.map(\.offset) == [0, 1_000_000, 2_000_000])
        #expect(
            script.steps.map { step -> Int in
                if case .send(let bytes) = step.action { return bytes.count }
                return -1
            } == [5, 5, 5]
        )
        #expect(script.upstreamStream.count == 15)
    }

    @Test func upstreamBytesAreHeldOnceSharedByTheSteps() throws {
        // Large enough that Data keeps the bytes out of line, where slices share one buffer.
        let script = Self.bulk(count: 50, size: 4096)
        let streamStart = script.upstreamStream.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        var expected = streamStart
        for step in script.steps {
            guard case .send(.inline(let bytes)) = step.action else {
                Issue.record("a step that is not a send")
                continue
            }
            // Each step's bytes sit inside the stream's own buffer, right after the previous step's: no copies.
            #expect(bytes.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) } == expected)
            expected += UInt(bytes.count)
        }
        #expect(expected == streamStart + UInt(script.upstreamStream.count))
    }
}
