import ArgumentParser
import Logging
import Tapedeck

/// `--fault FILE` and `--seed N`: toxics applied to the traffic of `proxy`, `record`, `replay` and `run`.
struct FaultOptions: ParsableArguments {
    @Option(
        name: .customLong("fault"),
        help: ArgumentHelp(
            "Apply the toxics of FILE (YAML, or JSON for .json): Toxiproxy's toxics, pinned with session, exchange, offset, match or count if wanted.",
            valueName: "file"
        )
    )
    var faultFile: String?

    @Option(
        help: ArgumentHelp(
            "Seed of the random draws toxics make (toxicity, jitter, slicing), so a faulted run can be repeated (default: a new seed, logged).",
            valueName: "number"
        )
    )
    var seed: UInt64?

    /// Puts the toxics in `options`, when a fault file or a seed was given; the seed chosen is logged, so that a
    /// run can be repeated with it.
    func apply(to options: inout Deck.Options, logger: Logger) throws {
        guard faultFile != nil || seed != nil else { return }
        let plan = try faultFile.map { try FaultPlan.load(path: $0) }
        let seed = seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        options.faults = options.faults ?? FaultRegistry(seed: seed)
        options.faultPlan = plan
        logger.info(
            "faults on",
            metadata: [
                "tapedeck.seed": "\(options.faults!.seed)", "tapedeck.toxics": "\(plan?.toxics.count ?? 0)",
            ]
        )
    }
}
