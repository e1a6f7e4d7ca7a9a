import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` on a free loopback port, started for one test and stopped by its PID; speaking only TLS on
/// that port when given a certificate.
final class RedisServer: Sendable {
    static let executable = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let client = ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static var isInstalled: Bool { executable != nil && client != nil }

    let port: Int
    /// The password clients must give (`AUTH`), if the server asks for one.
    let password: String?
    private let process: ChildProcess

    /// Starts the server; with a `password`, it refuses commands until a client authenticates (`--requirepass`).
    /// With `tls`, its port speaks TLS with that PEM certificate and key (`--tls-port`), signed by the CA in
    /// `authority`, and it has no plaintext port; clients need not show certificates of their own.
    init(password: String? = nil, tls: (certificate: String, key: String, authority: String)? = nil) async throws {
        guard let executable = Self.executable else { throw TestProcessError("redis-server is not installed") }
        self.password = password
        let authentication = password.map { ["--requirepass", $0] } ?? []
        (port, process) = try await startListening { port in
            let ports =
                tls.map {
                    [
                        "--port", "0", "--tls-port", "\(port)", "--tls-cert-file", $0.certificate, "--tls-key-file",
                        $0.key, "--tls-ca-cert-file", $0.authority, "--tls-auth-clients", "no",
                    ]
                } ?? ["--port", "\(port)"]
            return try ChildProcess(
                [executable] + ports + [
                    "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
                ] + authentication
            )
        }
    }

    /// Whether redis was built with TLS (Debian's is): its `redis-cli` then lists `--tls` among its options.
    static let supportsTLS: Bool = {
        guard isInstalled, let client else { return false }
        return (try? ChildProcess.run([client, "--help"], timeout: .seconds(10)))?.output.contains("--tls") ?? false
    }()

    /// Stops the server by its PID.
    func stop() {
        process.stop(SIGTERM)
    }

    deinit { stop() }

    /// Runs `redis-cli` against `port` with `arguments`, returning its output; with a `password`, it
    /// authenticates first (`-a`, without the warning that a password on the command line is visible); with
    /// `tlsAuthority`, it speaks TLS and trusts only the PEM certificates in that file (`--tls --cacert`).
    static func cli(
        port: Int,
        password: String? = nil,
        tlsAuthority: String? = nil,
        _ arguments: [String]
    ) throws -> String {
        guard let client else { throw TestProcessError("redis-cli is not installed") }
        let authentication = password.map { ["-a", $0, "--no-auth-warning"] } ?? []
        let tls = tlsAuthority.map { ["--tls", "--cacert", $0] } ?? []
        return try ChildProcess.run(
            [client, "-h", "127.0.0.1", "-p", "\(port)"] + tls + authentication + arguments,
            timeout: .seconds(30)
        ).output
    }
}

struct TestProcessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A port that was free a moment ago, for TCP and for UDP, below the kernel's range for binds to port 0 and for
/// connections' source ports.
///
/// Below that range, nothing takes the port between this check and the bind of the server it is for, nor while a
/// test has closed a listener to open it again on the same port: neither a bind to port 0 (in this process or any
/// other, such as a `tapedeck` a test started) nor a client's source port can get it. Ports already handed out in
/// this run are never handed out again. The sockets of the check are bound, never listening: a child forked at that
/// moment holds them until it closes our descriptors, and a listening socket held so would accept the connect that
/// tells a server is up, though the server itself found the port busy and exited. Servers such as dnsmasq bind the
/// port for both protocols, so it must be free for both.
enum FreePort {
    private static let handedOut = NIOLockedValueBox(Set<Int>())

    /// The kernel's ports for binds to port 0 and source ports begin here.
    private static let ephemeralLow: Int = {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32_768
    }()

    static func find() async throws -> Int {
        let candidates = ephemeralLow > 12_000 ? 10_000..<ephemeralLow : 2_000..<max(ephemeralLow, 2_001)
        for _ in 0..<200 {
            let port = Int.random(in: candidates)
            guard bind(SOCK_STREAM, port: port) != nil, bind(SOCK_DGRAM, port: port) != nil else { continue }
            if handedOut.withLockedValue({ $0.insert(port).inserted }) { return port }
        }
        throw TestProcessError("no free port below \(ephemeralLow) found")
    }

    /// Binds a socket of `type` to 127.0.0.1:`port`, closes it and returns the port, or nil if it could not bind.
    private static func bind(_ type: __socket_type, port: Int) -> Int? {
        let descriptor = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var address = loopbackAddress(port: port)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }
}
