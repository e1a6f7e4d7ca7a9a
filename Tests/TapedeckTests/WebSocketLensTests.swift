import Foundation
import NIOWebSocket
import Testing

@testable import Tapedeck

/// The WebSocket lens without sockets: on sessions captured from Python's `websockets` (``WebSocketCaptures``) and
/// on frames built here.
struct WebSocketLensTests {
    /// A client frame: FIN, RSV bits and opcode, masked with `mask` (nil for none), with a 7, 16 or 64-bit length
    /// as the payload needs.
    static func frame(
        _ opcode: WebSocketOpcode,
        _ payload: [UInt8],
        fin: Bool = true,
        reservedBits: UInt8 = 0,
        mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D]
    ) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | reservedBits | UInt8(webSocketOpcode: opcode)]
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        switch payload.count {
        case ..<126: bytes.append(maskBit | UInt8(payload.count))
        case ..<65_536: bytes += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default:
            bytes += [maskBit | 127] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: payload.count >> (8 * $0)) }
        }
        guard let mask else { return bytes + payload }
        return bytes + mask + payload.enumerated().map { $0.element ^ mask[$0.offset & 3] }
    }

    /// An upgrade request head with `key`.
    static func upgrade(key: String = "dGhlIHNhbXBsZSBub25jZQ==", path: String = "/chat") -> [UInt8] {
        Array(
            ("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8
        )
    }

    /// The raw bytes `pieces` account for.
    static func rawCount(_ pieces: [LensPiece]) -> Int {
        pieces.reduce(0) { total, piece in
            switch piece {
            case .verbatim(let bytes): total + bytes.count
            case .replaced(let rawCount, _): total + rawCount
            }
        }
    }

    /// `sends` through one live lens, read by read, then a flush: everything it said, and how many raw bytes its
    /// pieces account for.
    static func live(_ sends: [[UInt8]], maximumMessage: Int = 16 * 1024 * 1024) -> (LensOutput, Int) {
        var lens = WebSocketStreamLens(maximumMessage: maximumMessage)
        var output = LensOutput()
        for send in sends {
            let next = lens.feed(Data(send))
            output.pieces += next.pieces
            output.replies += next.replies
        }
        let rest = lens.flush()
        output.pieces += rest.pieces
        output.replies += rest.replies
        return (output, rawCount(output.pieces))
    }

    static func text(_ bytes: Data) -> String { String(decoding: bytes, as: UTF8.self) }

    /// A response head as text without its Date line.
    static func withoutDate(_ head: some Collection<UInt8>) -> String {
        text(Data(head)).split(separator: "\r\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("Date: ") }
            .joined(separator: "\r\n")
    }
}

// MARK: - Captured sessions

extension WebSocketLensTests {
    @Test func twoRecordingsOfTheSameConversationCanonicalizeAlike() throws {
        for (first, second) in [
            (WebSocketCaptures.compressedEcho, WebSocketCaptures.compressedEchoAgain),
            (WebSocketCaptures.plainEcho, WebSocketCaptures.plainEchoAgain),
        ] {
            let one = WebSocketCaptures.stream(first)
            let other = WebSocketCaptures.stream(second)
            #expect(one != other)
            let canonical = WebSocketStreamLens().canonicalize(Data(one))
            #expect(canonical.bytes == WebSocketStreamLens().canonicalize(Data(other)).bytes)
            // Every raw byte is in a replacement: the head, then each frame.
            #expect(canonical.replacements.first?.raw.lowerBound == 0)
            #expect(canonical.replacements.last?.raw.upperBound == one.count)
            for (before, after) in zip(canonical.replacements, canonical.replacements.dropFirst()) {
                #expect(before.raw.upperBound == after.raw.lowerBound)
                #expect(before.normalized.upperBound == after.normalized.lowerBound)
            }
        }
    }

    @Test func theCanonicalStreamHasTheMessagesUnmaskedAndNoKeyOrPing() throws {
        let canonical = Self.text(
            WebSocketStreamLens().canonicalize(Data(WebSocketCaptures.stream(WebSocketCaptures.plainEcho))).bytes
        )
        #expect(canonical.hasPrefix("GET /echo HTTP/1.1\r\nHost: 127.0.0.1:42979\r\n"))
        #expect(canonical.contains("\r\nSec-WebSocket-Key: {tapedeck:websocket-key}\r\nSec-WebSocket-Version: 13\r\n"))
        #expect(
            canonical.hasSuffix(
                "\r\n\r\n{tapedeck:websocket:text}hello{tapedeck:websocket:binary}\u{0}\u{FFFD}\u{10}"
                    + "{tapedeck:websocket:text}fragmented{tapedeck:websocket:text}after"
                    + "{tapedeck:websocket:close}\u{3}\u{FFFD}"
            ),
            "\(canonical)"
        )
        // Compressed messages are compared on their compressed bytes, marked by RSV1.
        let compressed = Self.text(
            WebSocketStreamLens().canonicalize(Data(WebSocketCaptures.stream(WebSocketCaptures.compressedEcho))).bytes
        )
        #expect(compressed.contains("{tapedeck:websocket:text+rsv1}"), "\(compressed)")
        #expect(compressed.contains("{tapedeck:websocket:binary+rsv1}"), "\(compressed)")
        #expect(!compressed.contains("{tapedeck:websocket:opcode"))
    }

    @Test func theLiveLensFedAtEverySplitGivesTheWholeStreamsCanonicalBytes() throws {
        for capture in [WebSocketCaptures.compressedEcho, WebSocketCaptures.plainEchoAgain, WebSocketCaptures.feed] {
            let stream = WebSocketCaptures.stream(capture)
            let whole = WebSocketStreamLens().canonicalize(Data(stream)).bytes
            let (asSent, asSentCount) = Self.live(capture)
            #expect(asSent.canonical == whole)
            #expect(asSentCount == stream.count)
            for first in 0...stream.count {
                for second in stride(from: first, through: stream.count, by: 11) {
                    let sends = [Array(stream[..<first]), Array(stream[first..<second]), Array(stream[second...])]
                    let (output, count) = Self.live(sends)
                    #expect(output.canonical == whole, "split at \(first) and \(second)")
                    #expect(count == stream.count)
                    #expect(output.replies == asSent.replies)
                }
            }
        }
    }

    @Test func theClientsPingIsAnsweredWithAPongOfTheSamePayload() throws {
        let (output, _) = Self.live(WebSocketCaptures.compressedEcho)
        // The ping: the sixth send, `89 84`, a 4-byte random payload under the mask.
        let ping = WebSocketCaptures.compressedEcho[5]
        #expect(ping[0] == 0x89 && ping[1] == 0x84)
        let payload = (0..<4).map { ping[6 + $0] ^ ping[2 + $0] }
        #expect(output.replies == [Data([0x8A, 0x04] + payload)])
        // The upstream answered it with the same pong when recording.
        #expect(WebSocketCaptures.compressedEchoUpstream[5] == [0x8A, 0x04] + payload)
    }

    @Test func aPongAnsweringTheUpstreamsPingLeavesTheMatch() throws {
        let (output, count) = Self.live(WebSocketCaptures.feed)
        #expect(count == WebSocketCaptures.stream(WebSocketCaptures.feed).count)
        #expect(output.replies.isEmpty)
        let removed = output.pieces.filter { $0 == .replaced(rawCount: 10, canonical: Data()) }
        #expect(removed.count == 1)
        let canonical = Self.text(output.canonical)
        #expect(canonical.contains("{tapedeck:websocket:close}"), "\(canonical)")
    }

    @Test func theRecordedAcceptIsRewrittenForTheLiveKeyWhereverTheSendsSplitIt() throws {
        // RFC 6455's example.
        #expect(
            WebSocketUpgradeRequest.accept(forKey: Array("dGhlIHNhbXBsZSBub25jZQ==".utf8))
                == Array("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".utf8)
        )
        // The first recording's 101 (split inside the header's name), for the second recording's client: the
        // second recording's accept, which its upstream computed.
        var lens = WebSocketStreamLens()
        _ = lens.feed(Data(WebSocketCaptures.stream(WebSocketCaptures.compressedEchoAgain)))
        let recorded = WebSocketCaptures.stream(WebSocketCaptures.compressedEchoUpstream)
        let expected = WebSocketCaptures.stream(WebSocketCaptures.compressedEchoAgainUpstream)
        let headEnd = try #require(WebSocketUpgradeRequest.headLength(in: recorded))
        #expect(expected.count == recorded.count)
        for split in 0...recorded.count {
            var each = lens
            var rewritten = each.rewriteUpstream(Data(recorded[..<split]))
            rewritten += each.rewriteUpstream(Data(recorded[split...]))
            // The second recording's head, but for its Date header, a second later.
            #expect(Self.withoutDate(rewritten.prefix(headEnd)) == Self.withoutDate(expected[..<headEnd]))
            #expect(Array(rewritten[headEnd...]) == Array(recorded[headEnd...]), "frames go out as recorded")
        }
        let head = Self.text(Data(expected[..<headEnd]))
        #expect(head.contains("\r\nSec-WebSocket-Accept: qsv0T0toIubwTAU"), "\(head)")
    }

    @Test func theAcceptHeaderIsFoundInAnyCaseAndNothingAfterTheHeadIsTouched() {
        var lens = WebSocketStreamLens()
        _ = lens.feed(Data(Self.upgrade()))
        let value = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
        let response = Data(
            "HTTP/1.1 101 Switching Protocols\r\nsec-websocket-ACCEPT:\t\(value)\r\n\r\nSec-WebSocket-Accept: \(value)"
                .utf8
        )
        #expect(!lens.isPassingThrough)
        let rewritten = Self.text(lens.rewriteUpstream(response))
        #expect(
            rewritten
                == "HTTP/1.1 101 Switching Protocols\r\nsec-websocket-ACCEPT:\ts3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                + "Sec-WebSocket-Accept: \(value)"
        )
        #expect(lens.rewriteUpstream(response) == response)
    }
}

