import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck git-setup`: `git diff` shows tapes as text.
struct GitSetupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "git-setup",
        abstract: "Make git diff and git log -p show tapes as text.",
        discussion:
            "Adds '*.tape diff=tapedeck' to the repository's .gitattributes (commit it) and sets diff.tapedeck.textconv "
            + "in its .git/config (each clone runs this once): git then renders a tape with "
            + "`tapedeck export --format text --output -` before diffing it."
    )

    @Option(help: ArgumentHelp("A directory in the repository; the current one by default.", valueName: "dir"))
    var repository: String = FileManager.default.currentDirectoryPath

    @Option(
        help: ArgumentHelp(
            "The tapedeck git runs; by default 'tapedeck' when it is on PATH, else this executable's path.",
            valueName: "command"
        )
    )
    var command: String?

    func run() throws {
        let setup = try GitSetup(directory: repository, executable: command ?? Self.defaultCommand())
        for change in try setup.apply() { print(change) }
    }

    /// `tapedeck` when the PATH finds this same executable (a portable setting), else this executable's path.
    static func defaultCommand() -> String {
        let own = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("tapedeck")
            if candidate.resolvingSymlinksInPath().path == own { return "tapedeck" }
        }
        return FileManager.default.fileExists(atPath: own) ? own : CommandLine.arguments[0]
    }
}
