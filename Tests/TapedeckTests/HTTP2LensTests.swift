import Foundation
import NIOHPACK
import Testing

@testable import Tapedeck

/// The HTTP/2 lens without sockets: frames and sessions decoded from bytes recorded from real clients and servers
/// (grpcio against a grpcio server, curl against nginx), split at every position, and the choice of recorded
/// streams for live ones.
struct HTTP2LensTests {
    /// A recorded session's data events, in order.
    struct Recording {
        var sessionID: Int64
        var events: [(direction: Direction, bytes: [UInt8])]

        /// One direction's bytes, joined.
        func stream(_ direction: Direction) -> [UInt8] {
            events.filter { $0.direction == direction }.flatMap(\.bytes)
        }

        /// The session decoded from its events in recording order.
        var decoded: HTTP2SessionDecoder {
            var decoder = HTTP2SessionDecoder(sessionID: sessionID)
            for event in events { decoder.feed(event.bytes, from: event.direction) }
            return decoder
        }
    }

    /// Reads `fixtures/http2/NAME.events`: `session ID` lines, then `client BASE64` / `upstream BASE64` lines.
    static func recordings(_ name: String) throws -> [Recording] {
        let url = PythonFixture.directory.appendingPathComponent("http2/\(name).events")
        var recordings: [Recording] = []
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            if parts[0] == "session" {
                recordings.append(Recording(sessionID: Int64(parts[1])!, events: []))
            } else {
                let bytes = try #require(Data(base64Encoded: parts[1]))
                let direction: Direction = parts[0] == "client" ? .clientToUpstream : .upstreamToClient
                recordings[recordings.count - 1].events.append((direction, Array(bytes)))
            }
        }
        return recordings
    }

    /// What a decoded session says, for comparing decodings: every stream's request and response contents.
    static func summary(_ streams: [HTTP2RecordedStream]) -> [String] {
        streams.map { stream in
            let parts = stream.response.map { part -> String in
                switch part.content {
                case .headers(let headers):
                    return "headers(\(headers.map { "\($0.name)=\($0.value)" }))\(part.endStream)"
                case .data(let bytes): return "data(\(bytes.count):\(bytes.hashValue))\(part.endStream)"
                case .reset(let code): return "reset(\(code))"
                }
            }
            return
                "\(stream.streamID) \(stream.key.line) \(stream.requestBody) \(stream.requestEnded) \(parts.joined(separator: ","))"
        }
    }

    static func path(_ stream: HTTP2RecordedStream) -> String {
        stream.requestHeaders.first(name: ":path") ?? ""
    }

    // MARK: Frames

    @Test func theFrameReaderSplitsAClientStreamTheSameWayWhereverItIsCut() throws {
        let client = try #require(try Self.recordings("grpc-echo").first).stream(.clientToUpstream)
        var whole = HTTP2FrameReader(expectingPreface: true)
        let frames = whole.feed(client)
        #expect(whole.failed == nil && !whole.hasPendingBytes)
        #expect(frames.first?.kind == .settings)
        #expect(frames.contains { $0.kind == .ping }, "grpcio's bandwidth probes")
        for cut in 0...client.count {
            var reader = HTTP2FrameReader(expectingPreface: true)
            let split = reader.feed(client[..<cut]) + reader.feed(client[cut...])
            #expect(split == frames, "cut at \(cut)")
        }
        // Byte by byte.
        var reader = HTTP2FrameReader(expectingPreface: true)
        #expect(client.flatMap { reader.feed([$0]) } == frames)
    }

    @Test func theFrameReaderRefusesAnotherProtocolAndAFrameBeyondItsBound() {
        var http1 = HTTP2FrameReader(expectingPreface: true)
        #expect(http1.feed(Array("GET / HTTP/1.1\r\n".utf8)).isEmpty)
        #expect(http1.failed != nil)
        #expect(http1.feed(HTTP2FrameReader.preface).isEmpty, "nothing after a failure")

        var bounded = HTTP2FrameReader(expectingPreface: false, maximumFrameLength: 100)
        #expect(bounded.feed([0, 0, 101, 0, 0, 0, 0, 0, 1]).isEmpty)
        #expect(bounded.failed?.contains("101") == true)

        // A preface cut anywhere is still a preface.
        for cut in 0...HTTP2FrameReader.preface.count {
            var reader = HTTP2FrameReader(expectingPreface: true)
            _ = reader.feed(HTTP2FrameReader.preface[..<cut])
            _ = reader.feed(HTTP2FrameReader.preface[cut...])
            #expect(reader.failed == nil && !reader.hasPendingBytes)
        }
    }

    @Test func paddedAndPriorityFieldsAreStrippedFromTheContent() {
        // HEADERS with PADDED and PRIORITY: pad length 2, five priority bytes, the fragment, two bytes of padding.
        let frame = HTTP2WireFrame(
            type: 1,
            flags: HTTP2WireFrame.Flag.padded | HTTP2WireFrame.Flag.priority | HTTP2WireFrame.Flag.endHeaders,
            streamID: 1,
            payload: [2, 0, 0, 0, 0, 16, 0x82, 0x84, 0, 0]
        )
        #expect(frame.content.map(Array.init) == [0x82, 0x84])
        let malformed = HTTP2WireFrame(type: 0, flags: HTTP2WireFrame.Flag.padded, streamID: 1, payload: [9, 1])
        #expect(malformed.content == nil)
    }

    // MARK: Sessions

    @Test func decodesGrpcioCallsIntoStreamsWithTheirRequestsAndResponses() throws {
        let recording = try #require(try Self.recordings("grpc-echo").first)
        let decoder = recording.decoded
        #expect(decoder.failure == nil)
        #expect(decoder.isHTTP2)
        let streams = decoder.streams
        #expect(streams.count == 15, "three workers, five calls each")
        #expect(streams.map { $0.streamID } == streams.map { $0.streamID }.sorted())
        let paths = Set(streams.map(Self.path))
        #expect(paths == Set(["Say", "Count", "Sum", "Chat", "Fail"].map { "/tapedeck.Echo/\($0)" }))
        for stream in streams {
            #expect(stream.requestEnded, "\(stream.streamID)")
            #expect(stream.requestHeaders.first(name: "content-type") == "application/grpc")
            #expect(stream.requestHeaders.first(name: "grpc-timeout") != nil, "calls have a deadline")
            #expect(stream.responseEnded, "\(stream.streamID)")
            // The parts come in request order, and none before the request had its bytes.
            let points = stream.response.map(\.afterRequestBytes)
            #expect(points == points.sorted() && points.allSatisfy { $0 <= stream.requestBody.count })
            guard case .headers(let trailers) = stream.response.last?.content else {
                Issue.record("stream \(stream.streamID) does not end with trailers")
                continue
            }
            let status = Self.path(stream) == "/tapedeck.Echo/Fail" ? "5" : "0"
            #expect(trailers.first(name: "grpc-status") == status, "\(trailers)")
        }
        let say = try #require(streams.first { Self.path($0) == "/tapedeck.Echo/Say" })
        // A gRPC message: a compression flag, a four-byte length, the bytes.
        #expect(say.requestBody.dropFirst(5).starts(with: "hello w0".utf8))
        let data = say.response.compactMap { part -> [UInt8]? in
            if case .data(let bytes) = part.content { return bytes } else { return nil }
        }
        #expect(data.count == 1 && String(decoding: data[0].dropFirst(5), as: UTF8.self).hasPrefix("said:hello w0"))
    }

    @Test func aGrpcSessionDecodesTheSameWhereverEitherDirectionIsCut() throws {
        let recording = try #require(try Self.recordings("grpc-echo").first)
        try Self.expectCutsDecodeAlike(recording, stride: 1)
    }

    @Test func curlAgainstNginxDecodesTheSameWhereverEitherDirectionIsCut() throws {
        let recordings = try Self.recordings("nginx-h2c")
        #expect(recordings.count == 4)
        let decoded = recordings.map(\.decoded)
        #expect(decoded.allSatisfy { $0.failure == nil && $0.streams.count == 1 })
        #expect(decoded.map { $0.streams.first.map(Self.path) } == ["/a.txt", "/big.txt", "/missing", "/a.txt"])
        let statuses = decoded.map { decoder -> String? in
            guard case .headers(let head) = decoder.streams.first?.response.first?.content else { return nil }
            return head.first(name: ":status")
        }
        #expect(statuses == ["200", "200", "404", "405"])
        #expect(decoded[3].streams[0].requestBody == Array("x=1".utf8))
        let big = decoded[1].streams[0].response.reduce(0) { total, part in
            if case .data(let bytes) = part.content { return total + bytes.count } else { return total }
        }
        #expect(big == 27_019)
        for recording in recordings {
            // The 27 KB download every 97th position, so that the suite stays quick; the others everywhere.
            try Self.expectCutsDecodeAlike(recording, stride: recording.sessionID == 2 ? 97 : 1)
        }
    }

    /// Decodes `recording` with each direction cut in two at every `stride`th position (the client's stream, then
    /// the upstream's), and expects the same streams every time.
    static func expectCutsDecodeAlike(_ recording: Recording, stride step: Int) throws {
        let client = recording.stream(.clientToUpstream)
        let upstream = recording.stream(.upstreamToClient)
        func decode(clientCut: Int, upstreamCut: Int) -> [String] {
            var decoder = HTTP2SessionDecoder(sessionID: recording.sessionID)
            decoder.feed(client[..<clientCut], from: .clientToUpstream)
            decoder.feed(client[clientCut...], from: .clientToUpstream)
            decoder.feed(upstream[..<upstreamCut], from: .upstreamToClient)
            decoder.feed(upstream[upstreamCut...], from: .upstreamToClient)
            #expect(decoder.failure == nil)
            return summary(decoder.streams)
        }
        let expected = decode(clientCut: 0, upstreamCut: 0)
        #expect(summary(recording.decoded.streams) == expected, "the same contents, fed in recording order")
        for cut in Swift.stride(from: 0, through: client.count, by: step) {
            #expect(decode(clientCut: cut, upstreamCut: 0) == expected, "client cut at \(cut)")
        }
        for cut in Swift.stride(from: 0, through: upstream.count, by: step) {
            #expect(decode(clientCut: client.count, upstreamCut: cut) == expected, "upstream cut at \(cut)")
        }
    }

    @Test func aTruncatedOrGarbledSessionKeepsWhatItDecodedAndNeverTraps() throws {
        let recording = try #require(try Self.recordings("grpc-echo").first)
        let client = recording.stream(.clientToUpstream)
        let upstream = recording.stream(.upstreamToClient)
        // Cut short: a stream whose request had not ended yet.
        var truncated = HTTP2SessionDecoder(sessionID: 1)
        truncated.feed(client.prefix(client.count / 2), from: .clientToUpstream)
        #expect(truncated.failure == nil && !truncated.streams.isEmpty)
        // Garbage in a header block: decoding stops there, and what came before stays.
        var garbled = client
        for index in stride(from: 200, to: garbled.count, by: 7) { garbled[index] ^= 0xA5 }
        var decoder = HTTP2SessionDecoder(sessionID: 1)
        decoder.feed(garbled, from: .clientToUpstream)
        decoder.feed(upstream, from: .upstreamToClient)
        #expect(decoder.streams.count < 15)
        // Random bytes, and an upstream that is not HTTP/2.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var random = HTTP2SessionDecoder(sessionID: 1)
            let noise = (0..<Int.random(in: 0..<300, using: &generator)).map { _ in UInt8.random(in: 0...255) }
            random.feed(HTTP2FrameReader.preface + noise, from: .clientToUpstream)
            random.feed(noise, from: .upstreamToClient)
        }
        var notHTTP2 = HTTP2SessionDecoder(sessionID: 1)
        notHTTP2.feed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), from: .clientToUpstream)
        #expect(!notHTTP2.isHTTP2 && notHTTP2.streams.isEmpty)
    }

    // MARK: Choosing recorded streams

    /// A recorded stream of `session` asking `path` with `body`, answered with `response` parts.
    static func stream(
        _ session: Int64,
        id: UInt32 = 1,
        path: String = "/svc/Call",
        body: String,
        response: [HTTP2RecordedStream.ResponsePart]
    ) -> HTTP2RecordedStream {
        HTTP2RecordedStream(
            sessionID: session,
            streamID: id,
            clientOffset: 24,
            requestHeaders: [
                ":method": "POST", ":scheme": "http", ":path": path, ":authority": "127.0.0.1:5000",
                "content-type": "application/grpc", "grpc-timeout": "9S",
            ],
            requestBody: Array(body.utf8),
            requestEnded: true,
            response: response
        )
    }

    static func part(
        _ content: HTTP2RecordedStream.ResponsePart.Content,
        end: Bool = false,
        after bytes: Int,
        ended: Bool = false
    ) -> HTTP2RecordedStream.ResponsePart {
        HTTP2RecordedStream.ResponsePart(
            content: content,
            endStream: end,
            afterRequestBytes: bytes,
            afterRequestEnd: ended,
            offsetNanoseconds: 0
        )
    }

    static let head = HTTP2RecordedStream.ResponsePart.Content.headers([":status": "200"])
    static let trailers = HTTP2RecordedStream.ResponsePart.Content.headers(["grpc-status": "0"])

    /// A live request like the recorded ones, from another address and with another deadline.
    static let liveHeaders: HPACKHeaders = [
        ":method": "POST", ":scheme": "http", ":path": "/svc/Call", ":authority": "127.0.0.1:6000",
        "content-type": "application/grpc", "grpc-timeout": "4S",
    ]

    static func sent(_ actions: [HTTP2StreamMatcher.Action]) -> [HTTP2RecordedStream.ResponsePart.Content] {
        actions.compactMap { if case .send(let part) = $0 { return part.content } else { return nil } }
    }

    @Test func aLiveStreamSwitchesToTheRecordedOneItsBodyAgreesWith() {
        let book = HTTP2ReplayBook(
            route: "default",
            streams: [
                Self.stream(
                    1,
                    body: "alpha",
                    response: [Self.part(.data(Array("A".utf8)), end: true, after: 5, ended: true)]
                ),
                Self.stream(
                    2,
                    body: "alps",
                    response: [Self.part(.data(Array("B".utf8)), end: true, after: 4, ended: true)]
                ),
            ],
            sessionIDs: [1, 2],
            repeatable: false
        )
        var matcher = HTTP2StreamMatcher(book: book)
        #expect(matcher.receiveHeaders(Self.liveHeaders, endStream: false).isEmpty)
        #expect(matcher.phase == .following(0), "the earliest first")
        #expect(matcher.receiveData(Array("alp".utf8), endStream: false).isEmpty)
        #expect(matcher.phase == .following(0))
        #expect(Self.sent(matcher.receiveData(Array("s".utf8), endStream: true)) == [.data(Array("B".utf8))])
        #expect(matcher.phase == .served(1))
        #expect(book.unusedSessionIDs == [1])
        #expect(book.incompleteSessions.isEmpty)
    }

    @Test func concurrentIdenticalRequestsGetDistinctRecordedStreamsAndRepeatsMismatchWithoutRepeat() {
        let response = [Self.part(Self.head, after: 0), Self.part(Self.trailers, end: true, after: 2, ended: true)]
        let book = HTTP2ReplayBook(
            route: "default",
            streams: [
                Self.stream(1, body: "hi", response: response), Self.stream(1, id: 3, body: "hi", response: response),
            ],
            sessionIDs: [1],
            repeatable: false
        )
        var first = HTTP2StreamMatcher(book: book)
        var second = HTTP2StreamMatcher(book: book)
        #expect(Self.sent(first.receiveHeaders(Self.liveHeaders, endStream: false)) == [Self.head])
        #expect(Self.sent(second.receiveHeaders(Self.liveHeaders, endStream: false)) == [Self.head])
        #expect(first.phase == .following(0) && second.phase == .following(1))
        #expect(Self.sent(first.receiveData(Array("hi".utf8), endStream: true)) == [Self.trailers])
        #expect(Self.sent(second.receiveData(Array("hi".utf8), endStream: true)) == [Self.trailers])
        #expect(book.unusedSessionIDs.isEmpty && book.incompleteSessions.isEmpty)

        var third = HTTP2StreamMatcher(book: book)
        let actions = third.receiveHeaders(Self.liveHeaders, endStream: false) + third.receiveData([], endStream: true)
        guard case .mismatch(let mismatch) = actions.last else {
            Issue.record("a third request was served: \(actions)")
            return
        }
        #expect(mismatch.reason.contains("--repeat") || mismatch.reason.contains("ended before"), "\(mismatch)")

        let repeating = HTTP2ReplayBook(route: "default", streams: book.streams, sessionIDs: [1], repeatable: true)
        for _ in 0..<3 {
            var again = HTTP2StreamMatcher(book: repeating)
            _ = again.receiveHeaders(Self.liveHeaders, endStream: false)
            #expect(Self.sent(again.receiveData(Array("hi".utf8), endStream: true)) == [Self.trailers])
        }
    }

    @Test func responsePartsWaitForTheRequestBytesTheyFollowed() {
        // A bidirectional call: an answer to each message as it came, and trailers after the client's end.
        let book = HTTP2ReplayBook(
            route: "default",
            streams: [
                Self.stream(
                    1,
                    body: "onetwo",
                    response: [
                        Self.part(Self.head, after: 3),
                        Self.part(.data(Array("1".utf8)), after: 3),
                        Self.part(.data(Array("2".utf8)), after: 6),
                        Self.part(Self.trailers, end: true, after: 6, ended: true),
                    ]
                )
            ],
            sessionIDs: [1],
            repeatable: false
        )
        var matcher = HTTP2StreamMatcher(book: book)
        #expect(matcher.receiveHeaders(Self.liveHeaders, endStream: false).isEmpty)
        #expect(matcher.receiveData(Array("on".utf8), endStream: false).isEmpty)
        #expect(
            Self.sent(matcher.receiveData(Array("et".utf8), endStream: false)) == [Self.head, .data(Array("1".utf8))]
        )
        #expect(Self.sent(matcher.receiveData(Array("wo".utf8), endStream: false)) == [.data(Array("2".utf8))])
        #expect(Self.sent(matcher.receiveEnd()) == [Self.trailers])
        #expect(matcher.phase == .served(0))
    }

    @Test func aRequestTheTapeNeverSawNamesTheClosestRecordedOne() {
        let book = HTTP2ReplayBook(
            route: "default",
            streams: [
                Self.stream(7, body: "x", response: [Self.part(Self.trailers, end: true, after: 1, ended: true)])
            ],
            sessionIDs: [7],
            repeatable: false
        )
        var headers = Self.liveHeaders
        headers.replaceOrAdd(name: ":path", value: "/svc/Other")
        var matcher = HTTP2StreamMatcher(book: book)
        guard case .mismatch(let mismatch) = matcher.receiveHeaders(headers, endStream: true).first else {
            Issue.record("no mismatch")
            return
        }
        #expect(mismatch.reason.contains("POST /svc/Other") && mismatch.closestSessionID == 7)
        #expect(String(decoding: mismatch.expected, as: UTF8.self).contains(":path: /svc/Call"))

        // The body differs: the mismatch says where.
        var diverging = HTTP2StreamMatcher(book: book)
        _ = diverging.receiveHeaders(Self.liveHeaders, endStream: false)
        guard case .mismatch(let body) = diverging.receiveData(Array("y".utf8), endStream: true).first else {
            Issue.record("no mismatch")
            return
        }
        #expect(body.offset == 0 && body.expected == Data("x".utf8) && body.actual == Data("y".utf8))
        #expect(book.unusedSessionIDs == [7])
    }

    @Test func everyRecordedGrpcCallIsServedItsOwnResponseFromThePooledBook() throws {
        let recording = try #require(try Self.recordings("grpc-echo").first)
        let decoder = recording.decoded
        let book = HTTP2ReplayBook(route: "default", sessions: [decoder], repeatable: false)
        // Replayed in reverse order, each request as one DATA frame: every stream finds its own answer.
        for stream in decoder.streams.reversed() {
            var matcher = HTTP2StreamMatcher(book: book)
            var actions = matcher.receiveHeaders(stream.requestHeaders, endStream: false)
            actions += matcher.receiveData(stream.requestBody, endStream: true)
            #expect(Self.sent(actions) == stream.response.map(\.content), "\(stream.streamID)")
            #expect(matcher.phase == .served(book.streams.firstIndex { $0.streamID == stream.streamID }!))
        }
        #expect(book.unusedSessionIDs.isEmpty && book.incompleteSessions.isEmpty)
    }
}

