import Foundation

@testable import Tapedeck

/// PostgreSQL protocol 3 messages, built byte for byte for tests that play a server or a client without one.
enum PostgresWire {
    static func int32(_ value: Int) -> [UInt8] {
        withUnsafeBytes(of: Int32(truncatingIfNeeded: value).bigEndian) { Array($0) }
    }

    /// A framed message: the tag, an int32 length that counts itself, the body.
    static func message(_ tag: Character, _ body: [UInt8]) -> [UInt8] {
        [tag.asciiValue!] + int32(4 + body.count) + body
    }

    /// An unframed opening message: an int32 length that counts itself, then an int32 code.
    static func opening(code: Int, _ body: [UInt8] = []) -> [UInt8] {
        int32(8 + body.count) + int32(code) + body
    }

    static let sslRequest = opening(code: 80_877_103)
    static let gssEncryptionRequest = opening(code: 80_877_104)
    static let cancelRequest = opening(code: 80_877_102, int32(42) + int32(7))

    /// A protocol 3.0 StartupMessage.
    static func startup(user: String = "postgres", database: String = "postgres") -> [UInt8] {
        let parameters = ["user", user, "database", database, "application_name", "psql"]
        return opening(code: 196_608, parameters.flatMap { Array($0.utf8) + [0] } + [0])
    }

    /// An Authentication message ('R') with its code and what follows it.
    static func authentication(_ code: Int, _ body: [UInt8] = []) -> [UInt8] {
        message("R", int32(code) + body)
    }

    /// AuthenticationSASL, listing `mechanisms`.
    static func authenticationSASL(_ mechanisms: [String] = [ScramSHA256.mechanism]) -> [UInt8] {
        authentication(10, mechanisms.flatMap { Array($0.utf8) + [0] } + [0])
    }

    /// SASLInitialResponse: the mechanism, then the client-first-message with its length.
    static func saslInitialResponse(_ clientFirst: String, mechanism: String = ScramSHA256.mechanism) -> [UInt8] {
        message("p", Array(mechanism.utf8) + [0] + int32(clientFirst.utf8.count) + Array(clientFirst.utf8))
    }

    /// SASLResponse: the client-final-message.
    static func saslResponse(_ clientFinal: String) -> [UInt8] {
        message("p", Array(clientFinal.utf8))
    }

    /// What a server sends once a login succeeds: AuthenticationOk, a ParameterStatus, BackendKeyData and
    /// ReadyForQuery.
    static let loggedIn =
        authentication(0) + message("S", Array("server_version\u{0}15.18\u{0}".utf8))
        + message("K", int32(4242) + int32(77)) + message("Z", [UInt8(ascii: "I")])
}
