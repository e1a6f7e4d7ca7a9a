/// Follows a MySQL or MariaDB connection through its phases, both directions, and says what each client message
/// is, with the form replay compares it on: a channel-free state machine fed the bytes of each side as they come.
///
/// The phases: the server's greeting; the client's login (or first an SSL request, after which the rest is
/// TLS and this stops following); authentication, where the client answers challenges with data derived from the
/// random salt; and commands, each beginning a new sequence at 0, until the connection ends.
///
/// ```swift
/// var conversation = MySQLConversation()
/// try conversation.upstream(greetingBytes)
/// for message in try conversation.client(loginBytes) { print(message.kind) }
/// ```
struct MySQLConversation: Sendable {
    /// What a client message is.
    enum Kind: Sendable, Hashable {
        /// The login, compared on its canonical form (see ``MySQLLoginRequest/canonical``).
        case login(canonical: [UInt8])
        /// The SSL request before a TLS handshake.
        case sslRequest
        /// An answer to an authentication challenge: derived from a random salt, so never compared.
        case authentication
        /// A command (`COM_QUERY`, `COM_STMT_PREPARE`, …), compared on its payload.
        case command(payload: [UInt8])
        /// A message this state machine cannot place (the client spoke before the greeting, say): compared on its
        /// payload, byte for byte, as without a lens.
        case unknown(payload: [UInt8])
    }

    /// A client message: what it is, and its packet as sent.
    struct Message: Sendable, Hashable {
        var kind: Kind
        var packet: MySQLPacket
    }

    /// Where the connection is.
    enum Phase: Sendable, Hashable {
        case awaitingGreeting
        case awaitingLogin
        case authenticating
        case commands
        /// TLS began after an SSL request: the bytes are no longer MySQL packets in the clear.
        case encrypted
        /// The server refused the login, or a stream made no sense as MySQL.
        case ended
    }

    private(set) var phase: Phase = .awaitingGreeting
    /// The greeting, once seen.
    private(set) var greeting: MySQLGreeting?
    private var clientFramer = MySQLPacketFramer()
    private var upstreamFramer = MySQLPacketFramer()

    init() {}

    /// The client's next bytes: the messages they complete.
    ///
    /// - Throws: ``MySQLPacketFramer/TooLong`` for a message too long to follow.
    mutating func client(_ bytes: some Collection<UInt8>) throws -> [Message] {
        guard phase != .encrypted else { return [] }
        return try clientFramer.feed(bytes).map { packet in
            Message(kind: classify(packet), packet: packet)
        }
    }

    /// The upstream's next bytes: moves the phase on (greeting seen, authentication over).
    ///
    /// - Returns: The upstream's messages these bytes complete.
    mutating func upstream(_ bytes: some Collection<UInt8>) throws -> [MySQLPacket] {
        guard phase != .encrypted else { return [] }
        let packets = try upstreamFramer.feed(bytes)
        for packet in packets { observe(packet) }
        return packets
    }

    private mutating func classify(_ packet: MySQLPacket) -> Kind {
        switch phase {
        case .awaitingLogin:
            if MySQLLoginRequest.isSSLRequest(packet.payload) {
                phase = .encrypted
                return .sslRequest
            }
            guard let login = MySQLLoginRequest(packet.payload) else { return .unknown(payload: packet.payload) }
            phase = .authenticating
            return .login(canonical: login.canonical)
        case .authenticating:
            return .authentication
        case .commands:
            return .command(payload: packet.payload)
        case .awaitingGreeting, .encrypted, .ended:
            return .unknown(payload: packet.payload)
        }
    }

    private mutating func observe(_ packet: MySQLPacket) {
        let first = packet.payload.first
        switch phase {
        case .awaitingGreeting:
            if let greeting = MySQLGreeting(packet.payload) {
                self.greeting = greeting
                phase = .awaitingLogin
            } else {
                // An error packet instead of a greeting (too many connections, a host not allowed).
                phase = .ended
            }
        case .authenticating:
            // OK ends authentication; ERR ends the connection; an auth switch (0xFE) or more data (0x01) is a
            // challenge the client answers.
            if first == 0x00 {
                phase = .commands
            } else if first == 0xFF {
                phase = .ended
            }
        case .awaitingLogin, .commands, .encrypted, .ended:
            break
        }
    }
}
