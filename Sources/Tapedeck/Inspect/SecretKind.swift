import Foundation

/// What a likely secret found in a tape is: the detector that found it, named as `tapedeck scan` prints it.
///
/// The cases are in order of specificity, most specific first: when two detectors find a secret at the same
/// place (`Authorization: Bearer …` is both an HTTP credential header and a bearer token), the finding keeps the
/// kind that says more.
public enum SecretKind: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// A PEM private key block, from `-----BEGIN … PRIVATE KEY-----` to its `-----END` line.
    case privateKey = "private-key"
    /// An AWS access key id: `AKIA` (long-term) or `ASIA` (temporary) and 16 more capitals and digits.
    case awsAccessKey = "aws-access-key"
    /// An AWS session token: the `X-Amz-Security-Token` header (the `aws-sigv4` preset's rule) or query parameter.
    case awsSecurityToken = "aws-security-token"
    /// An AWS Signature Version 4 signature, in `Authorization` (the `aws-sigv4` preset's rule) or a presigned
    /// URL's `X-Amz-Signature`.
    case awsSignature = "aws-signature"
    /// The access key id in a SigV4 `Credential=` (header or presigned URL), whatever its form: servers that
    /// speak the S3 protocol (MinIO, Ceph) use ids that are not `AKIA…`.
    case awsCredential = "aws-credential"
    /// A JSON Web Token: three base64url parts, the first two JSON objects (`eyJ`).
    case jwt
    /// A PostgreSQL password message, cleartext or MD5 (the `postgres-password` preset's redact rule).
    case postgresPassword = "postgres-password"
    /// The arguments of a Redis `AUTH` or `HELLO … AUTH` (the `redis-auth` preset's redact rules).
    case redisAuth = "redis-auth"
    /// SMTP `AUTH` credentials: an initial response (`AUTH PLAIN <base64>`), or a base64 line the client sends
    /// in answer to a `334` challenge (`AUTH LOGIN`'s user name and password).
    case smtpAuth = "smtp-auth"
    /// `Bearer` and a token, wherever it appears.
    case bearerToken = "bearer-token"
    /// The value of an `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie` or `X-Api-Key` header (the
    /// `http-auth` preset's redact rule).
    case httpAuth = "http-auth"

    public var description: String { rawValue }

    /// The kinds' names, for messages and help.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// Lower is more specific: the position among the cases.
    var specificity: Int { Self.allCases.firstIndex(of: self) ?? Self.allCases.count }

    /// The kind of secret a preset's rule covers, or nil when its spans are not secrets.
    ///
    /// Every redact rule covers a secret, since that is why it redacts. Of the volatile ones only the SigV4
    /// signature and session token are: the rest (dates, UUIDs, request ids, SCRAM nonces and proofs) change on
    /// every request and reveal nothing. The `Credential=` rule's span is the credential scope (date, region,
    /// service), which is not secret either; the access key id before it is found by a detector of its own.
    init?(presetRule rule: Rule) {
        switch (rule.preset, rule.kind) {
        case (RulePreset.httpAuth.rawValue, .redact): self = .httpAuth
        case (RulePreset.redisAuth.rawValue, .redact): self = .redisAuth
        case (RulePreset.postgresPassword.rawValue, .redact): self = .postgresPassword
        case (RulePreset.awsSigV4.rawValue, .volatile) where rule.pattern.contains("^X-Amz-Security-Token:"):
            self = .awsSecurityToken
        case (RulePreset.awsSigV4.rawValue, .volatile) where rule.pattern.contains(#"\bSignature=("#):
            self = .awsSignature
        default: return nil
        }
    }
}
