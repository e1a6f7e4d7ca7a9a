import Foundation
import NIOCore
import TapedeckTesting
import Testing

@testable import Tapedeck

/// The rule engine without sockets: spans found in streams read in any split, tokens, placeholders, echoes.
struct RuleEngineTests {
    static let requestID = try! Rule(.volatile, pattern: "X-Request-Id: ([0-9a-f-]{36})")
    static let password = try! Rule(.redact, pattern: "PASS ([a-z0-9]+)\r\n", scope: .client)

    static func normalizeInPieces(_ bytes: Data, rules: CompiledRules, splits: [Int]) -> Data {
        var normalizer = StreamNormalizer(rules: rules)
        var output = Data()
        var start = 0
        for split in splits + [bytes.count] {
            output += normalizer.feed(bytes.subdata(in: start..<split))
            start = split
        }
        return output + normalizer.flush()
    }

    @Test func aVolatileSpanSplitAtEveryPositionNormalizesAsWhole() throws {
        let rules = try CompiledRules([Self.requestID], direction: .clientToUpstream)
        let stream = Data(
            "GET / HTTP/1.1\r\nX-Request-Id: 0f8fad5b-d9cb-469f-a165-70867728950e\r\nHost: a\r\n\r\n".utf8
        )
        let whole = StreamNormalizer.normalize(stream, rules: rules).bytes
        #expect(whole == Data("GET / HTTP/1.1\r\nX-Request-Id: {tapedeck:volatile:0}\r\nHost: a\r\n\r\n".utf8))
        for split in 1..<stream.count {
            #expect(Self.normalizeInPieces(stream, rules: rules, splits: [split]) == whole, "split at \(split)")
        }
        // Two splits at once, a sample of them (every pair would be 5,000 cases).
        for first in stride(from: 1, to: stream.count, by: 7) {
            for second in stride(from: first + 1, to: stream.count, by: 5) {
                #expect(Self.normalizeInPieces(stream, rules: rules, splits: [first, second]) == whole)
            }
        }
    }

