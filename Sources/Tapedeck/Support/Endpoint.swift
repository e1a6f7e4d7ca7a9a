import NIOCore

/// Where a listener binds or where an upstream lives: a TCP host and port, a UDP host and port, or a Unix domain
/// socket path.
///
/// The textual forms are `HOST:PORT`, `[IPv6]:PORT`, `hostname:PORT` and `unix:/path/to.sock` for streams, and
/// `udp:HOST:PORT` or `udp:[IPv6]:PORT` for datagrams. Port 0 asks the operating system for a free port when
/// listening.
///
/// ```swift
/// let listen = try Endpoint(parsing: "127.0.0.1:0")
/// let upstream = try Endpoint(parsing: "[::1]:5432")
/// let socket = try Endpoint(parsing: "unix:/tmp/app.sock")
/// let resolver = try Endpoint(parsing: "udp:127.0.0.1:53")
/// ```
public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// A TCP endpoint. `host` is an IP literal (without brackets) or a host name.
    case tcp(host: String, port: Int)
    /// A Unix domain stream socket at a file system path.
    case unix(path: String)
    /// A UDP endpoint: datagrams, not a stream. `host` is an IP literal (without brackets) or a host name.
    case udp(host: String, port: Int)

    /// The prefix that marks a Unix domain socket path.
    static let unixPrefix = "unix:"
    /// The prefix that marks a UDP address.
    static let udpPrefix = "udp:"

    /// Parses the textual form of an endpoint.
    ///
    /// - Parameter text: `HOST:PORT`, `[IPv6]:PORT`, `unix:/path` or `udp:HOST:PORT`.
    /// - Throws: ``TapedeckError`` with code `invalidAddress` and a message naming the text.
    public init(parsing text: String) throws {
        func invalid(_ why: String) -> TapedeckError {
            TapedeckError(.invalidAddress, "invalid address '\(text)': \(why)")
        }
        if text.hasPrefix(Self.udpPrefix) {
            let rest = String(text.dropFirst(Self.udpPrefix.count))
            guard !rest.isEmpty else { throw invalid("missing HOST:PORT after 'udp:'") }
            guard case .tcp(let host, let port) = try Endpoint(parsing: rest, original: text) else {
                throw invalid("expected udp:HOST:PORT")
            }
            self = .udp(host: host, port: port)
            return
        }
        try self.init(parsing: text, original: text)
    }

    /// Parses a stream endpoint; `original` is the text to name in errors.
    private init(parsing text: String, original: String) throws {
        func invalid(_ why: String) -> TapedeckError {
            TapedeckError(.invalidAddress, "invalid address '\(original)': \(why)")
        }
        if text.hasPrefix(Self.unixPrefix) {
            let path = String(text.dropFirst(Self.unixPrefix.count))
            guard !path.isEmpty else { throw invalid("missing socket path after 'unix:'") }
            // sockaddr_un.sun_path holds 108 bytes including the terminating NUL on Linux.
            guard path.utf8.count < 108 else { throw invalid("socket path longer than 107 bytes") }
            self = .unix(path: path)
            return
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw invalid("missing ']' after IPv6 address") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw invalid("expected ':PORT' after ']'") }
            portText = rest.dropFirst()
            guard !host.isEmpty, host.contains(":") else { throw invalid("brackets must hold an IPv6 address") }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw invalid("expected HOST:PORT or unix:/path") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { throw invalid("put an IPv6 address in brackets, as [::1]:PORT") }
        }
        guard !host.isEmpty else { throw invalid("missing host before ':'") }
        guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
            let port = Int(portText), (0...65535).contains(port)
        else { throw invalid("port must be a number from 0 to 65535") }
        guard
            host.allSatisfy({
                $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" || $0 == "%" || $0 == "_"
            })
        else { throw invalid("host contains characters a host name cannot hold") }
        self = .tcp(host: String(host), port: port)
    }

    /// Creates an endpoint from a resolved socket address, such as the address a listener was bound to.
    public init(_ address: SocketAddress) {
        switch address {
        case .v4, .v6:
            self = .tcp(host: address.ipAddress ?? "?", port: address.port ?? 0)
        case .unixDomainSocket:
            self = .unix(path: address.pathname ?? "")
        }
    }

    /// The textual form, which ``init(parsing:)`` reads back.
    public var description: String {
        switch self {
        case .tcp(let host, let port):
            return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path):
            return Self.unixPrefix + path
        case .udp(let host, let port):
            return Self.udpPrefix + Endpoint.tcp(host: host, port: port).description
        }
    }

    /// The host of a TCP or UDP endpoint (an IPv6 address without brackets); `nil` for a Unix socket.
    public var host: String? {
        switch self {
        case .tcp(let host, _), .udp(let host, _): return host
        case .unix: return nil
        }
    }

    /// The port of a TCP or UDP endpoint; `nil` for a Unix socket.
    public var port: Int? {
        switch self {
        case .tcp(_, let port), .udp(_, let port): return port
        case .unix: return nil
        }
    }

    /// Whether the endpoint carries datagrams (UDP) rather than a stream (TCP or a Unix socket).
    public var isDatagram: Bool {
        if case .udp = self { return true }
        return false
    }

    /// The same host and port as a datagram (UDP) endpoint; a Unix socket unchanged.
    var asDatagram: Endpoint {
        if case .tcp(let host, let port) = self { return .udp(host: host, port: port) }
        return self
    }

    /// The path of a Unix socket endpoint; `nil` for TCP.
    public var path: String? {
        guard case .unix(let path) = self else { return nil }
        return path
    }

    /// Whether this endpoint is reachable only from this machine: a loopback IP or a Unix socket.
    ///
    /// Host names other than `localhost` count as not loopback, since they may resolve anywhere.
    public var isLoopback: Bool {
        switch self {
        case .unix:
            return true
        case .tcp(let host, _), .udp(let host, _):
            if host == "localhost" { return true }
            guard let address = try? SocketAddress(ipAddress: host, port: 0) else { return false }
            switch address {
            case .v4(let v4):
                // 127.0.0.0/8, in network byte order.
                return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
            case .v6:
                return host == "::1" || host.lowercased() == "0:0:0:0:0:0:0:1"
            case .unixDomainSocket:
                return true
            }
        }
    }

    /// Whether the host is an IP literal, which can be turned into a socket address without a resolver.
    var literalAddress: SocketAddress? {
        switch self {
        case .tcp(let host, let port), .udp(let host, let port):
            return try? SocketAddress(ipAddress: host, port: port)
        case .unix(let path):
            return try? SocketAddress(unixDomainSocketPath: path)
        }
    }
}
