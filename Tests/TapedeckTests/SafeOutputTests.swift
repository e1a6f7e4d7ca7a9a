import Foundation
import GRDB
import Testing

@testable import Tapedeck

/// Files that may hold tape payloads are written whole, owner-only, and never through a planted link.
struct SafeOutputTests {
    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o777
    }

    @Test func anExportReplacesAWorldReadableFileWithAnOwnerOnlyOne() async throws {
        let directory = try TemporaryDirectory()
        let output = directory.path("out.jsonl")
        #expect(FileManager.default.createFile(atPath: output, contents: Data("old".utf8)))
        chmod(output, 0o644)
        let result = try await TapedeckProcess.run([
            "export", InspectCommandTests.fixture, "--format", "jsonl", "--output", output,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.mode(output) == 0o600)
        #expect(try String(contentsOfFile: output, encoding: .utf8).hasPrefix("{"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["out.jsonl"])
    }

    @Test func anExportThatFailsHalfwayLeavesNoFileUnderTheRequestedName() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("broken.tape")
        // Session 3's last event cannot be read: sessions 1 and 2 are exported before the error.
        try CraftedTape.make(at: tape, "UPDATE events SET kind = 9 WHERE session_id = 3 AND seq = 4")
        let output = directory.path("out.pcapng")
        let result = try await TapedeckProcess.run(["export", tape, "--format", "pcapng", "--output", output])
        #expect(result.status == 1)
        #expect(result.stderr.contains("unknown kind code 9"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["broken.tape"])
    }

    @Test func aSymbolicLinkIsFollowedOnlyWithForce() async throws {
        let directory = try TemporaryDirectory()
        let target = directory.path("elsewhere.jsonl")
        let link = directory.path("link.jsonl")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "elsewhere.jsonl")
        let refused = try await TapedeckProcess.run([
            "export", InspectCommandTests.fixture, "--format", "jsonl", "--output", link,
        ])
        #expect(refused.status == 1)
        #expect(!FileManager.default.fileExists(atPath: target))
        let forced = try await TapedeckProcess.run([
            "export", InspectCommandTests.fixture, "--format", "jsonl", "--output", link, "--force",
        ])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == "elsewhere.jsonl")
        #expect(Self.mode(target) == 0o600)
        #expect(try String(contentsOfFile: link, encoding: .utf8).hasPrefix("{"))
    }

    @Test func theReplayReportIsOwnerOnlyAndRefusesALink() throws {
        let directory = try TemporaryDirectory()
        let report = directory.path("report.json")
        #expect(FileManager.default.createFile(atPath: report, contents: Data()))
        chmod(report, 0o644)
        try ReplayReport().write(toPath: report)
        #expect(Self.mode(report) == 0o600)
        #expect(
            try JSONDecoder().decode(ReplayReport.self, from: Data(contentsOf: URL(fileURLWithPath: report)))
                .connections == 0
        )

        let link = directory.path("planted.json")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: directory.path("secret"))
        let error = #expect(throws: TapedeckError.self) { try ReplayReport().write(toPath: link) }
        #expect(
            error?.description
                == "cannot write '\(link)': it is a symbolic link; use --force to write to the file it points to"
        )
        #expect(!FileManager.default.fileExists(atPath: directory.path("secret")))
    }

    @Test func aClosedPipeEndsOutputQuietly() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("big.tape")
        // Megabytes of hexdump: far more than a pipe holds, so the writer meets the closed pipe.
        try CraftedTape.make(at: tape, "UPDATE events SET payload = zeroblob(2000000) WHERE session_id = 1 AND seq = 0")
        let statusFile = directory.path("status")
        let script =
            "'\(TapedeckProcess.executable.path)' show '\(tape)' 1 --hex --full | head -c 10 >/dev/null; "
            + "echo \"${PIPESTATUS[0]}\" > '\(statusFile)'"
        let shell = try ChildProcess(["/bin/bash", "-c", script], outputPath: directory.path("stderr"))
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while shell.exitStatus == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(shell.exitStatus == 0)
        // Exit 0 and nothing on stderr: the reader asked for no more, which is no error.
        #expect(try String(contentsOfFile: statusFile, encoding: .utf8) == "0\n")
        #expect(try String(contentsOfFile: directory.path("stderr"), encoding: .utf8).isEmpty)
    }

    @Test func aFullStandardErrorOrOutputEndsTheProcessWithoutATrap() async throws {
        // An error line to a full stderr: nowhere to say it, but the exit status still says it.
        let error = try ChildProcess(
            [TapedeckProcess.executable.path, "sessions", "/nonexistent.tape"],
            outputPath: "/dev/null",
            errorPath: "/dev/full"
        )
        #expect(try await Self.waitForExit(error) == 1)
        // The listening line to a full stdout: the proxy cannot tell scripts where it listens, so it stops.
        let directory = try TemporaryDirectory()
        let listening = try ChildProcess(
            [TapedeckProcess.executable.path, "proxy", "--upstream", "127.0.0.1:1"],
            outputPath: "/dev/full",
            errorPath: directory.path("stderr")
        )
        #expect(try await Self.waitForExit(listening) == 1)
        let stderr = try String(contentsOfFile: directory.path("stderr"), encoding: .utf8)
        #expect(stderr.contains("tapedeck: error: cannot write standard output: no space left on device"), "\(stderr)")
    }

    static func waitForExit(_ child: ChildProcess) async throws -> Int32? {
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while ContinuousClock.now < deadline {
            if let status = child.exitStatus { return status }
            try await Task.sleep(for: .milliseconds(20))
        }
        child.stop(SIGKILL, timeout: .seconds(5))
        return nil
    }
}
