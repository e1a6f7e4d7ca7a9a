import Foundation
import NIOCore
import Testing

@testable import Tapedeck

/// Exports checked by the tools people open them with.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ExportTests {
    static let tshark = ["/usr/bin/tshark"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test func jsonLinesCarryEveryEventWithBase64Payloads() async throws {
        let result = try await TapedeckProcess.run([
            "export", InspectCommandTests.fixture, "--format", "jsonl", "--output", "-",
        ])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 15)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["session"] as? Int == 1)
        #expect(first["kind"] as? String == "data")
        #expect(
            (first["payload"] as? String).flatMap { Data(base64Encoded: $0) }.map {
                String(decoding: $0, as: UTF8.self)
            }?.hasPrefix("*3\r\n$3\r\nSET") == true
        )
    }

    @Test(
        .enabled(
            if: ExportTests.tshark != nil && NginxServer.isInstalled,
            "needs tshark, nginx and curl (installed by .ci/run)"
        )
    )
    func tsharkDecodesTheHTTPOfARealRecordingWithoutTCPWarnings() async throws {
        var body = Data(count: 200_000)
        for index in body.indices { body[index] = UInt8(ascii: "a") + UInt8(index % 26) }
        let nginx = try await NginxServer(files: ["index.html": Data("<h1>hello</h1>\n".utf8), "big.txt": body])
        defer { nginx.stop() }
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("http.tape")
        try await withRecordingProxy(upstream: .tcp(host: "127.0.0.1", port: nginx.port), tapePath: tapePath) {
            address throws in
            guard case .tcp(_, let port) = address else { return }
            #expect(try NginxServer.curl(port: port, ["/index.html", "/big.txt"]).count == 15 + body.count)
            // A 404 too, in its own connection.
            _ = try? NginxServer.curl(port: port, ["/missing"])
        }
        let capture = directory.path("http.pcapng")
        let export = try await TapedeckProcess.run(["export", tapePath, "--format", "pcapng", "--output", capture])
        #expect(export.status == 0)
        #expect(export.stderr.isEmpty)

        let tshark = try #require(Self.tshark)
        let decodeAs = ["-d", "tcp.port==\(nginx.port),http"]
        let requests = try ChildProcess.run(
            [tshark, "-r", capture] + decodeAs + ["-Y", "http.request", "-T", "fields", "-e", "http.request.uri"]
        )
        #expect(
            requests.output.split(separator: "\n").filter { $0.hasPrefix("/") } == [
                "/index.html", "/big.txt", "/missing",
            ]
        )
        let codes = try ChildProcess.run(
            [tshark, "-r", capture] + decodeAs + ["-Y", "http.response", "-T", "fields", "-e", "http.response.code"]
        )
        #expect(codes.output.split(separator: "\n").filter { $0.allSatisfy(\.isNumber) } == ["200", "200", "404"])
        let bodies = try ChildProcess.run(
            [tshark, "-r", capture] + decodeAs + [
                "-Y", "http.response.code == 200", "-T", "fields", "-e", "http.content_length",
            ]
        )
        #expect(bodies.output.split(separator: "\n").filter { $0.allSatisfy(\.isNumber) } == ["15", "\(body.count)"])
        // The 200 KB body is split into valid segments, reassembled by tshark, with no analysis warnings at all.
        let warnings = try ChildProcess.run([
            tshark, "-r", capture, "-Y", "tcp.analysis.flags || _ws.expert.severity >= warning",
        ])
        #expect(
            warnings.output.split(separator: "\n").filter { !$0.contains("Running as user") }.isEmpty,
            "\(warnings.output)"
        )
    }

    @Test func listingAHundredThousandSessionsStartsAtOnce() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("many.tape")
        let tape = try Tape(recordingAt: tapePath)
        let route = Route(upstream: .tcp(host: "127.0.0.1", port: 9))
        let recorder = try Recorder(tape: tape, routes: [route])
        try await recorder.finish()
        try await tape.database.write { db in
            try db.execute(
                sql: """
                    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
                    INSERT INTO sessions(run_id, route_id, route, client_address, upstream_address, started_at, ended_at,
                                         duration_ns, outcome, client_bytes, upstream_bytes, event_count)
                    SELECT 1, 1, 'default', '127.0.0.1:' || (10000 + i % 50000), '127.0.0.1:9', 1795600000000000000 + i * 1000000,
                           1795600000000000000 + i * 1000000 + 500000, 500000, 'closed', i % 1000, i % 700, 4 FROM n
                    """
            )
        }
        let started = ContinuousClock.now
        let result = try await TapedeckProcess.run(["sessions", tapePath, "--limit", "50"])
        let elapsed = ContinuousClock.now - started
        #expect(result.status == 0)
        #expect(result.stdout.split(separator: "\n").count == 51)
        // Loose on purpose (the number lives in the benchmark): the first page must not wait for the whole tape.
        #expect(elapsed < Sanitizer.scaled(.seconds(5)))
        let all = try await TapedeckProcess.run(["sessions", tapePath, "--json"])
        #expect(all.stdout.split(separator: "\n").count == 100_002)
    }
}

/// Reading is streaming: showing or exporting a session far larger than the reader's memory use.
@Suite(.timeLimit(.minutes(3)))
struct StreamingReadTests {
    /// Peak resident memory of a child while it runs to completion, sampled from /proc (VmHWM only grows, so
    /// the last sample before exit is the peak).
    static func peakMemory(of arguments: [String]) async throws -> (status: Int32, peak: Int) {
        let child = try TapedeckProcess(arguments)
        var peak = 0
        let deadline = ContinuousClock.now.advanced(by: .seconds(150))
        while ContinuousClock.now < deadline {
            if let sample = child.peakResidentBytes { peak = max(peak, sample) }
            if let status = child.exitStatus { return (status, peak) }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TimeoutError()
    }

    @Test(.enabled(if: !Sanitizer.isActive, "a sanitizer's shadow memory outgrows any ceiling on the reader's own"))
    func showAndExportOfABigSessionStayInBoundedMemory() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("big.tape")
        let upstream = try await TestServer.start(.countThenReply)
        defer { Task { await upstream.stop() } }
        let size = 96 << 20
        let block = Payload.random(count: 1 << 20, seed: 21)
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            let connection = try await TestClient.connect(to: address)
            _ = try await connection.executeThenClose { inbound, outbound in
                for _ in 0..<(size >> 20) { try await outbound.write(block) }
                outbound.finish()
                return await TestClient.readAll(inbound)
            }
        }
        // Reading the whole session into memory would take at least its 96 MiB.
        let ceiling = 64 << 20
        for arguments in [
            ["show", tapePath, "1"],
            ["export", tapePath, "--format", "pcapng", "--output", directory.path("big.pcapng")],
            ["export", tapePath, "--format", "jsonl", "--output", directory.path("big.jsonl")],
        ] {
            let (status, peak) = try await Self.peakMemory(of: arguments)
            #expect(status == 0, "\(arguments[0])")
            #expect(
                peak > 0 && peak < ceiling,
                "\(arguments.prefix(4).joined(separator: " ")) peaked at \(peak >> 20) MiB"
            )
        }
        let capture = try FileManager.default.attributesOfItem(atPath: directory.path("big.pcapng"))[.size] as? Int ?? 0
        #expect(capture > size)
    }
}
