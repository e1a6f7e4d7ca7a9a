/// A client's login to MySQL or MariaDB (`HandshakeResponse41`): who logs in, to which database, how, and the
/// connect attributes the client library sends about itself.
///
/// Replay matches a login on ``canonical``: the packet without what differs from one run of the same client to
/// the next. The auth response answers the greeting's random salt, so it always differs, and replay accepts it
/// whatever it is (it does not check passwords); some connect attributes name the client's process or thread.
///
/// ```swift
/// if let login = MySQLLoginRequest(payload) {
///     print(login.user, login.database ?? "-", login.attributes)
/// }
/// ```
struct MySQLLoginRequest: Sendable, Hashable {
    /// The capability flags the client asked for (MariaDB's extended flags in the upper 32 bits).
    var capabilities: UInt64
    var maximumPacketSize: UInt32
    var characterSet: UInt8
    /// The user name's bytes.
    var user: [UInt8]
    /// The client's answer to the server's challenge (a password hash for `mysql_native_password`).
    var authResponse: [UInt8]
    /// The database to use, when the client named one.
    var database: [UInt8]?
    /// The authentication plugin the client used, when it said.
    var authPlugin: [UInt8]?
    /// The connect attributes, in the order sent.
    var attributes: [(key: [UInt8], value: [UInt8])]

    /// Capability flags that shape the packet.
    enum Capability {
        static let connectWithDatabase: UInt64 = 0x0000_0008
        static let protocol41: UInt64 = 0x0000_0200
        static let ssl: UInt64 = 0x0000_0800
        static let secureConnection: UInt64 = 0x0000_8000
        static let pluginAuth: UInt64 = 0x0008_0000
        static let connectAttributes: UInt64 = 0x0010_0000
        static let lengthEncodedAuthData: UInt64 = 0x0020_0000
        /// Set by MySQL clients; a MariaDB client clears it and sends extended capabilities in the filler.
        static let clientMySQL: UInt64 = 0x0000_0001
    }

    /// Connect attributes that name the client's process, thread or program, which differ from one run of the
    /// same test to the next.
    static let volatileAttributes: Set<[UInt8]> = Set(
        [
            // The client's process and thread.
            "_pid", "_thread",
            // The machine the tests run on, and the host name they connected to: a tape recorded on a laptop
            // replays in CI, where both differ.
            "_source_host", "_server_host", "_os", "_platform",
            // The client library's version, which a CI image may have newer than the machine that recorded.
            "_client_version", "_connector_version", "_runtime_version",
        ].map { Array($0.utf8) }
    )

    /// The length of the fixed part: capabilities, maximum packet size, character set and 23 bytes of filler.
    static let fixedLength = 32

    static func == (left: MySQLLoginRequest, right: MySQLLoginRequest) -> Bool {
        left.capabilities == right.capabilities && left.maximumPacketSize == right.maximumPacketSize
            && left.characterSet == right.characterSet && left.user == right.user
            && left.authResponse == right.authResponse && left.database == right.database
            && left.authPlugin == right.authPlugin && left.attributes.elementsEqual(right.attributes, by: ==)
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(capabilities)
        hasher.combine(user)
        hasher.combine(database)
    }

    /// Reads a login packet's payload; nil for anything else, including the short SSL request that comes before a
    /// login over TLS (see ``isSSLRequest(_:)``).
    init?(_ payload: [UInt8]) {
        var reader = MySQLReader(payload)
        guard payload.count > Self.fixedLength, let low = reader.integer(width: 4),
            low & Capability.protocol41 != 0, let maximum = reader.integer(width: 4),
            let characterSet = reader.integer(width: 1), let filler = reader.bytes(23)
        else { return nil }
        var capabilities = low
        if low & Capability.clientMySQL == 0 {
            // MariaDB keeps its extended capabilities in the filler's last four bytes.
            var extended = MySQLReader(Array(filler[19..<23]))
            capabilities |= (extended.integer(width: 4) ?? 0) << 32
        }
        guard let user = reader.nulTerminated() else { return nil }
        let authResponse: [UInt8]?
        if capabilities & Capability.lengthEncodedAuthData != 0 {
            authResponse = reader.lengthEncodedString()
        } else if capabilities & Capability.secureConnection != 0 {
            authResponse = reader.integer(width: 1).flatMap { reader.bytes(Int($0)) }
        } else {
            authResponse = reader.nulTerminated()
        }
        guard let authResponse else { return nil }
        var database: [UInt8]?
        if capabilities & Capability.connectWithDatabase != 0, reader.remaining > 0 {
            guard let named = reader.nulTerminated() else { return nil }
            database = named
        }
        var authPlugin: [UInt8]?
        if capabilities & Capability.pluginAuth != 0, reader.remaining > 0 {
            // Some clients end the plugin name with the packet rather than a zero byte.
            authPlugin = reader.nulTerminated() ?? reader.rest()
        }
        var attributes: [(key: [UInt8], value: [UInt8])] = []
        if capabilities & Capability.connectAttributes != 0, reader.remaining > 0 {
            guard let total = reader.lengthEncodedInteger(), total <= UInt64(reader.remaining),
                let block = reader.bytes(Int(total))
            else { return nil }
            var pairs = MySQLReader(block)
            while pairs.remaining > 0 {
                guard let key = pairs.lengthEncodedString(), let value = pairs.lengthEncodedString() else { return nil }
                attributes.append((key, value))
            }
        }
        self.capabilities = capabilities
        maximumPacketSize = UInt32(maximum)
        self.characterSet = UInt8(characterSet)
        self.user = user
        self.authResponse = authResponse
        self.database = database
        self.authPlugin = authPlugin
        self.attributes = attributes
    }

    /// Whether `payload` is the SSL request a client sends before its TLS handshake: the login's fixed part alone,
    /// with the SSL capability.
    static func isSSLRequest(_ payload: [UInt8]) -> Bool {
        guard payload.count == fixedLength else { return false }
        var reader = MySQLReader(payload)
        return (reader.integer(width: 4) ?? 0) & Capability.ssl != 0
    }

    /// What replay compares a login on: every field but the auth response, and the connect attributes without
    /// those that name the client's process, thread, machine or library version (``volatileAttributes``), in a fixed layout of its own.
    var canonical: [UInt8] {
        var bytes: [UInt8] = []
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: capabilities >> shift)) }
        for shift in stride(from: 0, to: 32, by: 8) {
            bytes.append(UInt8(truncatingIfNeeded: maximumPacketSize >> shift))
        }
        bytes.append(characterSet)
        for field in [user, database ?? [], authPlugin ?? []] {
            bytes += MySQLReader.lengthEncoded(field.count) + field
        }
        let kept = attributes.filter { !Self.volatileAttributes.contains($0.key) }
        bytes += MySQLReader.lengthEncoded(kept.count)
        for attribute in kept {
            bytes += MySQLReader.lengthEncoded(attribute.key.count) + attribute.key
            bytes += MySQLReader.lengthEncoded(attribute.value.count) + attribute.value
        }
        return bytes
    }
}
