import Foundation
import NIOConcurrencyHelpers

/// Runs a command inside Tapedeck: starts a ``Deck``, runs the command with the routes' addresses in its
/// environment, stops the deck when the command exits, and decides the exit status. `tapedeck run` is this.
///
/// ```swift
/// var runner = CommandRunner(
///     command: ["pytest", "-q"], mode: .replay, tape: "fixtures/db.tape",
///     routes: [Route(upstream: try Endpoint(parsing: "127.0.0.1:5432"))]
/// )
/// let status = try await runner.run()  // the command's status, or 3 if it passed but replay mismatched
/// ```
public struct CommandRunner: Sendable {
    /// The exit status when the command passed but the replay did not go as recorded.
    public static let replayFailureStatus: Int32 = 3
    /// The exit status when the command passed but the tape could not be written fully.
    public static let recordingFailureStatus: Int32 = 1

    /// The command and its arguments; the first is looked up in `PATH` unless it holds a slash.
    public var command: [String]
    /// The mode; ``TapedeckMode/auto`` is resolved against the tape.
    public var mode: TapedeckMode
    /// The tape; `nil` only in proxy mode.
    public var tape: String?
    /// The routes to serve.
    public var routes: [Route]
    /// Recording and replay options for the deck.
    public var options: Deck.Options
    /// Whether a replay mismatch fails the run even when the command passed. On by default.
    public var strict: Bool
    /// Whether a recorded session never replayed also fails the run.
    public var requireAll: Bool
    /// How long connections may stay open after the command exits before they are reset.
    public var drainTimeout: Duration
    /// Where to write the replay report as JSON, if anywhere.
    public var reportPath: String?
    /// Whether the report may be written through a symbolic link at ``reportPath`` (`--force`).
    public var reportFollowsSymlink = false
    /// The environment the command starts from; the route variables are added to it.
    public var environment: [String: String]
    /// Where one-line messages for the user go; standard error by default.
    public var diagnostics: @Sendable (String) -> Void

    /// Creates a runner; replay is strict, connections get 5 seconds to drain, and messages go to stderr.
    public init(
        command: [String],
        mode: TapedeckMode,
        tape: String?,
        routes: [Route],
        options: Deck.Options = Deck.Options(),
        strict: Bool = true,
        requireAll: Bool = false,
        drainTimeout: Duration = .seconds(5),
        reportPath: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        diagnostics: @escaping @Sendable (String) -> Void = {
            StandardStreams.writeError("tapedeck: \($0)\n")
        }
    ) {
        self.command = command
        self.mode = mode
        self.tape = tape
        self.routes = routes
        self.options = options
        self.strict = strict
        self.requireAll = requireAll
        self.drainTimeout = drainTimeout
        self.reportPath = reportPath
        self.environment = environment
        self.diagnostics = diagnostics
    }

