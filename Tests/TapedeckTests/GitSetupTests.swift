import Foundation
import Testing

@testable import Tapedeck

/// `tapedeck git-setup` in a temporary repository: `git diff` and `git log -p` show a re-recorded tape's changed
/// reply as a text change, through the textconv driver.
@Suite(.timeLimit(.minutes(2)))
struct GitSetupTests {
    static let git = ["/usr/bin/git"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: git != nil, "needs git"))
    func gitDiffShowsAChangedReplyAsText() async throws {
        let directory = try TemporaryDirectory()
        let repository = directory.path("repo")
        try FileManager.default.createDirectory(atPath: repository + "/fixtures", withIntermediateDirectories: true)
        let tape = repository + "/fixtures/redis.tape"
        try FileManager.default.copyItem(atPath: InspectCommandTests.fixture, toPath: tape)
        try Self.run(["init", "-q"], in: repository)
        try Self.run(["add", "fixtures/redis.tape"], in: repository)
        try Self.run(["commit", "-q", "-m", "recorded"], in: repository)

        let setup = try await TapedeckProcess.run([
            "git-setup", "--repository", repository, "--command", TapedeckProcess.executable.path,
        ])
        #expect(setup.status == 0, "\(setup.stderr)")
        #expect(try String(contentsOfFile: repository + "/.gitattributes", encoding: .utf8) == "*.tape diff=tapedeck\n")
        // Twice changes nothing in .gitattributes.
        #expect(try await TapedeckProcess.run(["git-setup", "--repository", repository]).status == 0)
        #expect(try String(contentsOfFile: repository + "/.gitattributes", encoding: .utf8) == "*.tape diff=tapedeck\n")
        try Self.run(
            [
                "config", "--local", "diff.tapedeck.textconv",
                "\(TapedeckProcess.executable.path) export --format text --output -",
            ],
            in: repository
        )

        // A re-recording in which the upstream's reply to GET changed: the text edited and imported over the tape.
        let text = directory.path("redis.txt")
        #expect(try await TapedeckProcess.run(["export", tape, "--format", "text", "--output", text]).status == 0)
        var lines = try String(contentsOfFile: text, encoding: .utf8)
        let reply = "    | hello tape\\r\\n\n"
        let replyRange = try #require(lines.ranges(of: reply).dropFirst().first)  // the first is the client's SET
        lines.replaceSubrange(replyRange, with: "    | hello tapf\\r\\n\n")
        try Data(lines.utf8).write(to: URL(fileURLWithPath: text))
        #expect(
            try await TapedeckProcess.run(["import", "--format", "text", text, "--tape", tape, "--overwrite"]).status
                == 0
        )

        let diff = try Self.run(["diff"], in: repository)
        #expect(!diff.contains("Binary files"), "\(diff)")
        #expect(diff.contains("\n-    | hello tape\\r\\n\n"), "\(diff)")
        #expect(diff.contains("\n+    | hello tapf\\r\\n\n"), "\(diff)")
        // Only the reply changed: one line out, one in.
        #expect(
            diff.split(separator: "\n").filter { $0.hasPrefix("+    ") || $0.hasPrefix("-    ") }.count == 2,
            "\(diff)"
        )
        try Self.run(["commit", "-q", "-a", "-m", "re-recorded"], in: repository)
        let log = try Self.run(["log", "-p", "-1"], in: repository)
        #expect(log.contains("+    | hello tapf\\r\\n"), "\(log)")
    }

    @Test func outsideARepositoryItSaysSo() async throws {
        let directory = try TemporaryDirectory()
        let result = try await TapedeckProcess.run(["git-setup", "--repository", directory.path("")])
        #expect(result.status == 1)
        #expect(result.stderr.contains("is not in a git repository"), "\(result.stderr)")
    }

    @discardableResult
    static func run(_ arguments: [String], in directory: String) throws -> String {
        let result = try ChildProcess.run(
            ["/usr/bin/git", "-C", directory, "-c", "user.name=Tapedeck", "-c", "user.email=tests@tapedeck.invalid"]
                + arguments,
            environment: ["GIT_CONFIG_GLOBAL": "/dev/null", "GIT_PAGER": "cat", "PAGER": "cat"]
        )
        guard result.status == 0 else {
            throw TestProcessError("git \(arguments.joined(separator: " ")): \(result.output)")
        }
        return result.output
    }
}