    @Test func spansOfDifferentLengthsAreEqualAfterNormalizing() throws {
        let rule = try Rule(.volatile, pattern: #"X-Amz-Date: ([0-9TZ]+)"#)
        let rules = try CompiledRules([rule], direction: .clientToUpstream)
        let recorded = StreamNormalizer.normalize(Data("a\r\nX-Amz-Date: 20240101T000000Z\r\n".utf8), rules: rules)
        let live = Self.normalizeInPieces(Data("a\r\nX-Amz-Date: 2026T1Z\r\n".utf8), rules: rules, splits: [20])
        #expect(recorded.bytes == live)
    }

    @Test func theListenAddressSplitAcrossReadsIsRecognized() throws {
        let listen = try #require(ListenAddressText(.tcp(host: "127.0.0.1", port: 41234)))
        let rules = try CompiledRules([], direction: .clientToUpstream, listen: listen)
        let stream = Data("GET / HTTP/1.1\r\nHost: 127.0.0.1:41234\r\n\r\n".utf8)
        let expected = Data("GET / HTTP/1.1\r\nHost: {tapedeck:listen}\r\n\r\n".utf8)
        for split in 1..<stream.count {
            #expect(Self.normalizeInPieces(stream, rules: rules, splits: [split]) == expected, "split at \(split)")
        }
    }

    @Test func aRedactionWinsOverAVolatileSpanItOverlaps() throws {
        let volatile = try Rule(.volatile, pattern: "token=([a-z0-9]+)")
        let redact = try Rule(.redact, pattern: "([0-9]{4,})")
        let rules = try CompiledRules([volatile, redact], direction: .clientToUpstream)
        let spans = rules.spans(in: Data("token=abc12345 x=99999".utf8), final: true).spans
        #expect(spans.map(\.range) == [9..<14, 17..<22])
        #expect(spans.allSatisfy { $0.meaning.isRedaction })
        // Overlapping redactions merge into one.
        let wide = try CompiledRules(
            [try Rule(.redact, pattern: "ab(cd)"), try Rule(.redact, pattern: "(cdef)")],
            direction: .clientToUpstream
        )
        #expect(wide.spans(in: Data("xabcdefx".utf8), final: true).spans.map(\.range) == [3..<7])
    }

    @Test func captureGroupsAreTheSpansAndTheWholeMatchOtherwise() throws {
        let groups = try CompiledRules(
            [try Rule(.volatile, pattern: "a=([0-9]+)&b=([0-9]+)")],
            direction: .upstreamToClient
        )
        #expect(groups.spans(in: Data("?a=12&b=345".utf8), final: true).spans.map(\.range) == [3..<5, 8..<11])
        let whole = try CompiledRules([try Rule(.volatile, pattern: "[0-9]{3}")], direction: .upstreamToClient)
        #expect(whole.spans(in: Data("ab123c".utf8), final: true).spans.map(\.range) == [2..<5])
        // A client-only rule does not read the upstream's stream.
        let clientOnly = try CompiledRules([Self.password], direction: .upstreamToClient)
        #expect(clientOnly.isEmpty)
    }

    @Test func anInvalidExpressionIsOneClearError() {
        #expect(throws: TapedeckError.self) { try Rule(.volatile, pattern: "([a-z") }
        do {
            _ = try Rule(.volatile, pattern: "([a-z")
        } catch let error as TapedeckError {
            #expect(error.message == "invalid regular expression '([a-z': it does not compile")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func everyPresetCompilesAndFindsWhatItDocuments() throws {
        for preset in RulePreset.allCases {
            for rule in preset.rules { _ = try BytePattern(rule.pattern) }
        }
        func spans(_ preset: RulePreset, _ text: String) throws -> [String] {
            let rules = try CompiledRules(preset.rules, direction: .clientToUpstream)
            let bytes = Data(text.utf8)
            return rules.spans(in: bytes, final: true).spans.map { String(decoding: bytes[$0.range], as: UTF8.self) }
        }
        #expect(
            try spans(.httpAuth, "GET / HTTP/1.1\r\nauthorization: Bearer abc.def\r\nCookie: a=b\r\n\r\n")
                == ["Bearer abc.def", "a=b"]
        )
        let signed =
            "PUT /b HTTP/1.1\r\nX-Amz-Date: 20241201T101010Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20241201/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024\r\namz-sdk-invocation-id: 5d4a0b4f-2c8d-4b53-9a4b-3f5c1a2e9e11\r\namz-sdk-request: attempt=1; max=1\r\n\r\n"
        #expect(
            try spans(.awsSigV4, signed) == [
                "20241201T101010Z", "20241201/us-east-1/s3/aws4_request",
                "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
                "5d4a0b4f-2c8d-4b53-9a4b-3f5c1a2e9e11", "attempt=1; max=1",
            ]
        )
        #expect(
            try spans(.uuid, "id=0F8FAD5B-D9CB-469F-A165-70867728950E;") == ["0F8FAD5B-D9CB-469F-A165-70867728950E"]
        )
        #expect(
            try spans(
                .timestamps,
                "a 2024-12-01T10:10:10.123Z b Sun, 06 Nov 1994 08:49:37 GMT c 1733047810 d 1733047810123 e 42"
            )
                == ["2024-12-01T10:10:10.123Z", "Sun, 06 Nov 1994 08:49:37 GMT", "1733047810", "1733047810123"]
        )
        #expect(try spans(.redisAuth, "*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*1\r\n$4\r\nPING\r\n") == ["secret"])
        #expect(
            try spans(.redisAuth, "*3\r\n$4\r\nauth\r\n$5\r\nalice\r\n$6\r\nsecret\r\n") == ["alice", "secret"]
        )
        #expect(
            try spans(.redisAuth, "*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$2\r\npw\r\n")
                == ["default", "pw"]
        )
        #expect(try spans(.redisAuth, "AUTH hunter2\r\n") == ["hunter2"])
        var password = Data("p".utf8) + Data([0, 0, 0, 12]) + Data("hunter2\0".utf8)
        password.insert(contentsOf: Data("R....".utf8), at: 0)
        #expect(try spans(.postgresPassword, String(decoding: password, as: UTF8.self)) == ["hunter2"])
    }

    // MARK: Redaction at recording

    static func redact(_ chunks: [String], rules: [Rule]) throws -> [RecordingRedactor.Event] {
        var redactor = RecordingRedactor(
            rules: try CompiledRules(rules, direction: .clientToUpstream, kinds: [.redact])
        )
        var written: [RecordingRedactor.Event] = []
        for (seq, chunk) in chunks.enumerated() {
            written += redactor.feed(.init(seq: Int64(seq), offset: Int64(seq), payload: ByteBuffer(string: chunk)))
        }
        return written + redactor.finish()
    }

    @Test func aRedactedSpanSplitAtEveryPositionNeverReachesTheTape() throws {
        let stream = "USER bob\r\nPASS hunter22\r\nLIST\r\n"
        let bytes = Array(stream.utf8)
        for split in 1..<bytes.count {
            let written = try Self.redact(
                [String(decoding: bytes[..<split], as: UTF8.self), String(decoding: bytes[split...], as: UTF8.self)],
                rules: [Self.password]
            )
            // Same events, same sizes, same order; only the secret's bytes changed.
            #expect(written.map(\.seq) == [0, 1], "split at \(split)")
            let bytes = written.map { String(buffer: $0.payload) }.joined()
            #expect(bytes == "USER bob\r\nPASS ********\r\nLIST\r\n", "split at \(split)")
            #expect(written.flatMap(\.redactions).map(\.length).reduce(0, +) == 8)
            #expect(written[0].payload.readableBytes == split)
        }
    }

    @Test func eventsWithoutSpansAreWrittenAtOnceAndUntouched() throws {
        var redactor = RecordingRedactor(
            rules: try CompiledRules([Self.password], direction: .clientToUpstream, kinds: [.redact])
        )
        let written = redactor.feed(.init(seq: 0, offset: 0, payload: ByteBuffer(string: "LIST\r\n")))
        #expect(written.count == 1 && written[0].redactions.isEmpty)
        // A read that ends where a span may begin waits for the next one.
        #expect(redactor.feed(.init(seq: 1, offset: 1, payload: ByteBuffer(string: "PA"))).isEmpty)
        #expect(redactor.feed(.init(seq: 2, offset: 2, payload: ByteBuffer(string: "SS x1\r\n"))).count == 2)
    }

    // MARK: Replay with rules

    static func script(_ id: Int64, _ steps: [(Direction, String)], rules: ReplayScript.Rules) -> ReplayScript {
        let events = steps.enumerated().map { index, step in
            EventRecord(
                sessionID: id,
                seq: Int64(index),
                offsetNanoseconds: Int64(index),
                direction: step.0,
                kind: .data,
                payload: Data(step.1.utf8)
            )
        }
        return ReplayScript(sessionID: id, events: events, rules: rules)
    }

    /// Plays `live` against one recorded session, in the given splits, and returns what the client gets.
    static func replay(
        _ script: ReplayScript,
        live: String,
        rules: CompiledRules,
        splits: [Int] = [],
        secrets: [String: String] = [:]
    ) -> (bytes: Data, mismatch: ReplayMatcher.Mismatch?) {
        let catalog = SessionCatalog(scripts: [script], repeatable: true)
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        var normalizer = StreamNormalizer(rules: rules)
        var actions = matcher.start()
        let bytes = Data(live.utf8)
        var start = 0
        for split in splits + [bytes.count] {
            actions += matcher.receive(normalizer.feed(bytes.subdata(in: start..<split)))
            start = split
        }
        actions += matcher.receive(normalizer.flush())
        var output = Data()
        for action in actions {
            switch action {
            case .send(let bytes, _): output += bytes.heldBytes ?? Data()
            case .sendEdited(let bytes, let edits, _):
                output += UpstreamEdit.apply(edits, to: bytes) { source in
                    switch source {
                    case .clientValue(let position): return normalizer.captures[position]
                    case .secret(let name): return secrets[name].map { Data($0.utf8) }
                    }
                }
            default: break
            }
        }
        return (output, matcher.mismatch)
    }

    @Test func anEchoedValueIsReplacedByTheLiveClientsWithItsLengthFixed() throws {
        let rule = try Rule(.volatile, pattern: "id=([a-z0-9]+)")
        let rules = try CompiledRules([rule], direction: .clientToUpstream)
        let script = Self.script(
            1,
            [
                (.clientToUpstream, "GET /?id=abc123 HTTP/1.1\r\n\r\n"),
                (.upstreamToClient, "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"echo\":\"abc123\"}"),
            ],
            rules: .init(client: rules)
        )
        let live = "GET /?id=zz99887766 HTTP/1.1\r\n\r\n"
        for split in [0, 5, 10, 12, 20] {
            let (bytes, mismatch) = Self.replay(script, live: live, rules: rules, splits: split == 0 ? [] : [split])
            #expect(mismatch == nil)
            #expect(
                String(decoding: bytes, as: UTF8.self)
                    == "HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n{\"echo\":\"zz99887766\"}",
                "split at \(split)"
            )
        }
        // The same length needs no fixing.
        let (same, _) = Self.replay(script, live: "GET /?id=xyz789 HTTP/1.1\r\n\r\n", rules: rules)
        #expect(String(decoding: same, as: UTF8.self).hasSuffix("Content-Length: 17\r\n\r\n{\"echo\":\"xyz789\"}"))
    }

    @Test func anEchoInsideARESPBulkStringFixesItsLength() throws {
        // The client's own length prefix differs too: the rule makes it volatile with a group of its own.
        let rule = try Rule(.volatile, pattern: #"\$([0-9]+)\r\n(nonce-[a-z0-9]+)"#)
        let rules = try CompiledRules([rule], direction: .clientToUpstream)
        let script = Self.script(
            1,
            [
                (.clientToUpstream, "*2\r\n$4\r\nECHO\r\n$11\r\nnonce-abcde\r\n"),
                (.upstreamToClient, "$11\r\nnonce-abcde\r\n"),
            ],
            rules: .init(client: rules)
        )
        let (bytes, mismatch) = Self.replay(
            script,
            live: "*2\r\n$4\r\nECHO\r\n$14\r\nnonce-12345678\r\n",
            rules: rules
        )
        #expect(mismatch?.reason == nil)
        #expect(String(decoding: bytes, as: UTF8.self) == "$14\r\nnonce-12345678\r\n")
    }

    @Test func aRedactedClientSpanMatchesAnyBytesOfItsLength() throws {
        let rules = try CompiledRules([Self.password], direction: .clientToUpstream)
        // As recorded: the placeholder, and where it is.
        let script = Self.script(
            1,
            [(.clientToUpstream, "PASS ********\r\n"), (.upstreamToClient, "+OK\r\n")],
            rules: .init(client: rules, clientRedactions: [0: [5..<13]])
        )
        #expect(Self.replay(script, live: "PASS hunter22\r\n", rules: rules, splits: [7]).bytes == Data("+OK\r\n".utf8))
        // Another length is another message.
        #expect(Self.replay(script, live: "PASS hunter2\r\n", rules: rules).mismatch != nil)
    }

    @Test func aRedactedUpstreamSpanIsReplayedAsTheSuppliedSecret() throws {
        let rules = try CompiledRules([], direction: .clientToUpstream)
        let script = Self.script(
            1,
            [(.clientToUpstream, "GET\r\n"), (.upstreamToClient, "$6\r\n******\r\n")],
            rules: .init(client: rules, upstreamSecrets: [1: [(4..<10, "token")]])
        )
        #expect(Self.replay(script, live: "GET\r\n", rules: rules).bytes == Data("$6\r\n******\r\n".utf8))
        let supplied = Self.replay(script, live: "GET\r\n", rules: rules, secrets: ["token": "s3cr3t-value"])
        #expect(supplied.bytes == Data("$12\r\ns3cr3t-value\r\n".utf8))
    }
}

