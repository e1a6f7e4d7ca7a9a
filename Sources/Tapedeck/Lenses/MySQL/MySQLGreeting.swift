/// The greeting a MySQL or MariaDB server sends first (`HandshakeV10`): its version, the connection's id, the
/// random salt the client's auth response answers, and what the server can do.
///
/// Replay sends a recorded greeting before it knows which session the client will follow; since it accepts the
/// auth response whatever salt it answers, the greeting's salt and connection id bind the connection to nothing.
struct MySQLGreeting: Sendable, Hashable {
    /// The server's version text, as `5.5.5-10.11.19-MariaDB`.
    var serverVersion: [UInt8]
    var connectionID: UInt32
    /// The salt, both parts joined (20 bytes for `mysql_native_password`), without its terminating zero.
    var salt: [UInt8]
    /// The capability flags (MariaDB's extended ones in the upper 32 bits).
    var capabilities: UInt64
    var characterSet: UInt8
    var status: UInt16
    /// The default authentication plugin, when the server names one.
    var authPlugin: [UInt8]?

    /// Reads a greeting's payload; nil for anything else (an error packet, as a server refusing the connection
    /// sends first, or a protocol other than version 10).
    init?(_ payload: [UInt8]) {
        var reader = MySQLReader(payload)
        guard reader.integer(width: 1) == 10, let version = reader.nulTerminated(),
            let connectionID = reader.integer(width: 4), let saltStart = reader.bytes(8),
            reader.integer(width: 1) == 0, let low = reader.integer(width: 2)
        else { return nil }
        serverVersion = version
        self.connectionID = UInt32(connectionID)
        salt = saltStart
        capabilities = low
        characterSet = 0
        status = 0
        guard reader.remaining > 0 else { return }
        guard let characterSet = reader.integer(width: 1), let status = reader.integer(width: 2),
            let high = reader.integer(width: 2), let saltLength = reader.integer(width: 1),
            let reserved = reader.bytes(10)
        else { return nil }
        self.characterSet = UInt8(characterSet)
        self.status = UInt16(status)
        capabilities |= high << 16
        if capabilities & MySQLLoginRequest.Capability.clientMySQL == 0 {
            // MariaDB keeps its extended capabilities in the reserved bytes' last four.
            var extended = MySQLReader(Array(reserved[6..<10]))
            capabilities |= (extended.integer(width: 4) ?? 0) << 32
        }
        if capabilities & MySQLLoginRequest.Capability.secureConnection != 0 {
            // The salt's second part: at least 13 bytes, the last of them a terminating zero.
            let length = max(13, Int(saltLength) - 8)
            guard let rest = reader.bytes(length) else { return nil }
            salt += rest.last == 0 ? rest.dropLast() : rest[...]
        }
        if capabilities & MySQLLoginRequest.Capability.pluginAuth != 0, reader.remaining > 0 {
            authPlugin = reader.nulTerminated() ?? reader.rest()
        }
    }
}
