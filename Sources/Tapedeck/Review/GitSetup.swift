import Foundation

/// Makes `git diff` and `git log -p` show tapes as text: `*.tape diff=tapedeck` in `.gitattributes`, and
/// `diff.tapedeck.textconv` in the repository's config, the command that renders a tape (`tapedeck export
/// --format text --output -`). What `tapedeck git-setup` does.
///
/// A tape is an SQLite file, which git shows as "Binary files differ"; through the text conversion a re-recorded
/// fixture shows as the lines that changed, and a reviewer sees what the service now says.
public struct GitSetup: Sendable {
    /// The repository's top directory.
    public var repository: String
    /// The command git runs on a tape, the tape's path appended.
    public var textConversion: String

    /// The line `.gitattributes` gets.
    public static let attributesLine = "*.tape diff=tapedeck"

    /// The setup for the repository holding `directory`, rendering tapes with `executable`.
    ///
    /// - Throws: ``TapedeckError`` when `directory` is not in a git repository or git cannot be run.
    public init(directory: String, executable: String) throws {
        let top = try Self.git(["rev-parse", "--show-toplevel"], in: directory)
        guard top.status == 0, let line = top.output.split(separator: "\n").first else {
            throw TapedeckError(.invalidArgument, "'\(directory)' is not in a git repository")
        }
        repository = String(line)
        textConversion = Self.shellQuoted(executable) + " export --format text --output -"
    }

    /// What it changed: lines to print.
    ///
    /// - Throws: ``TapedeckError`` when `.gitattributes` cannot be written or git refuses the setting.
    public func apply() throws -> [String] {
        var changes: [String] = []
        let attributes = repository + "/.gitattributes"
        let existing = (try? String(contentsOfFile: attributes, encoding: .utf8)) ?? ""
        if !existing.split(separator: "\n").contains(where: {
            $0.trimmingCharacters(in: .whitespaces) == Self.attributesLine
        }) {
            let text =
                existing + (existing.isEmpty || existing.hasSuffix("\n") ? "" : "\n") + Self.attributesLine + "\n"
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: attributes))
            } catch {
                throw TapedeckError(.invalidArgument, "cannot write '\(attributes)': \(error.localizedDescription)")
            }
            changes.append("added '\(Self.attributesLine)' to \(attributes)")
        }
        let set = try Self.git(["config", "--local", "diff.tapedeck.textconv", textConversion], in: repository)
        guard set.status == 0 else {
            throw TapedeckError(
                .invalidArgument,
                "git config failed: \(set.output.trimmingCharacters(in: .whitespacesAndNewlines))"
            )
        }
        changes.append("set diff.tapedeck.textconv to '\(textConversion)' in \(repository)/.git/config")
        return changes
    }

    /// `text` quoted for the shell git runs a text conversion with, when it needs quoting.
    static func shellQuoted(_ text: String) -> String {
        let plain = text.allSatisfy { $0.isLetter || $0.isNumber || "/._-+:@".contains($0) }
        return plain && !text.isEmpty ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Runs git with `arguments` in `directory`; its exit status and output (stdout and stderr).
    static func git(_ arguments: [String], in directory: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            throw TapedeckError(.invalidArgument, "cannot run git: \(error.localizedDescription)")
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