/// Rules through the test helpers, in process: what a user's Swift test suite does.
struct RulesWithTapedeckTests {
    @Test func aVolatileValueEchoedByTheUpstreamComesBackAsTheLiveOne() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let directory = try TemporaryDirectory()
        let tape = directory.path("echo.tape")
        let recordedID = UUID().uuidString.lowercased()
        let recorded = try await withTapedeck(
            .record,
            tape: tape,
            upstream: "\(upstream.endpoint)",
            rules: RulePreset.uuid.rules
        ) { address in
            try await TestClient.exchange(address, "request id=\(recordedID) please\n").reply
        }
        #expect(recorded == "request id=\(recordedID) please\n")
        // Replayed with the tape's own rules: another id matches, and the echo carries it.
        let liveID = UUID().uuidString.lowercased()
        let replayed = try await withTapedeck(.replay, tape: tape, requireAll: true) { address in
            try await TestClient.exchange(address, "request id=\(liveID) please\n").reply
        }
        #expect(replayed == "request id=\(liveID) please\n")
    }
}

extension RuleEngineTests {
    /// A signed request as boto3 sends it, split by the socket at every place: the credentials never stay.
    @Test func anAuthorizationHeaderSplitAnywhereIsRedacted() throws {
        let request =
            "PUT /tapedeck-fixture HTTP/1.1\r\nHost: 127.0.0.1:41234\r\nAccept-Encoding: identity\r\nX-Amz-Date: 20261201T204301Z\r\nX-Amz-Content-SHA256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=4d0b2d1a5c3e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f41\r\namz-sdk-invocation-id: 5d4a0b4f-2c8d-4b53-9a4b-3f5c1a2e9e11\r\nContent-Length: 0\r\n\r\n"
        let bytes = Array(request.utf8)
        let rules = RulePreset.httpAuth.rules + RulePreset.awsSigV4.rules
        for split in 1..<bytes.count {
            let written = try Self.redact(
                [String(decoding: bytes[..<split], as: UTF8.self), String(decoding: bytes[split...], as: UTF8.self)],
                rules: rules
            )
            let tape = written.map { String(buffer: $0.payload) }.joined()
            #expect(!tape.contains("AKIA") && !tape.contains("Signature="), "split at \(split): \(tape)")
            #expect(tape.count == request.count)
        }
    }
}

