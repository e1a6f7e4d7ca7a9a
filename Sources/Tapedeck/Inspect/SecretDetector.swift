import Foundation

/// One way `tapedeck scan` finds likely secrets: a byte pattern whose spans are secrets of one kind, in the
/// streams it reads, when the session is of the shape it expects.
struct SecretDetector: Sendable {
    /// What must hold of a session for a span to count.
    enum Condition: Sendable, Hashable {
        /// Nothing.
        case always
        /// The client spoke first. Redis never greets; SMTP, FTP and POP3 servers do, and their clients send
        /// `AUTH LOGIN` and `AUTH TLS` lines that Redis's inline `AUTH` rule would take for passwords.
        case clientSpokeFirst
        /// The upstream spoke first, as an SMTP server's greeting does.
        case upstreamSpokeFirst
        /// The line was sent after the upstream's last complete line was a `334` challenge.
        case afterChallenge
    }

    /// What its spans are.
    let kind: SecretKind
    let pattern: BytePattern
    /// Which streams it reads.
    let scope: Rule.Scope
    let condition: Condition

    /// Whether it reads `direction`'s stream in a session whose first data came from `firstSpeaker`.
    func applies(to direction: Direction, firstSpeaker: Direction?) -> Bool {
        guard scope.covers(direction) else { return false }
        switch condition {
        case .always: return true
        case .clientSpokeFirst: return firstSpeaker == .clientToUpstream
        // Challenges come from servers that greet first, as SMTP's do.
        case .upstreamSpokeFirst, .afterChallenge: return firstSpeaker == .upstreamToClient
        }
    }

    /// The detectors a scan runs: the presets' rules whose spans are secrets (``SecretKind/init(presetRule:)``),
    /// then patterns of the scanner's own.
    ///
    /// Every pattern that repeats a class of characters starts where a run of that class cannot go on from
    /// before, or is bounded: a tape is untrusted input, and a stream of `eyJeyJeyJ…` must not make a scan
    /// quadratic.
    ///
    /// - Throws: ``TapedeckError`` if a pattern does not compile, which a test rules out.
    static func all() throws -> [SecretDetector] {
        var detectors: [SecretDetector] = []
        for preset in RulePreset.allCases {
            for rule in preset.rules {
                guard let kind = SecretKind(presetRule: rule) else { continue }
                detectors.append(
                    SecretDetector(
                        kind: kind,
                        pattern: try BytePattern(
                            rule.pattern,
                            required: RulePreset.tests(of: rule)?.required,
                            tail: RulePreset.tests(of: rule)?.tail
                        ),
                        scope: rule.scope,
                        condition: kind == .redisAuth ? .clientSpokeFirst : .always
                    )
                )
            }
        }
        for (kind, pattern, scope, condition) in own {
            detectors.append(
                SecretDetector(kind: kind, pattern: try BytePattern(pattern), scope: scope, condition: condition)
            )
        }
        return detectors
    }

    /// The scanner's own patterns.
    private static let own: [(SecretKind, String, Rule.Scope, Condition)] = [
        (.awsAccessKey, #"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"#, .both, .always),
        (.awsCredential, #"(?i)\bCredential=([^/,\s&%]+)"#, .both, .always),
        (.awsSignature, #"(?i)[?&]X-Amz-Signature=([0-9a-f]+)"#, .both, .always),
        (.awsSecurityToken, #"(?i)[?&]X-Amz-Security-Token=([^&\s#]+)"#, .both, .always),
        // The block up to its END line, or 16 KiB of it without one, so that an excerpt masks the key material
        // rather than print it as context after a masked header.
        (
            .privateKey,
            #"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----(?:(?!-----END )[\x00-\xff]){0,16384}(?:-----END [A-Z ]{0,40}PRIVATE KEY-----)?"#,
            .both, .always
        ),
        (.jwt, #"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"#, .both, .always),
        (.bearerToken, #"Bearer [A-Za-z0-9._~+/=-]{8,}"#, .both, .always),
        // An initial response on the AUTH line itself: `AUTH PLAIN AHVzZXIAcGFzcw==`, `AUTH LOGIN dXNlcg==`.
        (.smtpAuth, #"(?im)^AUTH +[A-Z0-9_-]+ +([A-Za-z0-9+/]+={0,2})\r?$"#, .client, .upstreamSpokeFirst),
        // What the client answers a `334` challenge with: a user name, a password, a token.
        (.smtpAuth, #"(?m)^([A-Za-z0-9+/]+={0,2})\r?$"#, .client, .afterChallenge),
    ]
}
