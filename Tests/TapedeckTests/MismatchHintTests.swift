import Foundation
import Testing

@testable import Tapedeck

/// The hint for a mismatch: what the differing token looks like, and a rule whose span covers it as recorded
/// and as sent live, checked by compiling the rule the way `--volatile` does.
struct MismatchHintTests {
    /// The hint for two excerpts, checked against the tokens it must cover on each side.
    static func hint(
        _ expected: String,
        _ actual: String,
        covering recordedToken: String,
        _ liveToken: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> MismatchHint {
        let hint = try #require(
            MismatchHint(expected: Data(expected.utf8), actual: Data(actual.utf8)),
            sourceLocation: sourceLocation
        )
        let pattern = try BytePattern(hint.pattern)
        for (excerpt, token) in [(expected, recordedToken), (actual, liveToken)] {
            let range = try #require(tokenRange(token, in: excerpt), sourceLocation: sourceLocation)
            let spans = pattern.spans(in: Data(excerpt.utf8))
            #expect(
                spans.contains { $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound },
                "\(hint.pattern) covers \(token) in \(excerpt.debugDescription): spans \(spans)",
                sourceLocation: sourceLocation
            )
        }
        #expect(hint.rule == "--volatile " + MismatchHint.shellQuoted(hint.pattern), sourceLocation: sourceLocation)
        return hint
    }

    /// The byte range of `token` in `excerpt`: its last occurrence, the one at the difference in these tests.
    static func tokenRange(_ token: String, in excerpt: String) -> Range<Int>? {
        let bytes = Array(excerpt.utf8)
        let needle = Array(token.utf8)
        guard needle.count <= bytes.count else { return nil }
        for start in stride(from: bytes.count - needle.count, through: 0, by: -1)
        where bytes[start..<(start + needle.count)].elementsEqual(needle) {
            return start..<(start + needle.count)
        }
        return nil
    }

    /// Excerpts cut as the replay matcher cuts them: 16 bytes before the first difference, 48 from it.
    static func excerpts(_ recorded: String, _ live: String) throws -> (expected: String, actual: String) {
        let index = try #require(MismatchHint.firstDifference(Data(recorded.utf8), Data(live.utf8)))
        let start = max(0, index - 16)
        func cut(_ text: String) -> String {
            String(decoding: Array(text.utf8)[start..<min(text.utf8.count, index + 48)], as: UTF8.self)
        }
        return (cut(recorded), cut(live))
    }

    /// Whether `preset`'s rules cover `token` in `excerpt`.
    static func presetCovers(_ preset: RulePreset, _ token: String, in excerpt: String) throws -> Bool {
        let range = try #require(tokenRange(token, in: excerpt))
        return try preset.rules.contains { rule in
            try BytePattern(rule.pattern).spans(in: Data(excerpt.utf8)).contains {
                $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound
            }
        }
    }

    static let recordedUUID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    static let liveUUID = "0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

    @Test func aDifferenceInsideTLSSaysToRecordWithIntercept() throws {
        // A PostgreSQL SSLRequest, then ClientHellos whose random bytes differ, as a `--tls off` tape holds them.
        let request: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]
        let hello: [UInt8] = [0x16, 0x03, 0x01, 0x01, 0x32, 0x01, 0x00, 0x01, 0x2E, 0x03, 0x03]
        let recorded = Data(request + hello + [0xA3, 0x9C, 0x3C])
        let live = Data(request + hello + [0x0D, 0x78, 0x16])
        let hint = try #require(MismatchHint(expected: recorded, actual: live))
        #expect(hint.kind == MismatchHint.tlsKind)
        #expect(hint.description.contains("inside TLS"))
        #expect(hint.description.contains("--tls intercept"))
        // Plaintext that merely holds a 0x16 byte is not taken for TLS.
        #expect(
            MismatchHint(expected: Data("a\u{16}b".utf8), actual: Data("a\u{16}c".utf8))?.kind != MismatchHint.tlsKind
        )
    }

    @Test func everyShapeHasARecognizerThatCompiles() {
        #expect(MismatchHint.Shape.recognizers.count == MismatchHint.Shape.allCases.count)
        #expect(MismatchHint.Shape.completedRecognizers.count == 4)
    }

    @Test func aUUIDAfterAHeaderGetsTheHeaderAsContextAndThePreset() throws {
        let request = "GET /orders HTTP/1.1\r\nHost: shop\r\nX-Request-Id: "
        let expected = request + Self.recordedUUID + "\r\nAccept: */*\r\n\r\n"
        let actual = request + Self.liveUUID + "\r\nAccept: */*\r\n\r\n"
        let hint = try Self.hint(expected, actual, covering: Self.recordedUUID, Self.liveUUID)
        #expect(hint.kind == "a UUID")
        #expect(hint.preset == .uuid)
        #expect(hint.pattern == "X-Request-Id: ([0-9a-f-]{36})")
        #expect(
            hint.description
                == "the differing bytes look like a UUID: --preset uuid, or --volatile 'X-Request-Id: ([0-9a-f-]{36})'"
        )
        #expect(try Self.presetCovers(.uuid, Self.recordedUUID, in: expected))
        #expect(try Self.presetCovers(.uuid, Self.liveUUID, in: actual))
    }

    @Test func aUUIDWithoutContextIsSpelledOutSoItCannotStartAtADashBeforeIt() throws {
        let hint = try Self.hint(
            "GET /jobs/job-\(Self.recordedUUID)/status",
            "GET /jobs/job-\(Self.liveUUID)/status",
            covering: Self.recordedUUID,
            Self.liveUUID
        )
        #expect(hint.kind == "a UUID")
        #expect(hint.pattern == "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    }

    @Test func anUppercaseUUIDGetsAnUppercaseClass() throws {
        let recorded = Self.recordedUUID.uppercased()
        let live = Self.liveUUID.uppercased()
        let hint = try Self.hint("id: \(recorded);", "id: \(live);", covering: recorded, live)
        #expect(hint.kind == "a UUID")
        #expect(hint.pattern.hasPrefix("[0-9A-F]{8}-"))
    }

    @Test func aUUIDThatDiffersLateIsCoveredFromWhereTheExcerptBegins() throws {
        // A time-based UUID: the same first 19 characters, so the excerpt starts inside it.
        let recorded = "POST /v1/events HTTP/1.1\r\nX-Trace: 6ba7b810-9dad-11d1-80b4-00c04fd430c8\r\n\r\n"
        let live = "POST /v1/events HTTP/1.1\r\nX-Trace: 6ba7b810-9dad-11d1-91c5-11d15fe541d9\r\n\r\n"
        let (expected, actual) = try Self.excerpts(recorded, live)
        #expect(!expected.contains("X-Trace"))
        let hint = try Self.hint(
            expected,
            actual,
            covering: "7b810-9dad-11d1-80b4-00c04fd430c8",
            "7b810-9dad-11d1-91c5-11d15fe541d9"
        )
        #expect(hint.kind == "a UUID")
        #expect(hint.preset == .uuid)
        #expect(!hint.pattern.contains("X-Trace"))
    }

    @Test func anISOTimestampInJSONGetsTheKeyAsContext() throws {
        let hint = try Self.hint(
            #"{"id":7,"ts":"2024-05-01T12:34:56Z","ok":true}"#,
            #"{"id":7,"ts":"2024-05-01T12:35:02Z","ok":true}"#,
            covering: "2024-05-01T12:34:56Z",
            "2024-05-01T12:35:02Z"
        )
        #expect(hint.kind == "an ISO 8601 timestamp")
        #expect(hint.preset == .timestamps)
        #expect(hint.pattern == #""ts":"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)"#)
    }

    @Test func anISOTimestampWithFractionsOfDifferentLengthsTakesAnyLength() throws {
        let hint = try Self.hint(
            "x=1;at=2024-05-01T12:34:56.5+02:00;",
            "x=1;at=2024-05-01T12:34:56.123+02:00;",
            covering: "2024-05-01T12:34:56.5+02:00",
            "2024-05-01T12:34:56.123+02:00"
        )
        #expect(hint.kind == "an ISO 8601 timestamp")
        #expect(hint.pattern.hasPrefix("at=("))
        #expect(hint.pattern.contains(#"\.[0-9]+\+"#))
    }

    @Test func anISOTimestampWhoseStartIsCutOffIsStillATimestamp() throws {
        let recorded = #"{"event":"login","created_at":"2024-05-01T12:34:56.123456Z"}"#
        let live = #"{"event":"login","created_at":"2024-05-01T12:34:56.987654Z"}"#
        let (expected, actual) = try Self.excerpts(recorded, live)
        #expect(!expected.contains("2024"))
        let hint = try Self.hint(expected, actual, covering: "-05-01T12:34:56.123456Z", "-05-01T12:34:56.987654Z")
        #expect(hint.kind == "an ISO 8601 timestamp")
        #expect(hint.preset == .timestamps)
    }

    @Test func aCompactTimestampAsInXAmzDate() throws {
        let hint = try Self.hint(
            "Host: s3\r\nX-Amz-Date: 20240501T123456Z\r\n",
            "Host: s3\r\nX-Amz-Date: 20240501T130001Z\r\n",
            covering: "20240501T123456Z",
            "20240501T130001Z"
        )
        #expect(hint.kind == "an ISO 8601 timestamp")
        #expect(hint.pattern == "X-Amz-Date: ([0-9]{8}T[0-9]{6}Z)")
        #expect(try Self.presetCovers(.timestamps, "20240501T123456Z", in: "X-Amz-Date: 20240501T123456Z\r\n"))
    }

    @Test func anHTTPDateInAHeader() throws {
        let hint = try Self.hint(
            "HTTP/1.1 200 OK\r\nDate: Tue, 01 May 2024 12:34:56 GMT\r\n",
            "HTTP/1.1 200 OK\r\nDate: Wed, 02 May 2024 08:00:00 GMT\r\n",
            covering: "Tue, 01 May 2024 12:34:56 GMT",
            "Wed, 02 May 2024 08:00:00 GMT"
        )
        #expect(hint.kind == "an HTTP date")
        #expect(hint.preset == .timestamps)
        #expect(hint.pattern == "Date: ([A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT)")
        #expect(
            try Self.presetCovers(
                .timestamps,
                "Wed, 02 May 2024 08:00:00 GMT",
                in: "Date: Wed, 02 May 2024 08:00:00 GMT"
            )
        )
    }

    @Test func anHTTPDateThatDiffersInItsSecondsAsTheMatcherCutsIt() throws {
        let recorded = "GET / HTTP/1.1\r\nIf-Modified-Since: Tue, 01 May 2024 12:34:56 GMT\r\n\r\n"
        let live = "GET / HTTP/1.1\r\nIf-Modified-Since: Tue, 01 May 2024 12:34:59 GMT\r\n\r\n"
        let (expected, actual) = try Self.excerpts(recorded, live)
        let hint = try Self.hint(expected, actual, covering: "12:34:56 GMT", "12:34:59 GMT")
        #expect(hint.kind == "an HTTP date")
        #expect(hint.preset == .timestamps)
    }

    /// Cut off inside its day's name, which the sample (a Monday) does not complete: still a date.
    @Test func anHTTPDateThatDiffersInItsHourAsTheMatcherCutsIt() throws {
        let recorded = "HTTP/1.1 200 OK\r\nLast-Modified: Sat, 13 Jul 2024 09:00:00 GMT\r\n\r\n"
        let live = "HTTP/1.1 200 OK\r\nLast-Modified: Sat, 13 Jul 2024 10:00:00 GMT\r\n\r\n"
        let (expected, actual) = try Self.excerpts(recorded, live)
        #expect(expected.hasPrefix("at, 13 Jul"))
        let hint = try Self.hint(
            expected,
            actual,
            covering: "at, 13 Jul 2024 09:00:00 GMT",
            "at, 13 Jul 2024 10:00:00 GMT"
        )
        #expect(hint.kind == "an HTTP date")
        #expect(hint.pattern == "[A-Za-z]+, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")
    }

    @Test func anEpochInSecondsInJSONIsAUnixTimestamp() throws {
        let hint = try Self.hint(
            #"{"ts":1714567890,"v":1}"#,
            #"{"ts":1714567891,"v":1}"#,
            covering: "1714567890",
            "1714567891"
        )
        #expect(hint.kind == "a Unix timestamp")
        #expect(hint.preset == .timestamps)
        #expect(hint.pattern == #""ts":([0-9]{10})"#)
        #expect(hint.rule == #"--volatile '"ts":([0-9]{10})'"#)
        #expect(try Self.presetCovers(.timestamps, "1714567891", in: #"{"ts":1714567891,"v":1}"#))
    }

    @Test func anEpochInMillisecondsInAQuery() throws {
        let hint = try Self.hint(
            "GET /poll?since=1714567890123&x=1 HTTP/1.1",
            "GET /poll?since=1714567999999&x=1 HTTP/1.1",
            covering: "1714567890123",
            "1714567999999"
        )
        #expect(hint.kind == "a Unix timestamp")
        #expect(hint.pattern == "since=([0-9]{13})")
    }

    @Test func aHexDigestAfterAHeader() throws {
        let recorded = String(repeating: "9f86d081884c7d65", count: 4)
        let live = String(repeating: "2c26b46b68ffc68f", count: 4)
        let hint = try Self.hint(
            "PUT /x HTTP/1.1\r\nX-Checksum-Sha256: \(recorded)\r\n",
            "PUT /x HTTP/1.1\r\nX-Checksum-Sha256: \(live)\r\n",
            covering: recorded,
            live
        )
        #expect(hint.kind == "a hex digest")
        #expect(hint.preset == nil)
        #expect(hint.pattern == "X-Checksum-Sha256: ([0-9a-f]{64})")
        #expect(
            hint.description
                == "the differing bytes look like a hex digest: --volatile 'X-Checksum-Sha256: ([0-9a-f]{64})'"
        )
    }

    @Test func aHexDigestCutOffByTheExcerptsEndTakesAnyLengthFromSixteen() throws {
        let recorded = "PUT /blob HTTP/1.1\r\nDigest: " + String(repeating: "9f86d081884c7d65", count: 4) + "\r\n"
        let live = "PUT /blob HTTP/1.1\r\nDigest: " + String(repeating: "2c26b46b68ffc68f", count: 4) + "\r\n"
        let (expected, actual) = try Self.excerpts(recorded, live)
        let hint = try Self.hint(
            expected,
            actual,
            covering: String(repeating: "9f86d081884c7d65", count: 3),
            String(repeating: "2c26b46b68ffc68f", count: 3)
        )
        #expect(hint.kind == "a hex digest")
        #expect(hint.pattern == "Digest: ([0-9a-f]{16,})")
    }

    @Test func digitsAloneAreANumberNotAHexDigest() throws {
        let hint = try Self.hint(
            "GET /track?order=12345678901234567890&",
            "GET /track?order=12345678901234567999&",
            covering: "12345678901234567890",
            "12345678901234567999"
        )
        #expect(hint.kind == "a number")
        #expect(hint.pattern == "order=([0-9]+)")
    }

    @Test func digitsOnOneSideAndHexLettersOnTheOtherAreAHexDigest() throws {
        let hint = try Self.hint(
            "GET /?etag=1234567890123456;",
            "GET /?etag=12345678901234ab;",
            covering: "1234567890123456",
            "12345678901234ab"
        )
        #expect(hint.kind == "a hex digest")
        #expect(hint.pattern == "etag=([0-9a-f]{16})")
    }

    @Test func shortHexIsNothingRecognizable() {
        #expect(MismatchHint(expected: Data("rev a1b2 ok".utf8), actual: Data("rev a1b3 ok".utf8)) == nil)
    }

    @Test func base64InAFormFieldKeepsItsPadding() throws {
        let hint = try Self.hint(
            "POST /login?token=c2VjcmV0LXZhbHVlLW9uZQ==&next=/ HTTP/1.1",
            "POST /login?token=c2VjcmV0LXZhbHVlLXR3bw==&next=/ HTTP/1.1",
            covering: "c2VjcmV0LXZhbHVlLW9uZQ==",
            "c2VjcmV0LXZhbHVlLXR3bw=="
        )
        #expect(hint.kind == "base64")
        #expect(hint.pattern == "token=([A-Za-z0-9+/]{22}={0,2})")
    }

    @Test func urlSafeBase64() throws {
        let hint = try Self.hint(
            "Cookie: theme=dark; session=Ab3_xY-9kLmN0pQrStUv\r\n",
            "Cookie: theme=dark; session=Zz8_Qa-1BcDeFgHiJkLm\r\n",
            covering: "Ab3_xY-9kLmN0pQrStUv",
            "Zz8_Qa-1BcDeFgHiJkLm"
        )
        #expect(hint.kind == "base64")
        #expect(hint.pattern == "session=([A-Za-z0-9_-]{20})")
    }

    @Test func aNumberOfADifferentLengthTakesAnyLength() throws {
        let hint = try Self.hint(
            "HTTP/1.1 200 OK\r\nX-Count: 9\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-Count: 10\r\n\r\n",
            covering: "9",
            "10"
        )
        #expect(hint.kind == "a number")
        #expect(hint.preset == nil)
        #expect(hint.pattern == "X-Count: ([0-9]+)")
    }

    @Test func aLongerNumberWhereTheRecordingEndsIsStillANumber() throws {
        // The recording ends where the live bytes go on: the difference is just past the recorded token.
        let hint = try Self.hint(#"{"page":5"#, #"{"page":57}"#, covering: "5", "57")
        #expect(hint.kind == "a number")
        #expect(hint.pattern == #""page":([0-9]+)"#)
    }

    @Test func aDecimalNumber() throws {
        let hint = try Self.hint("/cart?price=3.14&", "/cart?price=3.15&", covering: "3.14", "3.15")
        #expect(hint.pattern == #"price=([0-9]+(?:\.[0-9]+)?)"#)
    }

    @Test func aNumberWithoutContextStandsAlone() throws {
        let hint = try Self.hint("SELECT 42 FROM t", "SELECT 43 FROM t", covering: "42", "43")
        #expect(hint.kind == "a number")
        #expect(hint.pattern == "[0-9]+")
        #expect(hint.rule == "--volatile '[0-9]+'")
    }

    @Test func aNumberInsideAWordIsNothingRecognizable() {
        #expect(MismatchHint(expected: Data("table_v2 ok".utf8), actual: Data("table_v3 ok".utf8)) == nil)
    }

    @Test func wordsAreNothingRecognizable() {
        #expect(
            MismatchHint(expected: Data("SELECT name FROM users".utf8), actual: Data("SELECT mail FROM users".utf8))
                == nil
        )
    }

    @Test func equalOrMissingExcerptsGiveNoHint() {
        #expect(MismatchHint(expected: Data("id=12".utf8), actual: Data("id=12".utf8)) == nil)
        #expect(MismatchHint(expected: Data(), actual: Data("id=12".utf8)) == nil)
        #expect(MismatchHint(expected: Data(), actual: Data()) == nil)
    }

    @Test func aTokenThatEndsWhereTheDifferenceBeginsIsNotWhatDiffers() {
        #expect(MismatchHint(expected: Data("n=12;a".utf8), actual: Data("n=12,a".utf8)) == nil)
    }

    @Test func regexMetacharactersInTheContextAreEscaped() throws {
        let hint = try Self.hint(#"{"a.b(c)[0]": 123456}"#, #"{"a.b(c)[0]": 123457}"#, covering: "123456", "123457")
        #expect(hint.pattern == #""a\.b\(c\)\[0\]": ([0-9]+)"#)
    }

    @Test func aSingleQuoteInTheContextIsQuotedForTheShell() throws {
        let hint = try Self.hint(#"{"it's":5}"#, #"{"it's":6}"#, covering: "5", "6")
        #expect(hint.pattern == #""it's":([0-9]+)"#)
        #expect(hint.rule == #"--volatile '"it'\''s":([0-9]+)'"#)
        // What a shell makes of the rule is the pattern again.
        let shell = try ChildProcess.run(["/bin/sh", "-c", "printf '%s' " + MismatchHint.shellQuoted(hint.pattern)])
        #expect(shell.status == 0)
        #expect(shell.output == hint.pattern)
    }

    @Test func aNameCutOffByTheExcerptsStartIsNoContext() throws {
        let hint = try Self.hint("uest_id=12345;", "uest_id=12399;", covering: "12345", "12399")
        #expect(hint.pattern == "[0-9]+")
    }

    @Test func theFirstDifferenceIsTheCommonPrefixLength() {
        #expect(MismatchHint.firstDifference(Data("abc".utf8), Data("abd".utf8)) == 2)
        #expect(MismatchHint.firstDifference(Data("ab".utf8), Data("abc".utf8)) == 2)
        #expect(MismatchHint.firstDifference(Data(), Data("a".utf8)) == 0)
        #expect(MismatchHint.firstDifference(Data("abc".utf8), Data("abc".utf8)) == nil)
        // Slices keep their own indices; the difference is counted from each one's start.
        let recorded = Data("xxabc".utf8).dropFirst(2)
        #expect(MismatchHint.firstDifference(recorded, Data("abd".utf8)) == 2)
    }

    @Test func anExcerptRenderedForTheReportReadsBackAsItsBytes() {
        let every = Data((0...255).map { UInt8($0) })
        #expect(ByteExcerpt.bytes(rendered: ByteExcerpt.render(every)) == every)
        #expect(ByteExcerpt.bytes(rendered: #"a\qb\x4"#) == Data(#"a\qb\x4"#.utf8))
    }

    @Test func aReportedMismatchCarriesItsHintInItsDescriptionItsJSONAndItsError() throws {
        let expected = "GET /a HTTP/1.1\r\nX-Request-Id: \(Self.recordedUUID)\r\n"
        let actual = "GET /a HTTP/1.1\r\nX-Request-Id: \(Self.liveUUID)\r\n"
        let mismatch = ReplayReport.Mismatch(
            route: "api",
            client: "127.0.0.1:5000",
            closestSession: 1,
            offset: 31,
            expected: ByteExcerpt.render(Data(expected.utf8)),
            actual: ByteExcerpt.render(Data(actual.utf8)),
            reason: "the client's bytes differ from every recorded session"
        )
        let hint = "the differing bytes look like a UUID: --preset uuid, or --volatile 'X-Request-Id: ([0-9a-f-]{36})'"
        #expect(mismatch.hint == hint)
        #expect(mismatch.description == mismatch.line + "\n  hint: " + hint)

        var report = ReplayReport()
        report.mismatches = [mismatch]
        let json = try report.json()
        let object = try #require(JSONSerialization.jsonObject(with: json) as? [String: Any])
        let entry = try #require((object["mismatches"] as? [[String: Any]])?.first)
        #expect(entry["hint"] as? String == hint)
        #expect(try JSONDecoder().decode(ReplayReport.self, from: json) == report)

        #expect(report.failures() == [mismatch.line + "\n  hint: " + hint])
        let error = try #require(throws: TapedeckError.self) { try report.verify() }
        #expect(!error.message.contains("\n"))
        #expect(error.message.hasSuffix(mismatch.line + " (hint: " + hint + ")"))
    }

    /// Through a real replay: the excerpts the matcher cuts (16 bytes before the difference) still give the hint.
    @Test func aReplayedClientWithAFreshRequestIDGetsTheHintInTheReport() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("ids.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let request = "GET /orders HTTP/1.1\r\nHost: shop\r\nX-Request-Id: "
        try await recordExchange(request + Self.recordedUUID + "\r\n\r\n", into: tape, upstream: upstream.endpoint)

        let deck = try await Deck.start(.replay, tape: tape, routes: [Route()])
        _ = try await TestClient.exchange(deck.address, request + Self.liveUUID + "\r\n\r\n")
        let report = try #require(try await deck.stop().replay)
        let mismatch = try #require(report.mismatches.first)
        #expect(
            mismatch.hint
                == "the differing bytes look like a UUID: --preset uuid, or --volatile 'X-Request-Id: ([0-9a-f-]{36})'"
        )
        #expect(report.failures().first?.hasSuffix("\n  hint: " + (mismatch.hint ?? "")) == true)
    }

    @Test func aMismatchWithNothingRecognizableHasNoHintLine() {
        let mismatch = ReplayReport.Mismatch(
            route: "db",
            client: "127.0.0.1:5000",
            closestSession: nil,
            offset: 0,
            expected: "SELECT 1",
            actual: "SELEKT 1",
            reason: "the client's bytes differ from every recorded session"
        )
        #expect(mismatch.hint == nil)
        #expect(mismatch.description == mismatch.line)
        #expect(!mismatch.description.contains("hint"))
    }
}
