import Foundation
import Testing

@testable import Tapedeck

/// The text form of a tape: `export --format text` then `import` gives a tape of equal content, for every fixture
/// and for generated tapes holding every kind of record; the text is deterministic; bad text is one error line.
@Suite(.timeLimit(.minutes(2)))
struct TapeTextTests {
    static let fixtures: [String] = [
        "redis.tape", "hello.tape", "mysql.tape", "TapedeckTraitTests/talksToRedis.tape",
        "TapedeckSuiteTraitTests/pings.tape", "TapedeckSuiteTraitTests/echoes_word.tape",
        "XCTestHelperTests/testPingsRedis.tape",
    ]

    @Test(arguments: fixtures)
    func everyFixtureComesBackWithEqualContent(fixture: String) throws {
        let path = InspectCommandTests.repository.appendingPathComponent("fixtures/\(fixture)").path
        try Self.expectRoundTrip(of: path)
    }

    @Test(arguments: 0..<12)
    func generatedTapesWithEveryKindOfRecordComeBackWithEqualContent(seed: Int) throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("generated.tape")
        let records = Self.generatedRecords(seed: UInt64(seed))
        let importing = try TapeImport(at: path, overwrite: false)
        for record in records { try importing.add(record) }
        try importing.finish()
        let written = try Self.contentRecords(of: path)
        // Times records come from the events themselves.
        #expect(written.filter(Self.isContent) == records.filter(Self.isContent))
        try Self.expectRoundTrip(of: path)
    }

    @Test func theTextIsDeterministicAndReadsAsTheConversation() throws {
        let fixture = InspectCommandTests.fixture
        let first = try Self.text(of: fixture)
        #expect(first == (try Self.text(of: fixture)))
        #expect(first.hasPrefix("tapedeck tape text 1\n"))
        #expect(first.contains("    | hello tape\\r\\n\n"))
        #expect(first.contains("  event 1 upstream data 5\n    | +OK\\r\\n\n"))
        #expect(first.contains("  times "))
    }

    @Test func binaryPayloadsAreHexWithOffsetsAndTrailingSpacesSurviveAnEditor() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("binary.tape")
        try ConversationTape.make(
            at: path,
            [
                [.client(bytes: Array(0...40)), .upstream("ends with a space ")]
            ]
        )
        let text = try Self.text(of: path)
        #expect(text.contains("    : 000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"))
        // The last row's gutter lines up with the others'.
        #expect(
            text.contains(
                "    : 000020  20 21 22 23 24 25 26 27 28" + String(repeating: " ", count: 23) + " !\"#$%&'(\n"
            )
        )
        #expect(text.contains("    | ends with a space\\x20\n"))
        #expect(!text.split(separator: "\n").contains { $0.hasSuffix(" ") })
        try Self.expectRoundTrip(of: path)
    }

    /// The byte-level reader of hex lines takes exactly the lines the general one does, with the same bytes, and
    /// leaves every other line to it (and its error message). `appended` is how many bytes the line holds, or nil
    /// for a line either reader refuses (or whose offset is not where the payload ends).
    @Test(
        arguments: [
            ("000010  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  ................", 16),
            ("000010  41 42 43  ABC", 3),
            ("000010  41 42 43", 3),
            ("10  FF fe", 2),
            ("000010  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10  .................", nil),
            ("000020  41 42", nil),
            ("000010  zz", nil),
            ("000010 41", nil),
            ("0000000000010  41", nil),
            ("", nil),
        ] as [(String, Int?)]
    )
    func hexLinesReadTheSameFromBytes(line: String, appended: Int?) {
        let held = 16
        var payload = Data(repeating: 7, count: held)
        let general = TapeTextSyntax.hexLineBytes(Substring(line)).flatMap { $0.offset == held ? $0.bytes : nil }
        let taken = Array(line.utf8).withUnsafeBytes { TapeTextSyntax.appendHexLine($0, to: &payload) }
        #expect(general?.count == appended, "\(line)")
        #expect(taken == (appended != nil), "\(line)")
        #expect(payload == Data(repeating: 7, count: held) + (general ?? []), "\(line)")
        if let general, appended == 16 { #expect(general == Array(0..<16)) }
        if let general, appended == 2 { #expect(general == [0xFF, 0xFE]) }
    }

    @Test func aHandEditedReplyIsImported() throws {
        let directory = try TemporaryDirectory()
        let text = try Self.text(of: InspectCommandTests.fixture)
            .replacingOccurrences(of: "    | hello tape\\r\\n\n", with: "    | hello tapf\\r\\n\n")
        let edited = directory.path("edited.txt")
        try Data(text.utf8).write(to: URL(fileURLWithPath: edited))
        let tape = directory.path("edited.tape")
        let importing = try TapeImport(at: tape, overwrite: false)
        try TapeTextReader.read(fileAt: edited) { try importing.add($0) }
        try importing.finish()
        let events = try Tape(readingAt: tape).events(inSession: 1)
        #expect(events[0].payload.map { String(decoding: $0, as: UTF8.self) }?.hasSuffix("hello tapf\r\n") == true)
    }

    @Test(arguments: [
        ("nothing here\n", "1: not a text tape"),
        ("tapedeck tape text 1\nsession x\n", "2: expected 'run N'"),
        ("tapedeck tape text 1\nrun 1\n  colour \"red\"\n", "3: unknown run field 'colour'"),
        ("tapedeck tape text 1\nrun 1\n  started yesterday\n", "3: invalid time 'yesterday'"),
        ("tapedeck tape text 1\n  mode \"record\"\n", "2: 'mode' is outside any run"),
        (
            "tapedeck tape text 1\nsession 1\n  times 5\n  event 0 client data 3\n    | ab\n",
            "4: event 0 says 3 bytes, its lines hold 2"
        ),
        ("tapedeck tape text 1\nsession 1\n  event 0 client data 1\n", "3: event 0 has no time"),
        ("tapedeck tape text 1\nsession 1\n  times 5\n  event 0 client sing\n", "4: unknown event kind 'sing'"),
        ("tapedeck tape text 1\nsession 1\n  times 5\n  event 0 client data 1\n    | \\q\n", "5: invalid escape"),
        (
            "tapedeck tape text 1\nsession 1\n  times 5 6\n  event 0 client close\n",
            "4: session 1 has 1 events but 2 times"
        ),
    ])
    func badTextIsOneErrorNamingTheLine(text: String, message: String) throws {
        let directory = try TemporaryDirectory()
        let input = directory.path("bad.txt")
        try Data(text.utf8).write(to: URL(fileURLWithPath: input))
        let tape = directory.path("bad.tape")
        let importing = try TapeImport(at: tape, overwrite: false)
        let error = #expect(throws: TapedeckError.self) {
            try TapeTextReader.read(fileAt: input) { try importing.add($0) }
        }
        importing.discard()
        #expect(error?.message.contains("bad.txt:\(message)") == true, "\(error?.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: tape))
    }

    @Test func theCommandsRoundTripAndRefuseToOverwriteUnlessTold() async throws {
        let directory = try TemporaryDirectory()
        let text = directory.path("redis.txt")
        let tape = directory.path("redis.tape")
        let export = try await TapedeckProcess.run([
            "export", InspectCommandTests.fixture, "--format", "text", "--output", text,
        ])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(try await TapedeckProcess.run(["import", "--format", "text", text, "--tape", tape]).status == 0)
        let again = try await TapedeckProcess.run(["import", "--format", "text", text, "--tape", tape])
        #expect(again.status == 1)
        #expect(
            again.stderr.contains("exists: import writes a new tape (--overwrite to replace it)"),
            "\(again.stderr)"
        )
        #expect(
            try await TapedeckProcess.run(["import", "--format", "text", text, "--tape", tape, "--overwrite"]).status
                == 0
        )
        let stdout = try await TapedeckProcess.run(["export", tape, "--format", "text", "--output", "-"])
        #expect(stdout.stdout == (try String(contentsOfFile: text, encoding: .utf8)))
        let bad = try await TapedeckProcess.run(["export", tape, "--format", "text", "--session", "1", "--output", "-"])
        #expect(bad.status == 2)
    }

    // MARK: Helpers

    static func isContent(_ record: TapeContentRecord) -> Bool {
        if case .times = record { return false }
        return true
    }

    static func contentRecords(of path: String) throws -> [TapeContentRecord] {
        let tape = try Tape(readingAt: path)
        defer { try? tape.close() }
        var records: [TapeContentRecord] = []
        try tape.forEachContentRecord { records.append($0) }
        return records
    }

    static func text(of path: String) throws -> String {
        let directory = try TemporaryDirectory()
        let output = directory.path("out.txt")
        let tape = try Tape(readingAt: path)
        defer { try? tape.close() }
        try OutputFile.write(to: output, followingSymlink: false) { buffer in try TapeTextWriter.write(tape, to: buffer)
        }
        return try String(contentsOfFile: output, encoding: .utf8)
    }

    /// Exports `path` as text, imports the text, and expects equal content and the same text again.
    static func expectRoundTrip(of path: String) throws {
        let directory = try TemporaryDirectory()
        let text = try Self.text(of: path)
        let textPath = directory.path("tape.txt")
        try Data(text.utf8).write(to: URL(fileURLWithPath: textPath))
        let copy = directory.path("copy.tape")
        let importing = try TapeImport(at: copy, overwrite: false)
        try TapeTextReader.read(fileAt: textPath) { try importing.add($0) }
        try importing.finish()
        #expect(try contentRecords(of: copy) == (try contentRecords(of: path)))
        #expect(try Self.text(of: copy) == text)
    }

    /// A tape's worth of records with every kind of event, binary and text payloads, empty and missing ones,
    /// redactions, rules, TLS, a DNS route, dropped datagrams, and names with control characters.
    static func generatedRecords(seed: UInt64) -> [TapeContentRecord] {
        var random = SeededGenerator(seed: seed)
        var records: [TapeContentRecord] = [
            .run(
                RunRecord(
                    id: 1,
                    startedAt: 1_795_604_553_000_000_000,
                    endedAt: nil,
                    toolVersion: "0.1.0",
                    mode: "record",
                    label: "tab\there \"quoted\" \u{7}"
                )
            ),
            .run(
                RunRecord(
                    id: 2,
                    startedAt: -5,
                    endedAt: 1_795_604_554_123_456_789,
                    toolVersion: "0.1.0",
                    mode: "replay",
                    label: nil
                )
            ),
            .route(RouteRecord(id: 1, runID: 1, name: "default", listen: "127.0.0.1:0", upstream: "127.0.0.1:6379")),
            .route(
                RouteRecord(
                    id: 2,
                    runID: 2,
                    name: "dns",
                    listen: "udp:127.0.0.1:0",
                    upstream: "udp:127.0.0.1:53",
                    dns: true,
                    protocolName: "auto"
                )
            ),
            .rule(
                RuleRow(
                    id: 1,
                    runID: 1,
                    route: "default",
                    position: 0,
                    kind: "redact",
                    pattern: "PASS (\\S+)\\r\\n",
                    scope: "client",
                    secret: "password",
                    preset: nil
                )
            ),
            .rule(
                RuleRow(
                    id: 2,
                    runID: 1,
                    route: "default",
                    position: 1,
                    kind: "volatile",
                    pattern: "id=([0-9]+)",
                    scope: "both",
                    secret: nil,
                    preset: "uuid"
                )
            ),
        ]
        let kinds = EventKind.allCases
        for id in Int64(1)...Int64(4 + Int(random.next() % 4)) {
            let eventCount = Int(random.next() % 12)
            var events: [TapeContentRecord] = []
            var offsets: [Int64] = []
            var clientBytes: Int64 = 0
            var upstreamBytes: Int64 = 0
            for seq in 0..<eventCount {
                let kind = kinds[Int(random.next() % UInt64(kinds.count))]
                let direction: Direction = random.next() % 2 == 0 ? .clientToUpstream : .upstreamToClient
                var payload: Data?
                switch kind {
                case .data:
                    let length = Int(random.next() % 300)
                    let binary = random.next() % 3 == 0
                    payload = Data(
                        (0..<length).map { _ in
                            binary
                                ? UInt8(truncatingIfNeeded: random.next())
                                : Array("GET / HTTP/1.1\r\n\tok \\ ".utf8)[Int(random.next() % 22)]
                        }
                    )
                    if direction == .clientToUpstream {
                        clientBytes += Int64(length)
                    } else {
                        upstreamBytes += Int64(length)
                    }
                case .connectFailed: payload = Data("connection refused".utf8)
                case .fault: payload = Data(#"{"toxic":"latency"}"#.utf8)
                default: payload = random.next() % 4 == 0 ? Data() : nil
                }
                let offset = Int64(seq) * 1000 + Int64(random.next() % 1000)
                offsets.append(offset)
                var redactions: [RedactionRecord] = []
                if kind == .data, let payload, payload.count > 4, random.next() % 3 == 0 {
                    redactions.append(RedactionRecord(sessionID: id, seq: Int64(seq), start: 1, length: 3, ruleID: 1))
                }
                events.append(
                    .event(
                        EventRecord(
                            sessionID: id,
                            seq: Int64(seq),
                            offsetNanoseconds: offset,
                            direction: direction,
                            kind: kind,
                            payload: payload
                        ),
                        redactions: redactions
                    )
                )
            }
            let isDNS = id % 3 == 0
            var session = SessionRecord(
                id: id,
                runID: isDNS ? 2 : 1,
                routeID: isDNS ? 2 : 1,
                route: isDNS ? "dns" : "default",
                clientAddress: isDNS ? "udp:127.0.0.1:5\(id)" : "127.0.0.1:4\(id)",
                upstreamAddress: "127.0.0.1:6379",
                startedAt: 1_795_604_553_000_000_000 + id,
                endedAt: id % 2 == 0 ? nil : 1_795_604_553_100_000_000,
                durationNanoseconds: id % 2 == 0 ? nil : 99_999_999,
                outcome: SessionOutcome.allCases[Int(random.next() % UInt64(SessionOutcome.allCases.count))],
                clientBytes: clientBytes,
                upstreamBytes: upstreamBytes,
                eventCount: Int64(eventCount)
            )
            session.droppedDatagrams = isDNS ? 2 : 0
            var tls: SessionTLSRecord?
            if id % 2 == 1 {
                tls = SessionTLSRecord(
                    sessionID: id,
                    mode: .intercept,
                    upgrade: "none",
                    clientOffset: 0,
                    upstreamOffset: 0,
                    version: "TLSv1.3",
                    cipher: "TLS_AES_128_GCM_SHA256",
                    serverName: "localhost",
                    applicationProtocol: "h2",
                    upstreamSubject: nil,
                    upstreamFingerprint: nil,
                    failure: nil
                )
            }
            records.append(.session(session, tls: tls))
            records.append(.times(session: id, offsets: offsets))
            records += events
        }
        return records
    }
}