/// HTTP/2 sessions read for `--decode`, on recorded bytes.
struct HTTP2MessageDecoderTests {
    @Test func readsEachStreamsRequestAndResponseAsTheyCome() throws {
        let recording = try #require(try HTTP2LensTests.recordings("grpc-echo").first)
        var decoder = HTTP2MessageDecoder()
        var messages: [DecodedMessage] = []
        for event in recording.events {
            messages +=
                event.direction == .clientToUpstream
                ? decoder.client(Data(event.bytes)) : decoder.upstream(Data(event.bytes))
        }
        let summaries = messages.map(\.summary)
        #expect(summaries.contains { $0.hasPrefix("stream 1: POST /") })
        #expect(summaries.contains("stream 1: response 200"))
        #expect(summaries.contains("stream 1: trailers, end of stream"))
        let trailers = try #require(messages.first { $0.summary == "stream 1: trailers, end of stream" })
        #expect(trailers.details.contains { $0.hasPrefix("grpc-status: ") })
        #expect(messages.allSatisfy { $0.lens == "http2" })
        #expect(!summaries.contains { $0.hasPrefix("no longer decoded") })
        var garbage = HTTP2MessageDecoder()
        #expect(garbage.client(Data("GET / HTTP/1.1\r\n\r\n".utf8)).allSatisfy { $0.summary.hasPrefix("no longer") })
    }
}