// MARK: - Messages and frames

extension WebSocketLensTests {
    @Test func aFragmentedMessageEqualsTheSameMessageInOneFrame() throws {
        let message = Array("a message in pieces".utf8)
        let whole = Self.upgrade() + Self.frame(.text, message)
        let fragmented =
            Self.upgrade(key: "x3JJHMbDL1EzLkh9GBhXDw==")
            + Self.frame(.text, Array(message[..<2]), fin: false, mask: [1, 2, 3, 4])
            + Self.frame(.continuation, [], fin: false)
            + Self.frame(.ping, Array("are you there".utf8), mask: [9, 9, 9, 9])
            + Self.frame(.continuation, Array(message[2..<10]), fin: false, mask: nil)
            + Self.frame(.continuation, Array(message[10...]), mask: [0xFF, 0, 0xFF, 0])
        let one = WebSocketStreamLens().canonicalize(Data(whole))
        let other = WebSocketStreamLens().canonicalize(Data(fragmented))
        #expect(one.bytes == other.bytes)
        #expect(Self.text(one.bytes).hasSuffix("{tapedeck:websocket:text}a message in pieces"))
        // The message's replacement covers its fragments and the ping between them.
        #expect(other.replacements.last?.raw == Self.upgrade().count..<fragmented.count)
        let (output, count) = Self.live([fragmented])
        #expect(count == fragmented.count)
        #expect(output.replies == [Data([0x8A, 13] + Array("are you there".utf8))])
        // Another message, or the same one compressed, is not the same.
        let other1 = WebSocketStreamLens().canonicalize(Data(Self.upgrade() + Self.frame(.binary, message)))
        let other2 = WebSocketStreamLens().canonicalize(
            Data(Self.upgrade() + Self.frame(.text, message, reservedBits: 0x40))
        )
        #expect(Set([one.bytes, other1.bytes, other2.bytes]).count == 3)
    }