    /// Runs the command and returns the status to exit with: the command's own when it failed (128 plus the
    /// signal when a signal ended it); ``replayFailureStatus`` when it passed but replay mismatched (or left
    /// sessions unused, with ``requireAll``); ``recordingFailureStatus`` when it passed but the tape could not
    /// be written fully; 0 otherwise.
    ///
    /// Signals that ask a program to stop (SIGINT, SIGTERM, SIGHUP, SIGQUIT) and SIGUSR1/SIGUSR2 sent to this
    /// process are passed on to the command; the deck keeps serving until the command exits. A second SIGINT or
    /// SIGTERM ends the command (SIGKILL) and this process at once, with 128 plus the signal's number. On Linux
    /// the command is also killed if this process dies without a chance to pass anything on (SIGKILL).
    ///
    /// - Throws: ``TapedeckError`` when the deck cannot start, or with code `commandNotRun` when the command
    ///   cannot be found or started. The tape is untouched when the command is not found.
    public func run() async throws -> Int32 {
        guard let name = command.first else { throw TapedeckError(.invalidArgument, "no command to run after '--'") }
        // Found before the deck starts: a mistyped command must not overwrite a tape with an empty recording.
        let executable = try ChildCommand.locate(name, environment: environment)
        let diagnostics = self.diagnostics
        let recordingFailed = NIOLockedValueBox(false)
        var options = self.options
        let earlier = options.onRecordingFailure
        options.onRecordingFailure = { error in
            recordingFailed.withLockedValue { $0 = true }
            diagnostics("error: \(error.message); the command goes on, but the recording is incomplete")
            earlier?(error)
        }
        let deck: Deck
        do {
            deck = try await Deck.start(mode, tape: tape, routes: routes, options: options)
        } catch let error as TapedeckError
            where error.code == .tapeUnreadable && !FileManager.default.fileExists(atPath: tape ?? "")
        {
            throw TapedeckError(
                error.code,
                error.message + "; record it with --mode record (or \(TapedeckMode.environmentVariable)=record)"
            )
        }
        // The command's output is its own: the inspector's address goes where diagnostics go.
        if let web = deck.webAddress { diagnostics("web \(InspectorServer.url(of: web))") }

        let status: Int32
        do {
            SignalForwarding.install()
            let child = try ChildCommand(
                executable: executable,
                arguments: command,
                environment: environment.merging(RouteEnvironment.variables(for: deck.routes)) { $1 }
                    .merging(try Self.trustVariables(for: deck)) { $1 }
                    .merging(Self.apiVariables(for: deck)) { $1 }
            )
            SignalForwarding.forward(to: child.pid)
            status = await child.exitStatus()
            SignalForwarding.stop()
        } catch {
            // The command never ran: nothing it did was recorded, so a tape being re-recorded stays as it was.
            _ = try? await deck.stop(drainTimeout: .zero, keepingRecording: false)
            throw error
        }

        let outcome: DeckOutcome
        do {
            outcome = try await deck.stop(drainTimeout: drainTimeout)
        } catch let error as TapedeckError {
            if !recordingFailed.withLockedValue({ $0 }) { diagnostics("error: \(error.message)") }
            return status != 0 ? status : Self.recordingFailureStatus
        }
        guard let report = outcome.replay else { return status }
        if let reportPath {
            do { try report.write(toPath: reportPath, followingSymlink: reportFollowsSymlink) } catch let error
                as TapedeckError
            {
                diagnostics("error: \(error.message)")
            }
        }
        let failures = report.failures(requireAll: requireAll)
        guard !failures.isEmpty else { return status }
        diagnostics(report.summary)
        for failure in failures { diagnostics("  \(failure)") }
        if status == 0, strict || requireAll {
            diagnostics("error: the command passed, but the replay did not go as recorded")
            return Self.replayFailureStatus
        }
        return status
    }

    /// The environment variable that tells the command where the control API listens, when the deck has one.
    public static let apiVariable = "TAPEDECK_API"

    /// `TAPEDECK_API=HOST:PORT` when the deck serves the control API, as Toxiproxy clients take it.
    static func apiVariables(for deck: Deck) -> [String: String] {
        guard let api = deck.apiAddress else { return [:] }
        return [apiVariable: "\(api)"]
    }

    /// Where the deck speaks TLS, the variables that make common clients trust its CA: a bundle of the CA and
    /// the system's roots where a variable replaces the trust store, the CA alone where it adds to it.
    static func trustVariables(for deck: Deck) throws -> [String: String] {
        guard let contexts = deck.tlsContexts else { return [:] }
        let authority = try contexts.certificateAuthority()
        let bundle = try authority.writeTrustBundle()
        return [
            "SSL_CERT_FILE": bundle,
            "REQUESTS_CA_BUNDLE": bundle,
            "CURL_CA_BUNDLE": bundle,
            "PGSSLROOTCERT": bundle,
            "NODE_EXTRA_CA_CERTS": authority.certificatePath,
        ]
    }
}
