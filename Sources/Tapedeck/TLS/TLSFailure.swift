import Foundation
import NIOCore
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
        // NIOSSL's own entries read `[Error:  EOF during handshake]`.
        if let range = text.range(of: "Error: ") {
            let reason = text[range.upperBound...].prefix { $0 != "]" && $0 != ")" }
                .trimmingCharacters(in: .whitespaces)
            if !reason.isEmpty { return reason.lowercased() }
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

extension TLSFailure {
    /// The names of TLS alerts (RFC 8446, section 6), as the peer's reason for ending a handshake.
    static func alertName(_ code: UInt8) -> String {
        let names: [UInt8: String] = [
            0: "close notify", 10: "unexpected message", 20: "bad record mac", 40: "handshake failure",
            42: "bad certificate", 43: "unsupported certificate", 44: "certificate revoked",
            45: "certificate expired", 46: "certificate unknown", 47: "illegal parameter", 48: "unknown ca",
            49: "access denied", 50: "decode error", 51: "decrypt error", 70: "protocol version",
            71: "insufficient security", 80: "internal error", 90: "user canceled", 109: "missing extension",
            110: "unsupported extension", 112: "unrecognized name", 116: "certificate required",
            120: "no application protocol",
        ]
        return names[code] ?? "alert \(code)"
    }
}

/// Watches the records a peer sends during its handshake for an alert sent in the clear, in front of the TLS
/// handler. A TLS 1.3 client that rejects the certificate it was served (OpenSSL's, so curl, psql and Python)
/// sends its `unknown_ca` alert unencrypted, where the TLS handler expects encrypted records and can only report a
/// bad record MAC; this keeps the peer's real reason.
final class TLSAlertSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// The description of the first alert seen in the clear, if any.
    private(set) var alert: UInt8?
    private var header: [UInt8] = []
    private var bodyLeft = 0
    private var body: [UInt8] = []
    private var isAlert = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if alert == nil { scan(unwrapInboundIn(data).readableBytesView) }
        context.fireChannelRead(data)
    }

    /// Follows record boundaries through `bytes`; only an alert's two bytes are kept.
    private func scan(_ bytes: ByteBufferView) {
        var index = bytes.startIndex
        while index < bytes.endIndex, alert == nil {
            if bodyLeft > 0 {
                let take = min(bodyLeft, bytes.endIndex - index)
                if isAlert { body += bytes[index..<(index + take)] }
                bodyLeft -= take
                index += take
                if bodyLeft == 0, isAlert, body.count == 2 { alert = body[1] }
                continue
            }
            header.append(bytes[index])
            index += 1
            guard header.count == 5 else { continue }
            bodyLeft = Int(header[3]) << 8 | Int(header[4])
            // An alert in the clear is exactly two bytes; an encrypted one is longer.
            isAlert = header[0] == 0x15 && bodyLeft == 2
            body = []
            header = []
        }
    }
}