    @Test func whereMessagesBeginCounts() {
        let two = Self.upgrade() + Self.frame(.text, Array("ab".utf8)) + Self.frame(.text, Array("c".utf8))
        let other = Self.upgrade() + Self.frame(.text, Array("a".utf8)) + Self.frame(.text, Array("bc".utf8))
        let one = Self.upgrade() + Self.frame(.text, Array("abc".utf8))
        let canonical = [two, other, one].map { WebSocketStreamLens().canonicalize(Data($0)).bytes }
        #expect(Set(canonical).count == 3)
    }

    @Test func lengthsOfSixteenAndSixtyFourBitsAreRead() throws {
        for count in [125, 126, 65_535, 65_536, 70_000] {
            let payload = (0..<count).map { UInt8(truncatingIfNeeded: $0 * 7) }
            var reader = WebSocketFrameReader()
            let bytes = Self.frame(.binary, payload)
            reader.append(bytes.dropLast())
            #expect(try reader.next() == nil)
            reader.append(bytes.suffix(1))
            let frame = try #require(try reader.next())
            #expect(frame.payload == payload && frame.raw == bytes && frame.fin && frame.opcode == .binary)
            #expect(reader.buffered.isEmpty)
        }
    }

    @Test func aCloseIsComparedOnItsCodeAndReason() throws {
        let close = Self.frame(.connectionClose, [0x03, 0xE8] + Array("done".utf8))
        let (output, _) = Self.live([Self.upgrade() + close])
        #expect(Self.text(output.canonical).hasSuffix("{tapedeck:websocket:close}\u{3}\u{FFFD}done"))
        #expect(output.replies.isEmpty, "the upstream's close answer replays as recorded")
        let (other, _) = Self.live([Self.upgrade() + Self.frame(.connectionClose, [0x03, 0xE9])])
        #expect(other.canonical != output.canonical)
    }

