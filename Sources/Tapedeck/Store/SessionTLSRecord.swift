import GRDB

/// How a session spoke TLS, as the tape keeps it: where TLS started in each direction's stream, what was
/// negotiated, and who the upstream was. Sessions without TLS have no row.
///
/// The streams of a session are always what the client and upstream meant, never ciphertext, except for a
/// session recorded with `--tls off` whose client started TLS (``Mode-swift.enum/undecrypted``): that one holds
/// ciphertext and cannot replay.
public struct SessionTLSRecord: Sendable, Hashable, Codable, FetchableRecord, PersistableRecord {
    /// The table holding these rows.
    public static let databaseTableName = "session_tls"

    /// How Tapedeck took part in the session's TLS.
    public enum Mode: String, Sendable, Hashable, Codable, DatabaseValueConvertible {
        /// TLS both ways, terminated and originated by Tapedeck: the tape holds the plaintext.
        case intercept
        /// TLS from the client only.
        case terminate
        /// TLS toward the upstream only.
        case originate
        /// The client started TLS on a route with `--tls off`: the tape holds ciphertext.
        case undecrypted

        /// Whether the client's side spoke TLS with Tapedeck, so that replay must too.
        public var clientSpeaksTLS: Bool { self == .intercept || self == .terminate }
    }

    /// The session.
    public var sessionID: Int64
    /// How Tapedeck took part.
    public var mode: Mode
    /// The upgrade before TLS: `direct` (TLS from the first byte), `postgres`, `smtp` or `mysql`.
    public var upgrade: String
    /// How many of the client's bytes came before its TLS (the upgrade request).
    public var clientOffset: Int64
    /// How many of the upstream's bytes came before its TLS (the upgrade's answer).
    public var upstreamOffset: Int64
    /// The protocol version negotiated, as `TLSv1.3`.
    public var version: String?
    /// The cipher suite negotiated, by its IANA name.
    public var cipher: String?
    /// The name the client asked for (SNI), if any.
    public var serverName: String?
    /// The application protocol negotiated (ALPN), if any.
    public var applicationProtocol: String?
    /// The subject of the upstream's certificate.
    public var upstreamSubject: String?
    /// The SHA-256 fingerprint of the upstream's certificate, in hex.
    public var upstreamFingerprint: String?
    /// Why the TLS handshake failed, when it did.
    public var failure: String?

    enum CodingKeys: String, CodingKey {
        case mode, upgrade, version, cipher, failure
        case sessionID = "session_id"
        case clientOffset = "client_offset"
        case upstreamOffset = "upstream_offset"
        case serverName = "server_name"
        case applicationProtocol = "alpn"
        case upstreamSubject = "upstream_subject"
        case upstreamFingerprint = "upstream_fingerprint"
    }

    /// One line for `sessions` and `show`: `TLSv1.3 h2 sni=api.example.com`, or why it failed.
    public var summary: String {
        if mode == .undecrypted { return "TLS (undecrypted: record with --tls intercept)" }
        var parts = [version ?? "TLS"]
        if let applicationProtocol { parts.append(applicationProtocol) }
        if let serverName { parts.append("sni=\(serverName)") }
        if upgrade != "direct" { parts.append("after \(upgrade) upgrade") }
        if mode != .intercept { parts.append(mode.rawValue) }
        if let failure { parts.append("failed: \(failure)") }
        return parts.joined(separator: " ")
    }
}
