/// The parts of a TLS handshake's first messages that Tapedeck needs, read from the bytes on the wire: the name and
/// protocols a client asks for (SNI and ALPN in its ClientHello), and the version and cipher suite an upstream
/// chose (its ServerHello). Channel-free: given the bytes of a stream's start, it says what they hold, or that
/// more are needed.
///
/// ```swift
/// switch TLSHello.parseClientHello(bytes) {
/// case .complete(let hello): print(hello.serverName ?? "no SNI", hello.applicationProtocols)
/// case .incomplete: break  // read more
/// case .invalid(let why): print(why)
/// }
/// ```
enum TLSHello {
    /// What a client asked for.
    struct ClientHello: Sendable, Hashable {
        /// The host name of the server name indication, if the client sent one.
        var serverName: String?
        /// The ALPN protocols offered, in the client's order.
        var applicationProtocols: [String]
    }

    /// What an upstream chose.
    struct ServerHello: Sendable, Hashable {
        /// The protocol version, as `TLSv1.3`.
        var version: String
        /// The cipher suite's IANA name, as `TLS_AES_128_GCM_SHA256`, or its number in hex when unknown.
        var cipher: String
    }

    /// The outcome of parsing.
    enum Parsed<Message> {
        /// The message, complete.
        case complete(Message)
        /// The bytes so far are a plausible beginning: more are needed.
        case incomplete
        /// The bytes are not this message.
        case invalid(String)
    }

    /// The largest handshake message accepted; a real ClientHello is a few KiB at most.
    static let maximumMessageLength = 64 * 1024

    /// Parses a ClientHello from the first bytes a client sent.
    static func parseClientHello(_ bytes: some Collection<UInt8>) -> Parsed<ClientHello> {
        switch handshakeMessage(Array(bytes), type: 1) {
        case .incomplete: return .incomplete
        case .invalid(let why): return .invalid(why)
        case .complete(let body):
            guard let hello = clientHello(body) else { return .invalid("malformed ClientHello") }
            return .complete(hello)
        }
    }

    /// Parses a ServerHello from the first bytes an upstream sent.
    static func parseServerHello(_ bytes: some Collection<UInt8>) -> Parsed<ServerHello> {
        switch handshakeMessage(Array(bytes), type: 2) {
        case .incomplete: return .incomplete
        case .invalid(let why): return .invalid(why)
        case .complete(let body):
            guard let hello = serverHello(body) else { return .invalid("malformed ServerHello") }
            return .complete(hello)
        }
    }

    /// The body of the first handshake message, gathered from as many handshake records as it spans.
    private static func handshakeMessage(_ bytes: [UInt8], type: UInt8) -> Parsed<[UInt8]> {
        var fragments: [UInt8] = []
        var index = 0
        while true {
            if fragments.count >= 4 {
                let length = Int(fragments[1]) << 16 | Int(fragments[2]) << 8 | Int(fragments[3])
                guard fragments[0] == type else { return .invalid("handshake message of type \(fragments[0])") }
                guard length <= maximumMessageLength else { return .invalid("handshake message of \(length) bytes") }
                if fragments.count >= 4 + length { return .complete(Array(fragments[4..<(4 + length)])) }
            }
            guard bytes.count >= index + 5 else {
                // A record header so far must itself look right.
                if bytes.count > index, bytes[index] != 0x16 { return .invalid("not a TLS handshake record") }
                if bytes.count > index + 1, bytes[index + 1] != 0x03 { return .invalid("not a TLS record version") }
                return .incomplete
            }
            guard bytes[index] == 0x16, bytes[index + 1] == 0x03 else { return .invalid("not a TLS handshake record") }
            let recordLength = Int(bytes[index + 3]) << 8 | Int(bytes[index + 4])
            guard recordLength > 0, recordLength <= 16_384 + 2048 else {
                return .invalid("TLS record of \(recordLength) bytes")
            }
            let end = index + 5 + recordLength
            fragments += bytes[(index + 5)..<min(end, bytes.count)]
            guard end <= bytes.count else {
                // The record is partial; the message may still be whole within what arrived.
                if fragments.count >= 4 {
                    let length = Int(fragments[1]) << 16 | Int(fragments[2]) << 8 | Int(fragments[3])
                    if fragments[0] == type, fragments.count >= 4 + length {
                        return .complete(Array(fragments[4..<(4 + length)]))
                    }
                }
                return .incomplete
            }
            index = end
        }
    }