    @Test func aFlushLetsAHeldMessagePassAsItIsAndTheNextIsComparedAgain() throws {
        let head = Self.upgrade()
        let first = Self.frame(.text, Array("one ".utf8), fin: false)
        let second = Self.frame(.continuation, Array("two".utf8))
        let next = Self.frame(.text, Array("three".utf8))
        var lens = WebSocketStreamLens()
        var pieces = lens.feed(Data(head + first + second.prefix(3))).pieces
        #expect(lens.isHolding)
        let flushed = lens.flush()
        #expect(flushed.pieces == [.verbatim(Data(first)), .verbatim(Data(second.prefix(3)))])
        #expect(!lens.isHolding)
        pieces += flushed.pieces
        let rest = lens.feed(Data(second.dropFirst(3) + next))
        #expect(rest.pieces.first == .verbatim(Data(second.dropFirst(3))))
        #expect(
            rest.pieces.last
                == .replaced(rawCount: next.count, canonical: Data("{tapedeck:websocket:text}three".utf8))
        )
        pieces += rest.pieces
        #expect(Self.rawCount(pieces) == head.count + first.count + second.count + next.count)
    }

    @Test func aMessageOverTheMaximumAndEverythingAfterItPassVerbatim() throws {
        let head = Self.upgrade()
        let small = Self.frame(.text, Array(repeating: 0x61, count: 10))
        let large = Self.frame(.text, Array(repeating: 0x62, count: 200))
        let fragments =
            Self.frame(.text, Array(repeating: 0x63, count: 60), fin: false)
            + Self.frame(.continuation, Array(repeating: 0x63, count: 60))
        for tail in [large, fragments] {
            let (output, count) = Self.live([head + small + tail + small], maximumMessage: 100)
            #expect(count == head.count + small.count * 2 + tail.count)
            #expect(output.canonical.suffix(tail.count + small.count) == Data(tail + small))
            #expect(Self.text(output.canonical).contains("{tapedeck:websocket:text}aaaaaaaaaa"))
        }
    }
}

// MARK: - Not WebSocket, or not well formed

extension WebSocketLensTests {
    @Test func plainHTTPOnTheSameRoutePassesVerbatim() throws {
        let requests = [
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /again HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            // An upgrade to something else, and a key without an upgrade.
            "GET /h2c HTTP/1.1\r\nUpgrade: h2c\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "POST /items HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            "\u{16}\u{3}\u{1}\u{2}\u{0}",
        ]
        for request in requests {
            let bytes = Data(request.utf8)
            let whole = WebSocketStreamLens().canonicalize(bytes)
            #expect(whole.bytes == bytes && whole.replacements.isEmpty)
            var lens = WebSocketStreamLens()
            let output = lens.feed(bytes)
            #expect(output.canonical == bytes)
            #expect(lens.isPassingThrough && !lens.isHolding)
            let response = Data("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Accept: x\r\n\r\n".utf8)
            #expect(lens.rewriteUpstream(response) == response)
        }
        // A POST passes at its first bytes, without waiting for its head's end.
        var lens = WebSocketStreamLens()
        #expect(lens.feed(Data("POS".utf8)).canonical == Data("POS".utf8))
        #expect(lens.isPassingThrough)
        // A GET is held until its head ends.
        lens = WebSocketStreamLens()
        #expect(lens.feed(Data("GET / HTTP/1.1\r\n".utf8)).pieces.isEmpty)
        #expect(lens.isHolding && !lens.isPassingThrough)
        #expect(lens.feed(Data("\r\n".utf8)).canonical == Data("GET / HTTP/1.1\r\n\r\n".utf8))
    }

    @Test func aHeadThatNeverEndsPassesVerbatimAtItsMaximum() {
        var lens = WebSocketStreamLens()
        let line = Data(("GET / HTTP/1.1\r\n" + String(repeating: "X-Filler: 0123456789\r\n", count: 3_500)).utf8)
        let output = lens.feed(line)
        #expect(output.canonical == line)
        #expect(lens.isPassingThrough)
    }

