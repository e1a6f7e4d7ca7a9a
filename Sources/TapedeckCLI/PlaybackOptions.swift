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

    @Option(
        help: ArgumentHelp(
            "Report sessions recorded longer ago than this, as 30d or 12h (also max_age in a --config file).",
            valueName: "age"
        )
    )
    var maxAge: String?

    @Option(
        help: ArgumentHelp(
            "What to do with sessions older than --max-age: warn, fail (a --strict replay exits 3), or record "
                + "(re-record them in place from --upstream). (default: warn)",
            valueName: "action"
        )
    )
    var onExpired: TapeExpiry.Action?

    /// The expiry policy: these flags, over a config file's `max_age` and `on_expired`.
    ///
    /// - Parameter configured: The policy of the `--config` file, when one was given.
    func expiry(configured: TapeExpiry?) throws -> TapeExpiry? {
        var configured = configured
        if let maxAge {
            guard let age = try? DurationText.parse(maxAge), age > .zero else {
                throw ValidationError("--max-age '\(maxAge)' is not an age above 0, as 30d or 12h")
            }
            configured = TapeExpiry(maxAge: age, action: configured?.action ?? .warn)
        }
        guard var expiry = configured else {
            if onExpired != nil { throw ValidationError("--on-expired needs --max-age (or max_age in --config)") }
            return nil
        }
        if let onExpired { expiry.action = onExpired }
        return expiry
    }
}

extension TapeExpiry.Action: ExpressibleByArgument {}
