import ArgumentParser
import Tapedeck

/// How a replay plays the tape and what it reports, shared by `replay` and `run`.
struct PlaybackOptions: ParsableArguments {
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "fast (no waits), recorded (the recorded delays), or a factor: 2x, 0.5x. (default: fast)",
            valueName: "pace"
        ),
        transform: ReplayPace.init(parsing:)
    )
    var pace: ReplayPace = .fast

    @Flag(name: .customLong("repeat"), help: "Let a recorded session serve more than one connection.")
    var repeatSessions = false

    @Flag(help: "Also fail (exit 3) if a recorded session was never replayed.")
    var requireAll = false

    @Option(help: ArgumentHelp("Write the replay report as JSON to this file at the end.", valueName: "file"))
    var report: String?

    @Flag(help: "Write the --report file even where a symbolic link stands (to the file it points to).")
    var force = false
}
