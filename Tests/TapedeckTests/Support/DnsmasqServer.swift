import Foundation

@testable import Tapedeck

#if canImport(Glibc)
import Glibc
#endif

/// A real dnsmasq answering for a small zone, `tapedeck.test`, on a free loopback port (UDP and TCP), in the
/// foreground, started for one test and stopped by its PID.
///
/// It knows only the records below and forwards nothing (no upstream servers, no `/etc/hosts`, no config
/// file): a name in the zone it has no record for is NXDOMAIN.
final class DnsmasqServer: Sendable {
    static let executable = ["/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let dig = ["/usr/bin/dig", "/usr/local/bin/dig"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var isInstalled: Bool { executable != nil && dig != nil }

    /// The zone's records, as dnsmasq options. A fixed TTL (dnsmasq's default for local names is 0), so answers
    /// read the same on every run.
    static let zone = [
        "--local=/tapedeck.test/", "--local-ttl=300",
        "--host-record=www.tapedeck.test,192.0.2.10,2001:db8::10",
        "--host-record=mail.tapedeck.test,192.0.2.25",
        "--mx-host=tapedeck.test,mail.tapedeck.test,10",
        "--txt-record=tapedeck.test,v=spf1 -all",
    ]

    /// One question of each kind the zone answers: A, AAAA, MX, TXT, and a name it does not have.
    static let questions = [
        "www.tapedeck.test/A", "www.tapedeck.test/AAAA", "tapedeck.test/MX", "tapedeck.test/TXT",
        "missing.tapedeck.test/A",
    ]

    /// What `clients/dns_queries.py` prints for ``questions``.
    static let answers = """
        www.tapedeck.test. A NOERROR 192.0.2.10
        www.tapedeck.test. AAAA NOERROR 2001:db8::10
        tapedeck.test. MX NOERROR 10 mail.tapedeck.test.
        tapedeck.test. TXT NOERROR "v=spf1 -all"
        missing.tapedeck.test. A NXDOMAIN -

        """

    let port: Int
    private let process: ChildProcess
    private let directory: TemporaryDirectory

    init() async throws {
        guard let executable = Self.executable else { throw TestProcessError("dnsmasq is not installed") }
        let directory = try TemporaryDirectory()
        self.directory = directory
        // As root dnsmasq would switch to `nobody`, which a container may not have; as anyone else it stays who it is.
        let user = getuid() == 0 ? ["--user=root"] : []
        // It listens on TCP as well as UDP, so a connect tells that it is up.
        (port, process) = try await startListening { port in
            try ChildProcess(
                [
                    executable, "--no-daemon", "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces",
                    "--no-resolv", "--no-hosts", "--no-poll", "--conf-file=/dev/null", "--pid-file=",
                ] + user + Self.zone,
                outputPath: directory.path("dnsmasq.log")
            )
        }
    }

    /// What dnsmasq logged: its start, and why it stopped when it did.
    var log: String { (try? String(contentsOfFile: directory.path("dnsmasq.log"), encoding: .utf8)) ?? "" }

    /// Stops the server by its PID.
    func stop() {
        process.stop(SIGTERM)
    }

    deinit { stop() }

    /// A DNS route over UDP from a free loopback port to this server.
    func dnsRoute(udpIdleTimeout: Duration = Route.defaultUDPIdleTimeout) throws -> Route {
        Route(
            listen: try Endpoint(parsing: "udp:127.0.0.1:0"),
            upstream: .udp(host: "127.0.0.1", port: port),
            dns: true,
            udpIdleTimeout: udpIdleTimeout
        )
    }

    /// Records `dig` asking `questions` through a deck on a UDP route to this server into `tape`; returns what dig
    /// printed (see ``dig(port:_:tcp:)``).
    func recordDig(_ questions: [String], to tape: String) async throws -> String {
        let recorder = try await Deck.start(.record, tape: tape, routes: [try dnsRoute()])
        let recordPort = try UDPEndToEndTests.port(of: recorder.address)
        let answers = try await offThePool { try Self.dig(port: recordPort, questions) }
        _ = try await recorder.stop()
        return answers
    }

    /// Asks `questions` (`NAME/TYPE`) with one `dig` run against 127.0.0.1:`port`, over TCP with `tcp`, one try each
    /// with a few seconds' timeout; returns the header and answer sections with the transaction ids (random per
    /// query) taken out, so that two runs compare equal.
    static func dig(port: Int, _ questions: [String], tcp: Bool = false) throws -> String {
        guard let dig else { throw TestProcessError("dig is not installed") }
        let queries = questions.flatMap { $0.split(separator: "/").map(String.init) }
        let result = try ChildProcess.run(
            [dig, "@127.0.0.1", "-p", "\(port)", "+tries=1", "+time=3", "+noall", "+comments", "+answer"]
                + (tcp ? ["+tcp"] : []) + queries,
            timeout: .seconds(30)
        )
        let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.replacing(/id: [0-9]+/, with: "id: ID")
        }
        return "exit \(result.status)\n" + lines.joined(separator: "\n")
    }
}
