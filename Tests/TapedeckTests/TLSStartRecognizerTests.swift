import Foundation
import Testing

@testable import Tapedeck

/// Where TLS starts, recognized in byte streams split anywhere.
struct TLSStartRecognizerTests {
    enum Side { case client, upstream }
    typealias Message = (Side, [UInt8])

    static func text(_ side: Side, _ string: String) -> Message { (side, Array(string.utf8)) }

    static let clientHello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]
    static let sslRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]
    static let gssRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x30]

    /// A MySQL server greeting (protocol 10) of `length` payload bytes.
    static func mysqlGreeting(length: Int = 40) -> [UInt8] {
        [UInt8(length), 0, 0, 0, 10] + Array(repeating: 0x41, count: length - 1)
    }

    /// A MySQL client's first packet: an SSL request (32 bytes, CLIENT_SSL) or a login.
    static func mysqlClientPacket(ssl: Bool) -> [UInt8] {
        let payload: [UInt8] = (ssl ? [0x00, 0x08] : [0x00, 0x00]) + Array(repeating: 0, count: ssl ? 30 : 40)
        return [UInt8(payload.count), 0, 0, 1] + payload
    }

    static let cases: [(String, [Message], TLSStartRecognizer.Decision)] = [
        ("a ClientHello first", [(.client, clientHello)], .tls(.direct, clientOffset: 0, upstreamOffset: 0)),
        ("HTTP", [text(.client, "GET / HTTP/1.1\r\n\r\n"), text(.upstream, "HTTP/1.1 200 OK\r\n")], .plaintext),
        (
            "PostgreSQL, TLS accepted", [(.client, sslRequest), text(.upstream, "S"), (.client, clientHello)],
            .tls(.postgres, clientOffset: 8, upstreamOffset: 1)
        ),
        (
            "PostgreSQL, TLS refused", [(.client, sslRequest), text(.upstream, "N"), (.client, [0, 0, 0, 9])],
            .plaintext
        ),
        (
            "PostgreSQL, GSS refused, then TLS",
            [(.client, gssRequest), text(.upstream, "N"), (.client, sslRequest), text(.upstream, "S")],
            .tls(.postgres, clientOffset: 16, upstreamOffset: 2)
        ),
        (
            "SMTP STARTTLS",
            [
                text(.upstream, "220 mail.test ESMTP\r\n"), text(.client, "EHLO me\r\n"),
                text(.upstream, "250-mail.test\r\n250 STARTTLS\r\n"), text(.client, "starttls\r\n"),
                text(.upstream, "220 2.0.0 Ready to start TLS\r\n"), (.client, clientHello),
            ],
            .tls(.smtp, clientOffset: 19, upstreamOffset: 21 + 29 + 30)
        ),
        (
            "SMTP, STARTTLS refused",
            [
                text(.upstream, "220 mail.test ESMTP\r\n"), text(.client, "EHLO me\r\n"),
                text(.upstream, "250 mail.test\r\n"),
                text(.client, "STARTTLS\r\n"), text(.upstream, "454 TLS not available\r\n"),
            ],
            .plaintext
        ),
        (
            "MySQL with an SSL request", [(.upstream, mysqlGreeting()), (.client, mysqlClientPacket(ssl: true))],
            .tls(.mysql, clientOffset: 36, upstreamOffset: 44)
        ),
        ("MySQL without TLS", [(.upstream, mysqlGreeting()), (.client, mysqlClientPacket(ssl: false))], .plaintext),
        ("POP3", [text(.upstream, "+OK ready\r\n"), text(.client, "USER a\r\n")], .plaintext),
    ]

    /// Feeds the messages, each cut at `cut` (or whole when it is longer), and returns the decision.
    static func decide(_ messages: [Message], cuttingMessage index: Int?, at cut: Int) -> TLSStartRecognizer.Decision {
        var recognizer = TLSStartRecognizer()
        for (position, (side, bytes)) in messages.enumerated() {
            let pieces =
                position == index && cut > 0 && cut < bytes.count ? [bytes[..<cut], bytes[cut...]] : [bytes[...]]
            for piece in pieces {
                switch side {
                case .client: _ = recognizer.client(Data(piece))
                case .upstream: _ = recognizer.upstream(Data(piece))
                }
            }
        }
        return recognizer.decision
    }

    @Test(arguments: cases.indices)
    func recognizesWhereTLSStartsWithEverySplit(index: Int) {
        let (name, messages, expected) = Self.cases[index]
        #expect(Self.decide(messages, cuttingMessage: nil, at: 0) == expected, "\(name)")
        for (position, message) in messages.enumerated() {
            for cut in 1..<max(1, message.1.count) {
                #expect(
                    Self.decide(messages, cuttingMessage: position, at: cut) == expected,
                    "\(name): message \(position) cut at \(cut)"
                )
            }
        }
    }
}
