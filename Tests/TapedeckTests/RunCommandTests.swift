import Foundation
import Testing

@testable import Tapedeck

/// `tapedeck run -- CMD`, as a real process running real commands: what the command is told, what it exits
/// with, which signals reach it.
@Suite(.timeLimit(.minutes(3)))
struct RunCommandTests {
    /// The variables a command sees; `TAPEDECK_MODE` cleared so that the caller's environment cannot change them.
    private static let clean: [String: String?] = ["TAPEDECK_MODE": nil]

    @Test func oneRouteIsAnnouncedInTheCommandsEnvironment() async throws {
        let result = try await TapedeckProcess.run(
            [
                "run", "--mode", "proxy", "--upstream", "127.0.0.1:1", "--",
                "/bin/sh", "-c", "echo \"$TAPEDECK_ADDR|$TAPEDECK_HOST|$TAPEDECK_PORT|$TAPEDECK_DEFAULT_ADDR\"",
            ],
            environment: Self.clean
        )
        #expect(result.status == 0)
        #expect(result.stderr == "")
        let fields = result.stdout.trimmingCharacters(in: .newlines).split(separator: "|").map(String.init)
        #expect(fields.count == 4)
        #expect(fields[1] == "127.0.0.1")
        #expect(Int(fields[2]).map { $0 > 0 } == true)
        #expect(fields[0] == "127.0.0.1:\(fields[2])" && fields[3] == fields[0])
    }

    @Test func namedRoutesEachGetTheirVariables() async throws {
        let directory = try TemporaryDirectory()
        let config = try directory.twoRouteConfig(upstream: .tcp(host: "127.0.0.1", port: 1))
        let result = try await TapedeckProcess.run(
            [
                "run", "--mode", "proxy", "--config", config, "--",
                "/bin/sh", "-c",
                "echo \"$TAPEDECK_ALPHA_ADDR|$TAPEDECK_BETA_HOST:$TAPEDECK_BETA_PORT|${TAPEDECK_ADDR-unset}\"",
            ],
            environment: Self.clean
        )
        #expect(result.status == 0)
        let fields = result.stdout.trimmingCharacters(in: .newlines).split(separator: "|").map(String.init)
        #expect(fields.count == 3)
        #expect(fields[0].hasPrefix("127.0.0.1:") && fields[1].hasPrefix("127.0.0.1:") && fields[0] != fields[1])
        #expect(fields[2] == "unset")
    }

    @Test(arguments: [("exit 0", Int32(0)), ("exit 7", 7), ("kill -KILL $$", 137)])
    func exitsWithTheCommandsStatus(script: String, status: Int32) async throws {
        let result = try await TapedeckProcess.run(
            ["run", "--mode", "proxy", "--upstream", "127.0.0.1:1", "--", "/bin/sh", "-c", script],
            environment: Self.clean
        )
        #expect(result.status == status)
    }

    @Test(arguments: [("TERM", SIGTERM), ("INT", SIGINT), ("HUP", SIGHUP), ("USR1", SIGUSR1)])
    func signalsReachTheCommand(name: String, number: Int32) async throws {
        let process = try TapedeckProcess(
            [
                "run", "--mode", "proxy", "--upstream", "127.0.0.1:1", "--",
                "/bin/sh", "-c", "trap 'echo got-\(name); exit 42' \(name); echo ready; while :; do sleep 0.05; done",
            ],
            environment: Self.clean
        )
        try await waitUntil { process.stdout.contains("ready") }
        process.signal(number)
        #expect(try await process.waitForExit(timeout: .seconds(20)) == 42)
        #expect(process.stdout.contains("got-\(name)"))
    }