/// HTTP/1.1 requests that upgrade to h2c: read as stream 1, recorded and live alike.
struct HTTP2UpgradeTests {
    static let curlHead = Array(
        ("GET /a HTTP/1.1\r\nHost: 127.0.0.1:33711\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
            + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
            .utf8
    )

    @Test func anUpgradeRequestBecomesStreamOnesHeadersWithoutTheConnectionsOwn() throws {
        #expect(HTTP2UpgradeRequest.headLength(in: Self.curlHead) == Self.curlHead.count)
        #expect(HTTP2UpgradeRequest.headLength(in: Self.curlHead.dropLast()) == nil)
        let request = try #require(HTTP2UpgradeRequest(head: Self.curlHead))
        #expect(
            request.headers.map { "\($0.name): \($0.value)" } == [
                ":method: GET", ":scheme: http", ":authority: 127.0.0.1:33711", ":path: /a", "user-agent: curl/7.88.1",
                "accept: */*",
            ]
        )
        // Its frames decode back to the same headers, through the same reader and HPACK as recorded frames.
        var decoder = HTTP2SessionDecoder(sessionID: 1)
        decoder.feed(HTTP2FrameReader.preface + request.frames(body: []), from: .clientToUpstream)
        #expect(decoder.streams.map(\.streamID) == [1])
        #expect(decoder.streams.first?.requestHeaders == request.headers)
        #expect(decoder.streams.first?.requestEnded == true)
        let plain = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        #expect(HTTP2UpgradeRequest(head: plain) == nil)
        let websocket = Array("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".utf8)
        #expect(HTTP2UpgradeRequest(head: websocket) == nil)
    }