    /// A cursor over a message body; every read is bounds-checked and fails as nil.
    private struct Reader {
        var bytes: ArraySlice<UInt8>

        mutating func integer(_ width: Int) -> Int? {
            guard bytes.count >= width else { return nil }
            let value = bytes.prefix(width).reduce(0) { $0 << 8 | Int($1) }
            bytes = bytes.dropFirst(width)
            return value
        }

        mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count >= 0, bytes.count >= count else { return nil }
            defer { bytes = bytes.dropFirst(count) }
            return bytes.prefix(count)
        }

        /// A block preceded by its length in `width` bytes.
        mutating func block(_ width: Int) -> Reader? {
            guard let length = integer(width), let body = take(length) else { return nil }
            return Reader(bytes: body)
        }
    }

    private static func clientHello(_ body: [UInt8]) -> ClientHello? {
        var reader = Reader(bytes: body[...])
        guard reader.take(2 + 32) != nil, reader.block(1) != nil, reader.block(2) != nil, reader.block(1) != nil
        else { return nil }
        var hello = ClientHello(serverName: nil, applicationProtocols: [])
        // A ClientHello without extensions is legal (and old).
        guard var extensions = reader.block(2) else { return hello }
        while !extensions.bytes.isEmpty {
            guard let type = extensions.integer(2), var data = extensions.block(2) else { return nil }
            switch type {
            case 0:
                guard var names = data.block(2) else { return nil }
                while !names.bytes.isEmpty {
                    guard let kind = names.integer(1), let name = names.block(2) else { return nil }
                    if kind == 0 { hello.serverName = String(decoding: name.bytes, as: UTF8.self) }
                }
            case 16:
                guard var protocols = data.block(2) else { return nil }
                while !protocols.bytes.isEmpty {
                    guard let name = protocols.block(1) else { return nil }
                    hello.applicationProtocols.append(String(decoding: name.bytes, as: UTF8.self))
                }
            default:
                break
            }
        }
        return hello
    }

    private static func serverHello(_ body: [UInt8]) -> ServerHello? {
        var reader = Reader(bytes: body[...])
        guard let legacyVersion = reader.integer(2), reader.take(32) != nil, reader.block(1) != nil,
            let cipher = reader.integer(2), reader.take(1) != nil
        else { return nil }
        var version = legacyVersion
        if var extensions = reader.block(2) {
            while !extensions.bytes.isEmpty {
                guard let type = extensions.integer(2), var data = extensions.block(2) else { return nil }
                // supported_versions: TLS 1.3 names itself here, the legacy field says 1.2.
                if type == 43, let selected = data.integer(2) { version = selected }
            }
        }
        return ServerHello(version: versionName(version), cipher: cipherName(cipher))
    }

    static func versionName(_ version: Int) -> String {
        switch version {
        case 0x0304: return "TLSv1.3"
        case 0x0303: return "TLSv1.2"
        case 0x0302: return "TLSv1.1"
        case 0x0301: return "TLSv1.0"
        default: return "0x" + String(version, radix: 16)
        }
    }

    /// IANA names of the suites a current client and upstream negotiate; others by number.
    static func cipherName(_ suite: Int) -> String {
        if let name = cipherNames[suite] { return name }
        let digits = String(suite, radix: 16, uppercase: true)
        return "0x" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// The suites' names by number, made once.
    private static let cipherNames: [Int: String] = [
        0x1301: "TLS_AES_128_GCM_SHA256",
        0x1302: "TLS_AES_256_GCM_SHA384",
        0x1303: "TLS_CHACHA20_POLY1305_SHA256",
        0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    ]
}