    /// Ctrl-C at a terminal goes to the whole foreground process group, the command included: Tapedeck must
    /// not pass on a second copy. `script` gives the two a pseudo-terminal; the test types Ctrl-C into it.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs script (util-linux)"))
    func ctrlCAtATerminalReachesTheCommandOnce() async throws {
        let directory = try TemporaryDirectory()
        let keyboard = directory.path("keyboard")
        let output = directory.path("output")
        guard mkfifo(keyboard, 0o600) == 0 else { throw TestProcessError("mkfifo failed") }
        // Held open for reading and writing, so that neither side's open of the FIFO waits for the other.
        let typing = open(keyboard, O_RDWR)
        defer { close(typing) }
        let command = [
            TapedeckProcess.executable.path, "run", "--mode", "proxy", "--upstream", "127.0.0.1:1", "--", "/bin/sh",
            "-c",
            // Waits (bounded) for the first interrupt, then a second longer for a duplicate that must not come.
            "n=0; trap 'n=$((n+1))' INT; echo ready; i=0; while [ $n -eq 0 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; sleep 1; echo interrupts=$n; exit 3",
        ].map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        // `script` runs the line with a shell; `exec` makes Tapedeck the terminal's foreground process, as an
        // interactive shell would. Without it a non-interactive shell in between dies of the Ctrl-C itself.
        let terminal = try ChildProcess(
            ["/usr/bin/script", "-qfec", "exec " + command, "/dev/null"],
            outputPath: output,
            environment: Self.clean,
            standardInput: keyboard
        )
        try await waitUntil { ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains("ready") }
        _ = write(typing, [UInt8(3)], 1)
        let deadline = ContinuousClock.now.advanced(by: .seconds(45))
        while terminal.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(text.contains("interrupts=1"))
        #expect(terminal.exitStatus == 3)
    }

    @Test func theCommandDoesNotOutliveAKilledRun() async throws {
        let directory = try TemporaryDirectory()
        let pidFile = directory.path("command.pid")
        let process = try TapedeckProcess(
            [
                "run", "--mode", "proxy", "--upstream", "127.0.0.1:1", "--", "/bin/sh", "-c",
                Self.patientScript(pidFile),
            ],
            environment: Self.clean
        )
        let command = try await waitForPID(in: pidFile)
        defer { Self.stopIfStillRunning(command, pidFile: pidFile) }
        #expect(ProcessResources.isRunning(command))

        process.signal(SIGKILL)
        #expect(try await process.waitForExit(timeout: .seconds(20)) == 128 + SIGKILL)
        try? await waitUntil(timeout: .seconds(5)) { !ProcessResources.isRunning(command) }
        #expect(!ProcessResources.isRunning(command), "the command outlived tapedeck run")
    }

    @Test func aSecondSignalEndsRunAndACommandThatIgnoresTheFirst() async throws {
        let directory = try TemporaryDirectory()
        let pidFile = directory.path("command.pid")
        let process = try TapedeckProcess(
            [
                "run", "--mode", "proxy", "--upstream", "127.0.0.1:1", "--", "/bin/sh", "-c",
                "trap 'echo got-TERM' TERM; " + Self.patientScript(pidFile),
            ],
            environment: Self.clean
        )
        let command = try await waitForPID(in: pidFile)
        defer { Self.stopIfStillRunning(command, pidFile: pidFile) }

        process.signal(SIGTERM)
        try await waitUntil { process.stdout.contains("got-TERM") }
        #expect(process.exitStatus == nil)
        process.signal(SIGTERM)
        #expect(try await process.waitForExit(timeout: .seconds(20)) == 128 + SIGTERM)
        #expect(process.stderr.contains("tapedeck: second signal, exiting now"))
        try? await waitUntil(timeout: .seconds(5)) { !ProcessResources.isRunning(command) }
        #expect(!ProcessResources.isRunning(command), "the command outlived tapedeck run")
    }

