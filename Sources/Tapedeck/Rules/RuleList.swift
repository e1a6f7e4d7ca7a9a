import Foundation

/// Rules as users write them: `--volatile REGEX`, `--redact REGEX`, `--preset NAME` on the command line, and a
/// route's `rules:` list in a config file.
public enum RuleList {
    /// The rules of command-line flags, in the order given: presets first, then volatile, then redact rules.
    ///
    /// - Throws: ``TapedeckError`` naming an unknown preset or an expression that does not compile.
    public static func fromFlags(volatile: [String], redact: [String], presets: [String]) throws -> [Rule] {
        var rules: [Rule] = []
        for name in presets { rules += try RulePreset(parsing: name).rules }
        for pattern in volatile { rules.append(try Rule(.volatile, pattern: pattern)) }
        for pattern in redact { rules.append(try Rule(.redact, pattern: pattern)) }
        return rules.uniqued()
    }

    /// One entry of a config file's `rules:` list: exactly one of `volatile`, `redact` (each a regular
    /// expression) or `preset`, with `scope` (`client`, `upstream`, `both`) and, for `redact`, `secret`.
    ///
    /// ```yaml
    /// rules:
    ///   - preset: aws-sigv4
    ///   - volatile: 'X-Request-Id: ([0-9a-f-]{36})'
    ///   - redact: 'token=([A-Za-z0-9]+)'
    ///     scope: upstream
    ///     secret: api-token
    /// ```
    ///
    /// - Throws: ``TapedeckError`` (`invalidConfiguration`) saying what is wrong with the entry.
    public static func fromEntry(_ entry: [String: String]) throws -> [Rule] {
        let known: Set<String> = ["volatile", "redact", "preset", "scope", "secret"]
        if let unknown = entry.keys.sorted().first(where: { !known.contains($0) }) {
            throw TapedeckError(
                .invalidConfiguration,
                "unknown rule key '\(unknown)' (expected volatile, redact or preset, with scope or secret)"
            )
        }
        let kinds = ["volatile", "redact", "preset"].filter { entry[$0] != nil }
        guard kinds.count == 1, let kind = kinds.first, let value = entry[kind] else {
            throw TapedeckError(.invalidConfiguration, "a rule needs exactly one of volatile, redact or preset")
        }
        do {
            if kind == "preset" {
                guard entry["scope"] == nil, entry["secret"] == nil else {
                    throw TapedeckError(.invalidConfiguration, "a preset takes no scope or secret")
                }
                return try RulePreset(parsing: value).rules
            }
            let scope = try entry["scope"].map { text in
                guard let scope = Rule.Scope(rawValue: text) else {
                    throw TapedeckError(.invalidConfiguration, "unknown scope '\(text)': use client, upstream or both")
                }
                return scope
            }
            if entry["secret"] != nil, kind != "redact" {
                throw TapedeckError(.invalidConfiguration, "only a redact rule names a secret")
            }
            return [
                try Rule(
                    kind == "volatile" ? .volatile : .redact,
                    pattern: value,
                    scope: scope ?? .both,
                    secret: entry["secret"]
                )
            ]
        } catch let error as TapedeckError {
            throw TapedeckError(.invalidConfiguration, error.message)
        }
    }

    /// Secrets from `NAME=VALUE` texts (`--secret`), over those of the environment's `TAPEDECK_SECRET_<NAME>`
    /// variables (the name upper-cased, `-` as `_`): `postgres-password` is `TAPEDECK_SECRET_POSTGRES_PASSWORD`.
    ///
    /// - Throws: ``TapedeckError`` for a text without `=` or with an empty name.
    public static func secrets(
        _ texts: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        names: [String] = []
    ) throws -> [String: String] {
        var secrets: [String: String] = [:]
        for name in names {
            if let value = environment[environmentName(of: name)] { secrets[name] = value }
        }
        for text in texts {
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                throw TapedeckError(.invalidArgument, "invalid secret '\(text.prefix(40))…': use NAME=VALUE")
            }
            secrets[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        return secrets
    }

    /// The environment variable that supplies the secret `name`.
    public static func environmentName(of name: String) -> String {
        "TAPEDECK_SECRET_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    }
}