    @Test func aRecordedUpgradeDecodesAsStreamOneWhereverTheBytesSplit() throws {
        let recording = try #require(try HTTP2LensTests.recordings("h2c-upgrade").first)
        let whole = recording.decoded
        #expect(whole.failure == nil)
        #expect(whole.streams.map(\.streamID) == [1])
        let stream = try #require(whole.streams.first)
        #expect(stream.requestHeaders.first(name: ":path") == "/a")
        let body = stream.response.compactMap { part -> [UInt8]? in
            if case .data(let bytes) = part.content { return bytes } else { return nil }
        }.joined()
        #expect(String(decoding: Array(body), as: UTF8.self) == "GET /a http/2 body=\n")
        let client = recording.stream(.clientToUpstream)
        let upstream = recording.stream(.upstreamToClient)
        for split in 0...client.count {
            var decoder = HTTP2SessionDecoder(sessionID: 1)
            decoder.feed(client[..<split], from: .clientToUpstream)
            decoder.feed(client[split...], from: .clientToUpstream)
            decoder.feed(upstream.prefix(split % upstream.count), from: .upstreamToClient)
            decoder.feed(upstream.dropFirst(split % upstream.count), from: .upstreamToClient)
            #expect(HTTP2LensTests.summary(decoder.streams) == HTTP2LensTests.summary(whole.streams), "split \(split)")
        }
    }
}