    @Test func aMissingCommandExits127AndLeavesTheTapeAlone() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("keep.tape")
        try Data("not touched".utf8).write(to: URL(fileURLWithPath: tape))
        let result = try await TapedeckProcess.run(
            ["run", "--tape", tape, "--mode", "record", "--upstream", "127.0.0.1:1", "--", "no-such-command-here"],
            environment: Self.clean
        )
        #expect(result.status == 127)
        #expect(result.stderr == "tapedeck: error: cannot run 'no-such-command-here': command not found in PATH\n")
        #expect(try String(contentsOfFile: tape, encoding: .utf8) == "not touched")
    }

    @Test func aCommandThatCannotStartKeepsTheTapeBeingReRecorded() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("keep.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await recordExchange("kept", into: tape, upstream: upstream.endpoint)
        // Executable, but not a program the system can start.
        let bogus = directory.path("bogus")
        try Data([0x7F, 0x45, 0x4C, 0x46, 0x00, 0x01]).write(to: URL(fileURLWithPath: bogus))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bogus)

        let result = try await TapedeckProcess.run(
            ["run", "--tape", tape, "--mode", "record", "--upstream", "\(upstream.endpoint)", "--", bogus],
            environment: Self.clean
        )
        #expect(result.status == 127)
        #expect(result.stderr.hasPrefix("tapedeck: error: cannot run '\(bogus)': "))
        #expect(try Tape(readingAt: tape).sessions().count == 1)
        #expect(!FileManager.default.fileExists(atPath: tape + ".recording"))
    }

    @Test(
        arguments: [
            (["run", "--upstream", "127.0.0.1:1"], [:], "tapedeck: error: missing the command to run, after '--'"),
            (["run", "--", "true"], [:], "tapedeck: error: missing --tape (needed in replay mode)"),
            (
                ["run", "--tape", "x.tape", "--mode", "record", "--", "true"], [:],
                "tapedeck: error: record mode needs --upstream (or --config FILE)"
            ),
            (
                ["run", "--tape", "x.tape", "--mode", "rewind", "--", "true"], [:],
                "tapedeck: error: invalid mode 'rewind': use proxy, record, replay, record-missing, auto"
            ),
            (
                ["run", "--tape", "x.tape", "--", "true"], ["TAPEDECK_MODE": "bogus"],
                "tapedeck: error: invalid TAPEDECK_MODE 'bogus': use proxy, record, replay, record-missing, auto"
            ),
        ] as [([String], [String: String], String)]
    )
    func usageErrorsExitTwo(arguments: [String], environment: [String: String], message: String) async throws {
        var variables = Self.clean
        for (name, value) in environment { variables[name] = value }
        let result = try await TapedeckProcess.run(arguments, environment: variables)
        #expect(result.status == 2)
        #expect(result.stderr == message + "\n")
    }

    @Test func aMissingTapeSaysHowToRecordIt() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("none.tape")
        let result = try await TapedeckProcess.run(["run", "--tape", tape, "--", "true"], environment: Self.clean)
        #expect(result.status == 1)
        #expect(
            result.stderr
                == "tapedeck: error: cannot open tape '\(tape)': no such file; record it with --mode record (or TAPEDECK_MODE=record)\n"
        )
    }

    @Test func aTapeThatCannotBeWrittenFailsAPassingCommandLoudly() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("lost.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        // The command removes the tape under the recorder, then talks through Tapedeck, and passes.
        let script = """
            rm -f '\(tape)'
            exec 3<>"/dev/tcp/$TAPEDECK_HOST/$TAPEDECK_PORT"
            printf ping >&3
            head -c 4 <&3 >/dev/null
            sleep 0.5
            """
        let result = try await TapedeckProcess.run(
            [
                "run", "--tape", tape, "--mode", "record", "--upstream", "\(upstream.endpoint)", "--", "/bin/bash",
                "-c", script,
            ],
            environment: Self.clean
        )
        #expect(result.status == 1)
        #expect(result.stderr.contains("tapedeck: error: "))
        #expect(result.stderr.contains("the recording is incomplete"))
    }

    /// A shell script that writes its pid to `pidFile` and then waits, for at most five minutes, in steps short
    /// enough for a trapped signal to be handled at once.
    private static func patientScript(_ pidFile: String) -> String {
        "echo $$ > '\(pidFile)'; i=0; while [ $i -lt 6000 ]; do sleep 0.05; i=$((i+1)); done"
    }

    /// The pid a command wrote to `pidFile`, once it is there whole.
    private func waitForPID(in pidFile: String) async throws -> pid_t {
        var pid: pid_t?
        try await waitUntil {
            let text = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
            pid = text.hasSuffix("\n") ? pid_t(text.dropLast()) : nil
            return pid != nil
        }
        return try #require(pid)
    }

    /// Kills a command a test started that outlived its `tapedeck run`, so a failing test leaves nothing behind;
    /// only if the pid still names that command (its command line holds the pid file's path).
    private static func stopIfStillRunning(_ pid: pid_t, pidFile: String) {
        guard ProcessResources.isRunning(pid),
            let line = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
            String(decoding: line, as: UTF8.self).contains(pidFile)
        else { return }
        kill(pid, SIGKILL)
    }

    private func waitUntil(timeout: Duration = .seconds(20), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TimeoutError() }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// `tapedeck run` around real `redis-cli` commands: record from a real server, then replay strictly without it.
