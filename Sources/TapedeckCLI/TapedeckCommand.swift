import ArgumentParser
import Foundation
import Tapedeck

/// The `tapedeck` command: a record/replay proxy for sockets.
@main
struct TapedeckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tapedeck",
        abstract: "Record and replay the traffic between a program and the services it talks to.",
        version: tapedeckVersion,
        subcommands: [
            ProxyCommand.self, RecordCommand.self, ReplayCommand.self, RunCommand.self, SessionsCommand.self,
            ShowCommand.self, GrepCommand.self, ScanCommand.self, StatsCommand.self, ExportCommand.self,
            RedactCommand.self, ImportCommand.self, GitSetupCommand.self, DiffCommand.self, DriftCommand.self,
            WebCommand.self,
            CACommand.self,
        ]
    )

    /// Runs the command line, turning every error into one line on stderr and the documented exit status:
    /// 0 for success and help, 1 for runtime failures, 2 for usage errors, 127 when `run` cannot start its command.
    /// `scan` keeps 1 for "secrets found" and exits 2 for every error (see ScanCommand).
    static func main() async {
        TerminationSignals.unblock()
        // A reader that goes away (`tapedeck sessions TAPE | head`) ends output quietly through EPIPE, rather than
        // killing the process; children get the default back (see ChildCommand).
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as TapedeckError {
            // 127, as a shell says when it cannot find a command.
            CommandLineFailure.exit(message: error.description, status: error.code == .commandNotRun ? 127 : 1)
        } catch let error as ExitCode {
            Foundation.exit(error.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help and --version
            }
            let status: Int32 = code == .validationFailure ? 2 : code.rawValue
            CommandLineFailure.exit(message: errorLine(for: error), status: status)
        }
    }
}

/// Prints a warning the user must see whatever the log level, as one line on stderr.
enum CommandLineWarning {
    @Sendable static func print(_ message: String) {
        StandardStreams.writeError("tapedeck: warning: \(message)\n")
    }
}

/// Prints a one-line error and exits.
enum CommandLineFailure {
    static func exit(message: String, status: Int32) -> Never {
        StandardStreams.writeError("tapedeck: error: \(message)\n")
        Foundation.exit(status)
    }
}
