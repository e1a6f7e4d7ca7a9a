import Foundation

/// How a route treats TLS: whether Tapedeck terminates the client's TLS, originates TLS to the upstream, both, or
/// neither, and how it trusts the upstream.
///
/// ```swift
/// var route = Route(upstream: try Endpoint(parsing: "127.0.0.1:443"))
/// route.tls = TLSSettings(mode: .intercept, upstreamCA: "test-ca.pem")
/// ```
public struct TLSSettings: Sendable, Hashable {
    /// Where a route speaks TLS.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// Bytes pass as they are; a session whose client starts TLS is recorded as ciphertext, which cannot replay.
        case off
        /// TLS from the client is terminated with a certificate for the name it asked for, and TLS is originated to
        /// the upstream: the tape holds the plaintext.
        case intercept
        /// TLS from the client is terminated; the upstream is spoken to in plaintext.
        case terminate
        /// The client speaks plaintext; TLS is originated to the upstream.
        case originate

        /// Whether the client's side of the route speaks TLS.
        public var terminatesClientTLS: Bool { self == .intercept || self == .terminate }
        /// Whether the upstream's side of the route speaks TLS.
        public var originatesUpstreamTLS: Bool { self == .intercept || self == .originate }
    }

    /// The route's mode; `off` by default.
    public var mode: Mode
    /// A PEM file of certificates trusted for the upstream, besides the system's trust store.
    public var upstreamCA: String?
    /// Skip verifying the upstream's certificate.
    public var insecureUpstream: Bool
    /// A PEM certificate (chain) served to clients instead of a leaf signed by the local CA; needs ``key``.
    public var certificate: String?
    /// The PEM private key of ``certificate``.
    public var key: String?

    /// Plain relaying: no TLS of Tapedeck's own.
    public static let off = TLSSettings(mode: .off)

    /// Creates settings; only `mode` is needed, the rest have safe defaults (verify the upstream, serve leaves of
    /// the local CA).
    public init(
        mode: Mode,
        upstreamCA: String? = nil,
        insecureUpstream: Bool = false,
        certificate: String? = nil,
        key: String? = nil
    ) {
        self.mode = mode
        self.upstreamCA = upstreamCA
        self.insecureUpstream = insecureUpstream
        self.certificate = certificate
        self.key = key
    }

    /// Checks what can be checked before serving: a certificate comes with its key, and the files exist.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidConfiguration`, one line naming the problem.
    func validate(route: String) throws {
        func invalid(_ why: String) -> TapedeckError {
            TapedeckError(.invalidConfiguration, "route '\(route)': \(why)")
        }
        if (certificate == nil) != (key == nil) {
            throw invalid("--cert and --key go together: give both, or neither to use the local CA")
        }
        for (flag, path) in [("--upstream-ca", upstreamCA), ("--cert", certificate), ("--key", key)] {
            guard let path else { continue }
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw invalid("\(flag) '\(path)': no such readable file")
            }
        }
        if mode == .off, upstreamCA != nil || insecureUpstream || certificate != nil {
            throw invalid("TLS options need --tls intercept, terminate or originate")
        }
    }
}