@Suite(
    .enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli (installed by .ci/run)"),
    .timeLimit(.minutes(3))
)
struct RunCommandRedisTests {
    @Test func recordsThenReplaysStrictly() async throws {
        let cli = try #require(RedisServer.client)
        let redis = try await RedisServer()
        let directory = try TemporaryDirectory()
        let tape = directory.path("fixtures/redis.tape")
        func script(_ commands: String) -> [String] {
            [
                "/bin/sh", "-c",
                commands.replacingOccurrences(of: "CLI", with: "\(cli) -h \"$TAPEDECK_HOST\" -p \"$TAPEDECK_PORT\""),
            ]
        }
        let session = script("CLI SET user:1 ada && CLI GET user:1")

        // TAPEDECK_MODE chooses the mode when --mode does not.
        let recorded = try await TapedeckProcess.run(
            ["run", "--tape", tape, "--upstream", "127.0.0.1:\(redis.port)", "--"] + session,
            environment: ["TAPEDECK_MODE": "record"]
        )
        redis.stop()
        #expect(recorded.status == 0)
        #expect(recorded.stdout == "OK\nada\n")
        #expect(try Tape(readingAt: tape).sessions().count == 2)

        let replayed = try await TapedeckProcess.run(
            ["run", "--tape", tape, "--require-all", "--"] + session,
            environment: ["TAPEDECK_MODE": nil]
        )
        #expect(replayed.status == 0)
        #expect(replayed.stdout == "OK\nada\n")
        #expect(replayed.stderr == "")

        // The command passes (redis-cli prints the reset and exits 0 with '|| true'), but replay mismatched.
        let mismatch = try await TapedeckProcess.run(
            ["run", "--tape", tape, "--report", directory.path("report.json"), "--"] + script("CLI GET user:2 || true"),
            environment: ["TAPEDECK_MODE": nil]
        )
        #expect(mismatch.status == 3)
        #expect(mismatch.stderr.contains("tapedeck: error: the command passed, but the replay did not go as recorded"))
        #expect(mismatch.stderr.contains("GET\\r\\n$6\\r\\nuser:2"))
        let report = try JSONDecoder().decode(
            ReplayReport.self,
            from: Data(contentsOf: URL(fileURLWithPath: directory.path("report.json")))
        )
        #expect(report.mismatches.count == 1)

        // A failing command keeps its own status; --no-strict lets a mismatch pass.
        let failing = try await TapedeckProcess.run(
            ["run", "--tape", tape, "--"] + script("CLI GET user:2; exit 5"),
            environment: ["TAPEDECK_MODE": nil]
        )
        #expect(failing.status == 5)
        let lenient = try await TapedeckProcess.run(
            ["run", "--tape", tape, "--no-strict", "--"] + script("CLI GET user:2 || true"),
            environment: ["TAPEDECK_MODE": nil]
        )
        #expect(lenient.status == 0)

        // --require-all: a session never asked for fails a passing command too.
        let partial = try await TapedeckProcess.run(
            ["run", "--tape", tape, "--require-all", "--"] + script("CLI SET user:1 ada"),
            environment: ["TAPEDECK_MODE": nil]
        )
        #expect(partial.status == 3)
        #expect(partial.stderr.contains("was never replayed"))
        let allowed = try await TapedeckProcess.run(
            ["run", "--tape", tape, "--"] + script("CLI SET user:1 ada"),
            environment: ["TAPEDECK_MODE": nil]
        )
        #expect(allowed.status == 0)
    }
}

/// The README's first command: the committed HTTP fixture replayed to curl under `tapedeck run`.
@Suite(.enabled(if: NginxServer.curl != nil, "needs curl"))
struct QuickStartTests {
    @Test func theHelloFixtureReplaysToCurl() async throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures/hello.tape").path
        let result = try await TapedeckProcess.run(
            ["run", "--tape", fixture, "--", "/bin/sh", "-c", "curl -s -A hello \"http://$TAPEDECK_ADDR/\""],
            environment: ["TAPEDECK_MODE": nil]
        )
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout == "Hello from a tape: this reply was recorded once and is now served with no upstream.\n"
        )
        #expect(result.stderr.isEmpty)
    }
}
