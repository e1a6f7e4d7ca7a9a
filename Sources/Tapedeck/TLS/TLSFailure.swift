import Foundation
import NIOSSL

/// Turns what BoringSSL and NIOSSL report about a failed handshake into the few words a user needs.
enum TLSFailure {
    /// One line for a TLS error: `certificate verify failed`, `the peer sent alert: unknown ca`, or the error's
    /// own description when nothing better is known.
    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        // BoringSSL's entries read `error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED`.
        if let range = text.range(of: "OPENSSL_internal:", options: .backwards) {
            let reason = text[range.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            return words(String(reason))
        }
        switch error {
        case NIOSSLError.uncleanShutdown: return "the peer closed without ending TLS"
        case let error as NIOSSLExtraError: return "\(error)"
        default: break
        }
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// `TLSV1_ALERT_UNKNOWN_CA` as `the peer sent alert: unknown ca`, other codes as lower-case words.
    private static func words(_ code: String) -> String {
        let lowered = code.lowercased()
        for prefix in ["tlsv1_alert_", "sslv3_alert_"] where lowered.hasPrefix(prefix) {
            return "the peer sent alert: " + lowered.dropFirst(prefix.count).replacingOccurrences(of: "_", with: " ")
        }
        return lowered.replacingOccurrences(of: "_", with: " ")
    }

    /// Whether a failed handshake means the peer did not trust the certificate Tapedeck served.
    static func peerDistrustsCertificate(_ description: String) -> Bool {
        description.contains("unknown ca") || description.contains("bad certificate")
            || description.contains("certificate unknown")
    }
}
