import Foundation

/// Ready-made rules for what users hit first. Each preset's rules, and the bytes they cover, are listed in
/// `docs/rules.md`.
public enum RulePreset: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Redacts the values of `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie` and `X-Api-Key`
    /// headers, both ways.
    case httpAuth = "http-auth"
    /// Marks as volatile what AWS Signature Version 4 changes on every request: `X-Amz-Date`, the credential
    /// scope and signature in `Authorization`, `X-Amz-Security-Token`, `amz-sdk-invocation-id`,
    /// `amz-sdk-request`, the list of SDK features in `User-Agent` (`m/…`), and the same values in presigned URLs.
    case awsSigV4 = "aws-sigv4"
    /// Marks UUIDs (8-4-4-4-12 hex digits) as volatile.
    case uuid
    /// Marks ISO 8601 date-times, RFC 1123 dates, and 10 and 13 digit Unix epochs (seconds and milliseconds
    /// from 2001 to 2033) as volatile.
    case timestamps
    /// Redacts the arguments of Redis `AUTH` and `HELLO … AUTH`, in RESP and inline form.
    case redisAuth = "redis-auth"
    /// Redacts the PostgreSQL password message (cleartext or MD5), and marks the client's SCRAM-SHA-256 nonce
    /// and proof as volatile. Its secret, `postgres-password`, is what replay needs to answer a SCRAM login.
    case postgresPassword = "postgres-password"

    public var description: String { rawValue }

    /// The presets' names, for messages.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// Parses a preset's name.
    ///
    /// - Throws: ``TapedeckError`` listing the presets, for any other name.
    public init(parsing name: String) throws {
        guard let preset = RulePreset(rawValue: name) else {
            throw TapedeckError(.invalidArgument, "unknown preset '\(name)': use one of \(Self.names)")
        }
        self = preset
    }

    /// The secret named by the PostgreSQL preset: the password that replay of a SCRAM login needs.
    public static let postgresPasswordSecret = "postgres-password"

    /// The preset's rules.
    public var rules: [Rule] {
        let name = rawValue
        switch self {
        case .httpAuth:
            return [
                Rule(
                    preset: name,
                    .redact,
                    #"(?im)^(?:Authorization|Proxy-Authorization|Cookie|Set-Cookie|X-Api-Key):[ \t]*([^\r\n]+)"#
                )
            ]
        case .awsSigV4:
            return [
                Rule(preset: name, .volatile, #"(?im)^X-Amz-Date:[ \t]*([^\r\n]+)"#, scope: .client),
                Rule(preset: name, .volatile, #"(?i)\bCredential=[^/,\s]+/([^,\s]+)"#, scope: .client),
                Rule(preset: name, .volatile, #"(?i)\bSignature=([0-9a-f]+)"#, scope: .client),
                Rule(preset: name, .volatile, #"(?im)^X-Amz-Security-Token:[ \t]*([^\r\n]+)"#, scope: .client),
                Rule(preset: name, .volatile, #"(?im)^amz-sdk-invocation-id:[ \t]*([^\r\n]+)"#, scope: .client),
                Rule(preset: name, .volatile, #"(?im)^amz-sdk-request:[ \t]*([^\r\n]+)"#, scope: .client),
                // The SDK's user agent lists the features it used (`m/E,N,a,…`): a set, whose order varies from
                // process to process.
                Rule(preset: name, .volatile, #"(?im)^User-Agent:[^\r\n]* m/([A-Za-z0-9,+_-]+)"#, scope: .client),
                Rule(
                    preset: name,
                    .volatile,
                    #"(?i)[?&]X-Amz-(?:Date|Signature|Credential|Security-Token|Expires)=([^&\s#]+)"#,
                    scope: .client
                ),
            ]
        case .uuid:
            return [
                Rule(
                    preset: name,
                    .volatile,
                    #"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"#
                )
            ]
        case .timestamps:
            return [
                Rule(
                    preset: name,
                    .volatile,
                    #"\b[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?"#
                ),
                Rule(preset: name, .volatile, #"\b[0-9]{8}T[0-9]{6}Z\b"#),
                Rule(
                    preset: name,
                    .volatile,
                    #"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"#
                ),
                Rule(preset: name, .volatile, #"\b1[0-9]{9}(?:[0-9]{3})?\b"#),
            ]
        case .redisAuth:
            return [
                Rule(
                    preset: name,
                    .redact,
                    #"(?i)\*[23]\r\n\$4\r\nAUTH\r\n\$[0-9]+\r\n([^\r]*)\r\n(?:\$[0-9]+\r\n([^\r]*)\r\n)?"#,
                    scope: .client
                ),
                Rule(
                    preset: name,
                    .redact,
                    #"(?i)\$5\r\nHELLO\r\n\$[0-9]+\r\n[0-9]+\r\n\$4\r\nAUTH\r\n\$[0-9]+\r\n([^\r]*)\r\n\$[0-9]+\r\n([^\r]*)\r\n"#,
                    scope: .client
                ),
                Rule(preset: name, .redact, #"(?im)^AUTH +([^\r\n]+)"#, scope: .client),
            ]
        case .postgresPassword:
            return [
                // PasswordMessage: 'p', a length, a NUL-terminated password (cleartext or "md5" + 32 hex digits).
                // The SASL messages share the 'p' tag; their first bytes are excluded here and made volatile below.
                Rule(
                    preset: name,
                    .redact,
                    #"p\x00\x00[\x00-\xff]{2}(?!SCRAM-|[nyp][=a-z-]*,[^,\x00]*,|c=)([^\x00]+)\x00"#,
                    scope: .client,
                    secret: Self.postgresPasswordSecret
                ),
                // SCRAM client-first-message: the client's random nonce. The message is framed by a length, not
                // ended: the nonce ends where the client's next message ('p' and a length's zero byte) or its bytes
                // so far do.
                Rule(
                    preset: name,
                    .volatile,
                    #"[nyp][=a-z-]*,[^,\x00]*,n=[^,\x00]*,r=([\x21-\x2b\x2d-\x7e]+?)(?=p\x00|\z)"#,
                    scope: .client
                ),
                // SCRAM client-final-message: the combined nonce and the proof (a SHA-256 digest: 44 base64
                // characters, which keeps the next message's tag out of it).
                Rule(
                    preset: name,
                    .volatile,
                    #"c=[A-Za-z0-9+/=]+,r=([\x21-\x2b\x2d-\x7e]+),p=([A-Za-z0-9+/]{43}=)"#,
                    scope: .client
                ),
            ]
        }
    }

    /// The cheap tests of a preset's rule (see ``BytePattern``), or nil to derive them from its expression.
    static func tests(of rule: Rule) -> (required: BytePattern.Required, tail: BytePattern.Tail)? {
        func headers(_ names: [String]) -> (required: BytePattern.Required, tail: BytePattern.Tail) {
            // The newline before a header may be in bytes already released: required without it, held with it.
            let lines = names.map { Array(("\n" + $0.lowercased() + ":").utf8) }
            return (
                .anyOf(lines.map { Array($0.dropFirst()) }, caseInsensitive: true),
                .literals(lines, caseInsensitive: true)
            )
        }
        switch rule.preset {
        case RulePreset.uuid.rawValue:
            return (.uuidShape, .run(.uuid, maximum: 36))
        case RulePreset.timestamps.rawValue:
            // One cheap test per expression, so that digits alone (a key, a counter) run none of them.
            let tail = BytePattern.Tail.run(.timestamp, maximum: 35)
            if rule.pattern.contains("GMT") { return (.anyOf([Array(" GMT".utf8)], caseInsensitive: false), .none) }
            if rule.pattern.contains("T[0-9]{6}Z") { return (.compactTimestamp, tail) }
            if rule.pattern.contains("1[0-9]{9}") { return (.epoch, tail) }
            return (.isoDate, tail)
        case RulePreset.httpAuth.rawValue:
            return headers(["Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key"])
        case RulePreset.awsSigV4.rawValue:
            for name in [
                "X-Amz-Date", "X-Amz-Security-Token", "amz-sdk-invocation-id", "amz-sdk-request", "User-Agent",
            ]
            where rule.pattern.contains("^\(name):") {
                return headers([name])
            }
            for literal in ["Credential=", "Signature=", "X-Amz-"] where rule.pattern.contains(literal) {
                let bytes = Array(literal.lowercased().utf8)
                return (.anyOf([bytes], caseInsensitive: true), .literals([bytes], caseInsensitive: true))
            }
            return nil
        case RulePreset.redisAuth.rawValue:
            return (
                .anyOf([Array("auth".utf8)], caseInsensitive: true),
                .literals(
                    [Array("\r\nauth".utf8), Array("*2\r\n$4\r\nauth".utf8), Array("*3\r\n$4\r\nauth".utf8)],
                    caseInsensitive: true
                )
            )
        default:
            return nil
        }
    }
}