/// The native matchers of the `uuid` and `timestamps` presets find exactly what their expressions find.
struct NativeMatcherTests {
    static let samples = [
        "id=0f8fad5b-d9cb-469f-a165-70867728950e;", "0F8FAD5B-D9CB-469F-A165-70867728950E",
        "x0f8fad5b-d9cb-469f-a165-70867728950e",
        "0f8fad5b-d9cb-469f-a165-70867728950ef", "0f8fad5b-d9cb-469f-a165-7086772895",
        "é0f8fad5b-d9cb-469f-a165-70867728950e",
        "2026-12-01T10:00:00Z", "2026-12-01 10:00", "2026-12-01T10:00:00.123+01:00 x", "2026-12-01T10:00:00,5-0130",
        "2026-12-01T10:00:0", "2026-12-01T10:00:00.", "a2026-12-01T10:00", "2026-12-01T10:00+01", "20261201T100000Z",
        "20261201T100000Zx", "120261201T100000Z", "1733047810", "1733047810123", "17330478101", "173304781012",
        "x1733047810", "1733047810_", "ts:1000000012345\r\n", "key:000000012345", "2733047810", "1733047810 1733047811",
        "SET ts:1000000012345 2026-12-01T10:00:00Z\r\n", "",
    ]

    @Test(arguments: RulePreset.uuid.rules + RulePreset.timestamps.rules)
    func findsWhatTheExpressionFinds(rule: Rule) throws {
        guard let native = NativeMatcher.forPattern(rule.pattern) else { return }
        let expression = try NSRegularExpression(pattern: rule.pattern)
        for sample in Self.samples {
            let bytes = Data(sample.utf8).map { $0 }
            let text = BytePattern.text(Data(bytes))
            for from in 0...bytes.count {
                var expected: [Range<Int>] = []
                var expectedHitEnd = false
                expression.enumerateMatches(
                    in: text,
                    options: [.withTransparentBounds, .withoutAnchoringBounds],
                    range: NSRange(location: from, length: bytes.count - from)
                ) { match, flags, _ in
                    guard let match else { return }
                    expected.append(match.range.location..<(match.range.location + match.range.length))
                    expectedHitEnd = flags.contains(.hitEnd)
                }
                let found = bytes.withUnsafeBufferPointer { native.scan($0, in: from..<bytes.count) }
                #expect(found.matches == expected, "\(native) in \(sample.debugDescription) from \(from)")
                if !expected.isEmpty {
                    #expect(found.lastHitEnd == expectedHitEnd, "\(native) hitEnd in \(sample.debugDescription)")
                }
            }
        }
    }
}
