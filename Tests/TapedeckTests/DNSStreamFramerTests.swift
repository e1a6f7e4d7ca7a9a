import Testing

@testable import Tapedeck

/// DNS over TCP cut into messages wherever the stream was split, with what is left over always known.
struct DNSStreamFramerTests {
    /// Three messages of different sizes, one of them empty, framed into one stream.
    static let messages: [[UInt8]] = [
        Array("query one".utf8),
        [],
        [UInt8](repeating: 0xAB, count: 300),
    ]
    static let stream: [UInt8] = messages.flatMap { DNSStreamFramer.frame($0) ?? [] }

    /// Feeds `chunks` in order and returns every message handed back, and the framer at the end.
    static func feed(_ chunks: [ArraySlice<UInt8>]) -> ([[UInt8]], DNSStreamFramer) {
        var framer = DNSStreamFramer()
        var received: [[UInt8]] = []
        for chunk in chunks { received += framer.feed(chunk) }
        return (received, framer)
    }

    @Test func framingPrefixesTheBigEndianLength() throws {
        #expect(DNSStreamFramer.frame([1, 2, 3]) == [0, 3, 1, 2, 3])
        #expect(DNSStreamFramer.frame([]) == [0, 0])
        let largest = try #require(DNSStreamFramer.frame([UInt8](repeating: 7, count: 65_535)))
        #expect(Array(largest.prefix(2)) == [0xFF, 0xFF])
        #expect(largest.count == 65_537)
        #expect(DNSStreamFramer.frame([UInt8](repeating: 7, count: 65_536)) == nil)
    }

    @Test func aWholeStreamAtOnceGivesEveryMessage() {
        let (received, framer) = Self.feed([Self.stream[...]])
        #expect(received == Self.messages)
        #expect(!framer.hasPendingBytes)
        #expect(framer.expectedLength == nil)
    }

    @Test func everySplitAtOneAndTwoPointsGivesTheSameMessages() {
        let stream = Self.stream
        for first in 0...stream.count {
            let (received, framer) = Self.feed([stream[..<first], stream[first...]])
            #expect(received == Self.messages, "split at \(first)")
            #expect(!framer.hasPendingBytes)
        }
        // Two split points over a smaller stream: every pair, so each cut lands in each prefix and body.
        let small: [UInt8] = Self.messages.prefix(2).flatMap { DNSStreamFramer.frame($0) ?? [] } + [0, 2, 9, 9]
        let expected: [[UInt8]] = Array(Self.messages.prefix(2)) + [[9, 9]]
        for first in 0...small.count {
            for second in first...small.count {
                let (received, framer) = Self.feed([small[..<first], small[first..<second], small[second...]])
                #expect(received == expected, "split at \(first) and \(second)")
                #expect(framer.pendingByteCount == 0)
            }
        }
    }

    @Test func randomChunkingsGiveTheSameMessages() {
        var random = SplitMix64(seed: 0xF4A3)
        for _ in 0..<500 {
            var chunks: [ArraySlice<UInt8>] = []
            var offset = 0
            while offset < Self.stream.count {
                let size = Int(random.next() % 40)
                let end = min(offset + size, Self.stream.count)
                chunks.append(Self.stream[offset..<end])
                offset = end
            }
            let (received, framer) = Self.feed(chunks)
            #expect(received == Self.messages)
            #expect(!framer.hasPendingBytes)
        }
    }

    @Test func aStreamCutInsideAMessageHoldsTheRest() {
        var framer = DNSStreamFramer()
        #expect(framer.feed([0]).isEmpty)
        #expect(framer.hasPendingBytes)
        #expect(framer.expectedLength == nil, "half a length is not a length yet")
        #expect(framer.feed([5, 1, 2]).isEmpty)
        #expect(framer.expectedLength == 5)
        #expect(framer.pendingBytes == [0, 5, 1, 2])
        #expect(framer.feed([3, 4, 5, 0]) == [[1, 2, 3, 4, 5]])
        #expect(framer.pendingBytes == [0])
        #expect(framer.feed([]).isEmpty)
        #expect(framer.pendingByteCount == 1)
    }

    @Test func theLargestMessageArrivesWholeFromSmallPieces() {
        var framer = DNSStreamFramer()
        let message = (0..<65_535).map { UInt8(truncatingIfNeeded: $0) }
        let stream = DNSStreamFramer.frame(message) ?? []
        var received: [[UInt8]] = []
        var offset = 0
        while offset < stream.count {
            let end = min(offset + 1_000, stream.count)
            received += framer.feed(stream[offset..<end])
            // Never more than one message's worth is held.
            #expect(framer.pendingByteCount <= 2 + DNSStreamFramer.maximumMessageLength)
            offset = end
        }
        #expect(received == [message])
        #expect(!framer.hasPendingBytes)
    }

    @Test func framedDNSMessagesDecodeAfterReassembly() throws {
        let query = DNSMessageTests.query
        let answer = DNSMessageTests.negativeResponse
        let stream = (DNSStreamFramer.frame(query) ?? []) + (DNSStreamFramer.frame(answer) ?? [])
        var framer = DNSStreamFramer()
        var lines: [String] = []
        for byte in stream {
            for message in framer.feed([byte]) { lines += try DNSMessage(decoding: message).lines }
        }
        #expect(lines.first == "query id 0x1a2b RD: www.example.test. IN A")
        #expect(lines.dropFirst().first == "response id 0xbeef QR AA RD RA NXDOMAIN: nothing.example.test. IN A")
    }
}