    @Test func theKeyHeaderIsFoundInAnyCaseAndOnlyItsValueChanges() throws {
        let head = Array(
            "GET /x HTTP/1.1\r\nUPGRADE: keep-alive, WebSocket\r\nsec-websocket-key:  abc=  \r\nX-Other: 1\r\n\r\n".utf8
        )
        let request = try #require(WebSocketUpgradeRequest(head: head))
        #expect(request.key == Array("abc=".utf8))
        #expect(
            String(decoding: request.canonical, as: UTF8.self)
                == "GET /x HTTP/1.1\r\nUPGRADE: keep-alive, WebSocket\r\n"
                + "sec-websocket-key:  {tapedeck:websocket-key}  \r\nX-Other: 1\r\n\r\n"
        )
    }

    @Test func badFramesNeverTrapAndEveryByteIsAccountedFor() throws {
        let head = Self.upgrade()
        let hostile: [[UInt8]] = [
            [0x83, 0x80, 1, 2, 3, 4],  // a reserved opcode
            [0x09, 0x80, 1, 2, 3, 4],  // a fragmented ping
            [0x89, 0xFE, 0x00, 0x80] + Array(repeating: 0, count: 132),  // a ping of 128 bytes
            [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],  // a 64-bit length with the top bit set
            [0x82, 0xFF, 0x00, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],  // a terabyte
            Self.frame(.continuation, [1, 2, 3]),  // a continuation with no message
            Self.frame(.text, [1], fin: false) + Self.frame(.binary, [2]),  // a message inside another
        ]
        let good = Self.frame(.text, Array("ok".utf8))
        for bad in hostile {
            let stream = head + good + bad + good
            let (output, count) = Self.live([stream])
            #expect(count == stream.count)
            // What came before is compared as a message; the rest passes as it is.
            #expect(output.canonical.suffix(bad.count + good.count) == Data(bad + good))
            #expect(Self.text(output.canonical).contains("{tapedeck:websocket:text}ok"))
            var lens = WebSocketStreamLens()
            _ = lens.feed(Data(stream))
            #expect(!lens.isPassingThrough, "the accept value is still to rewrite")
            _ = lens.rewriteUpstream(Data("HTTP/1.1 101 Switching Protocols\r\n\r\n".utf8))
            #expect(lens.isPassingThrough)
        }
        // Random bytes after a head, cut anywhere: never a trap, every byte accounted for.
        var generator = SplitMix64(seed: 0x5EED)
        for _ in 0..<300 {
            let noise = (0..<Int.random(in: 0..<200, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            let stream = head + noise
            let cut = Int.random(in: 0...stream.count, using: &generator)
            let (_, count) = Self.live([Array(stream[..<cut]), Array(stream[cut...])])
            #expect(count == stream.count)
        }
    }
}

/// WebSocket sessions read for `--decode`, on captured bytes.
struct WebSocketMessageDecoderTests {
    @Test func readsTheHandshakeAndEachMessageJoinedFromItsFragmentsWhereverTheSendsSplit() {
        let stream = Data(WebSocketCaptures.stream(WebSocketCaptures.plainEcho))
        var whole = WebSocketMessageDecoder()
        let messages = whole.client(stream)
        #expect(messages.first?.summary == "GET /echo HTTP/1.1")
        #expect(messages.first?.details.contains { $0.hasPrefix("Sec-WebSocket-Key: ") } == true)
        #expect(messages.contains { $0.summary.hasPrefix("ping") })
        #expect(messages.last?.summary.hasPrefix("close 1000") == true)
        #expect(messages.allSatisfy { $0.from == "client" && $0.lens == "websocket" })
        for split in stride(from: 0, through: stream.count, by: 7) {
            var decoder = WebSocketMessageDecoder()
            let parts = decoder.client(stream.prefix(split)) + decoder.client(stream.dropFirst(split))
            #expect(parts == messages, "split at \(split)")
        }
    }

    @Test func readsCompressedMessagesAsCompressedAndBadFramesOnce() {
        var decoder = WebSocketMessageDecoder()
        let messages = decoder.client(Data(WebSocketCaptures.stream(WebSocketCaptures.compressedEcho)))
        #expect(messages.contains { $0.summary.contains("compressed (permessage-deflate)") })
        var hostile = WebSocketMessageDecoder()
        let head = Data("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n".utf8)
        let bad = hostile.client(head + Data([0x83, 0x00]))
        #expect(bad.last?.summary.hasPrefix("no longer decoded") == true)
        #expect(hostile.client(Data([0x81, 0x00])).isEmpty)
    }
}
