import ArgumentParser
import Tapedeck

/// The rules given on the command line, for every route: shared by `record`, `replay`, `run`, `redact` and `drift`.
struct RuleOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "A regular expression over bytes whose match (or capture groups) may differ between recording and replay. Repeatable.",
            valueName: "regex"
        )
    )
    var volatile: [String] = []

    @Option(
        help: ArgumentHelp(
            "A regular expression over bytes whose match (or capture groups) is a secret: a recording writes '*' bytes in its place, and replay and drift compare it as redacted. Repeatable.",
            valueName: "regex"
        )
    )
    var redact: [String] = []

    @Option(
        help: ArgumentHelp(
            "Ready-made rules: \(RulePreset.names). Repeatable.",
            valueName: "name"
        )
    )
    var preset: [String] = []

    /// The rules, in order: presets, volatile, redact.
    func rules() throws -> [Rule] {
        do {
            return try RuleList.fromFlags(volatile: volatile, redact: redact, presets: preset)
        } catch let error as TapedeckError {
            throw ValidationError(error.message)
        }
    }

    /// `routes` with these rules added to each route's own.
    func applied(to routes: [Route]) throws -> [Route] {
        let rules = try rules()
        guard !rules.isEmpty else { return routes }
        return routes.map { route in
            var route = route
            route.rules = (route.rules + rules).uniqued()
            return route
        }
    }
}

/// Secrets supplied at replay: `--secret NAME=VALUE`, over `TAPEDECK_SECRET_<NAME>` in the environment.
struct SecretOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "A secret replay needs, as NAME=VALUE: a redacted upstream span's value, or postgres-password for a SCRAM login. Also TAPEDECK_SECRET_<NAME>. Repeatable.",
            valueName: "name=value"
        )
    )
    var secret: [String] = []

    /// The secrets given, and those of the environment for the names the routes' rules mention.
    func secrets(for routes: [Route], tape: String?) throws -> [String: String] {
        var names = Set(routes.flatMap { $0.rules.compactMap(\.secret) })
        names.insert(RulePreset.postgresPasswordSecret)
        if let tape, let reading = try? Tape(readingAt: tape) {
            for stored in (try? reading.storedRules()) ?? [] {
                if let secret = stored.rule.secret { names.insert(secret) }
            }
            try? reading.close()
        }
        do {
            return try RuleList.secrets(secret, names: names.sorted())
        } catch let error as TapedeckError {
            throw ValidationError(error.message)
        }
    }
}
