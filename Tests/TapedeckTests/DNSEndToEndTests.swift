import Foundation
import Testing

@testable import Tapedeck

/// DNS routes with real resolvers and a real server: `dig` and dnspython (random transaction ids, and names in a
/// random letter case) against dnsmasq serving `tapedeck.test`, recorded, then replayed with dnsmasq stopped; over
/// UDP and over TCP; inspected with `sessions`, `show`, `grep`, `stats` and a pcapng export that tshark dissects.
@Suite(.timeLimit(.minutes(3)))
struct DNSEndToEndTests {
    static let available = DnsmasqServer.isInstalled && PythonFixture.pythonWithDNS != nil

    /// `record` arguments for a DNS route over UDP to dnsmasq on `port`.
    static func udpRoute(to port: Int, tape: String) -> [String] {
        UDPEndToEndTests.udpRoute(to: port, tape: tape) + ["--dns"]
    }

    /// `replay` arguments for a tape of one DNS route over UDP: the tape says that it is DNS.
    static func udpReplay(_ tape: String) -> [String] {
        UDPEndToEndTests.udpReplay(tape) + ["--strict"]
    }

    /// ``DnsmasqServer/answers`` as `resolvers` resolvers print them together, each line marked with its resolver.
    static func answers(resolvers: Int) -> String {
        (0..<resolvers).map { resolver in
            DnsmasqServer.answers.split(separator: "\n").map { "r\(resolver < 10 ? "0" : "")\(resolver) \($0)\n" }
                .joined()
        }.joined()
    }
}

// MARK: - Over UDP

extension DNSEndToEndTests {
    /// dnspython and dig ask for A, AAAA, MX, TXT and a name that does not exist; with dnsmasq stopped, the same
    /// questions (new transaction ids, dnspython's in a random letter case) get the same answers from the tape.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func digAndDnspythonGetTheRecordedAnswersWithDnsmasqStopped() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("dns.tape")
        let questions = DnsmasqServer.questions
        let (recorded, _) = try await UDPEndToEndTests.record(Self.udpRoute(to: dnsmasq.port, tape: tape)) { ports in
            (
                try PythonFixture.dnsQueries(port: ports["default"]!, questions),
                try DnsmasqServer.dig(port: ports["default"]!, questions)
            )
        }
        // What dnsmasq says directly, to compare dig's answers through Tapedeck with.
        let direct = try await offThePool { try DnsmasqServer.dig(port: dnsmasq.port, questions) }
        dnsmasq.stop()
        #expect(recorded.0.status == 0 && recorded.0.stdout == DnsmasqServer.answers, "\(recorded.0)")
        #expect(recorded.1 == direct, "\(recorded.1)")
        #expect(recorded.1.contains("status: NXDOMAIN") && recorded.1.contains("mail.tapedeck.test."), "\(recorded.1)")

        let (replayed, status, stderr) = try await UDPEndToEndTests.replay(Self.udpReplay(tape)) { ports in
            (
                try PythonFixture.dnsQueries(port: ports["default"]!, questions, mixedCase: true),
                try DnsmasqServer.dig(port: ports["default"]!, questions)
            )
        }
        #expect(replayed.0.status == 0 && replayed.0.stdout == DnsmasqServer.answers, "\(replayed.0)")
        #expect(replayed.1 == recorded.1)
        #expect(status == 0, "\(stderr)")
    }

    /// 20 resolvers at once, each on a socket of its own: 20 flows recorded, and 20 resolvers at once served from
    /// the tape.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func twentyConcurrentResolversRecordAndReplay() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("concurrent.tape")
        let expected = Self.answers(resolvers: 20)
        let (recorded, _) = try await UDPEndToEndTests.record(Self.udpRoute(to: dnsmasq.port, tape: tape)) { ports in
            try PythonFixture.dnsQueries(port: ports["default"]!, DnsmasqServer.questions, concurrency: 20)
        }
        dnsmasq.stop()
        #expect(recorded.status == 0 && recorded.stdout == expected, "\(recorded)")
        let sessions = try await UDPEndToEndTests.sessions(tape)
        let flows = sessions.map {
            "\($0["client"] ?? "?") \($0["client_bytes"] ?? "?")→\($0["upstream_bytes"] ?? "?")"
        }
        #expect(sessions.count == 20, "\(flows)")
        #expect(Set(sessions.compactMap { $0["client"] as? String }).count == 20)

        let (replayed, status, stderr) = try await UDPEndToEndTests.replay(Self.udpReplay(tape)) { ports in
            try PythonFixture.dnsQueries(
                port: ports["default"]!,
                DnsmasqServer.questions,
                concurrency: 20,
                mixedCase: true
            )
        }
        #expect(replayed.status == 0 && replayed.stdout == expected, "\(replayed)")
        #expect(status == 0, "\(stderr)")
    }

    /// A question asked more often than recorded is answered again; one never recorded gets SERVFAIL at once (well
    /// before the resolver's timeout) and counts as a mismatch, which fails `--strict`.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func aQuestionNeverRecordedGetsServfailAtOnceAndRepeatsAreAnswered() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("servfail.tape")
        let report = directory.path("report.json")
        let (recorded, _) = try await UDPEndToEndTests.record(Self.udpRoute(to: dnsmasq.port, tape: tape)) { ports in
            try PythonFixture.dnsQueries(port: ports["default"]!, ["www.tapedeck.test/A", "tapedeck.test/TXT"])
        }
        dnsmasq.stop()
        #expect(recorded.status == 0, "\(recorded)")

        let questions = [
            "www.tapedeck.test/A", "www.tapedeck.test/A", "WWW.Tapedeck.TEST/A", "other.tapedeck.test/A",
            "tapedeck.test/TXT",
        ]
        let (replayed, status, stderr) = try await UDPEndToEndTests.replay(
            Self.udpReplay(tape) + ["--report", report]
        ) { ports in
            try PythonFixture.dnsQueries(port: ports["default"]!, questions, wait: 1.5)
        }
        #expect(
            replayed.stdout == """
                www.tapedeck.test. A NOERROR 192.0.2.10
                www.tapedeck.test. A NOERROR 192.0.2.10
                www.tapedeck.test. A NOERROR 192.0.2.10
                other.tapedeck.test. A SERVFAIL -
                tapedeck.test. TXT NOERROR "v=spf1 -all"

                """,
            "\(replayed)"
        )
        #expect(status == 3, "\(stderr)")
        let mismatches = stderr.split(separator: "\n").filter { $0.contains("mismatch") && $0.contains("other") }
        #expect(mismatches.count == 1, "\(stderr)")
        let parsed = try JSONDecoder().decode(ReplayReport.self, from: Data(contentsOf: URL(fileURLWithPath: report)))
        #expect(parsed.mismatches.count == 1, "\(parsed.mismatches)")
    }

    /// A UDP port dnsmasq holds is refused, as a TCP port in use is: Tapedeck must not share it (dnsmasq's socket
    /// allows address reuse) and take some of dnsmasq's queries, answering them with no answer from its upstream.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func aUDPPortDnsmasqHoldsCannotBeListenedOn() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let port = dnsmasq.port
        let proxy = try TapedeckProcess(["proxy", "--listen", "udp:127.0.0.1:\(port)", "--upstream", "udp:127.0.0.1:9"])
        let listened = (try? await proxy.waitForListening(timeout: .seconds(5))) != nil
        #expect(!listened, "Tapedeck listens on udp:127.0.0.1:\(port), which dnsmasq holds: \(proxy.stdout)")
        if listened {
            // Ten resolvers, ten source ports: the kernel spreads them over the sockets that share the port.
            let queries = try await offThePool {
                try PythonFixture.dnsQueries(port: port, ["www.tapedeck.test/A"], concurrency: 10, wait: 1)
            }
            #expect(queries.status == 0, "queries to dnsmasq went to Tapedeck: \(queries.stdout)")
            proxy.signal(SIGTERM)
        }
        let status = try await proxy.waitForExit(timeout: .seconds(10))
        #expect(status == 1, "\(proxy.stderr)")
        #expect(proxy.stderr.contains("cannot listen on udp:127.0.0.1:\(port)"), "\(proxy.stderr)")
    }

    /// `Deck.start` with a route marked `dns: true` records dnspython's questions; a replaying deck, told nothing of
    /// DNS (the tape remembers), answers them in a new letter case with new transaction ids.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func theSwiftAPIRecordsADNSRouteThatTheTapeRemembers() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("api.tape")
        let recorder = try await Deck.start(
            .record,
            tape: tape,
            routes: [try dnsmasq.dnsRoute(udpIdleTimeout: .seconds(5))]
        )
        let recordPort = try UDPEndToEndTests.port(of: recorder.address)
        let recorded = try await offThePool {
            try PythonFixture.dnsQueries(port: recordPort, DnsmasqServer.questions)
        }
        let recording = try await recorder.stop()
        dnsmasq.stop()
        #expect(recorded.stdout == DnsmasqServer.answers, "\(recorded)")
        #expect(recording.recordedSessions == 1)

        let replayer = try await Deck.start(
            .replay,
            tape: tape,
            routes: [Route(listen: try Endpoint(parsing: "udp:127.0.0.1:0"))]
        )
        let replayPort = try UDPEndToEndTests.port(of: replayer.address)
        let replayed = try await offThePool {
            try PythonFixture.dnsQueries(port: replayPort, DnsmasqServer.questions, mixedCase: true)
        }
        let outcome = try await replayer.stop()
        #expect(replayed.stdout == DnsmasqServer.answers, "\(replayed)")
        let report = try #require(outcome.replay)
        #expect(report.mismatches.isEmpty, "\(report.mismatches)")
    }
}

// MARK: - Over TCP

extension DNSEndToEndTests {
    /// `dig +tcp` (a connection per question) and dnspython over TCP (every question on one connection, each with
    /// its two-byte length) on a TCP route marked `--dns`: replayed with new ids and a new letter case.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func digOverTCPOnADNSRouteRecordsAndReplays() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("tcp.tape")
        let questions = DnsmasqServer.questions
        let (recorded, _) = try await UDPEndToEndTests.record([
            "--upstream", "127.0.0.1:\(dnsmasq.port)", "--dns", "--tape", tape,
        ]) { ports in
            (
                try DnsmasqServer.dig(port: ports["default"]!, questions, tcp: true),
                try PythonFixture.dnsQueries(port: ports["default"]!, questions, tcp: true)
            )
        }
        dnsmasq.stop()
        #expect(recorded.0.hasPrefix("exit 0\n") && recorded.0.contains("status: NXDOMAIN"), "\(recorded.0)")
        #expect(recorded.1.status == 0 && recorded.1.stdout == DnsmasqServer.answers, "\(recorded.1)")

        let (replayed, status, stderr) = try await UDPEndToEndTests.replay(["--tape", tape, "--strict"]) { ports in
            (
                try DnsmasqServer.dig(port: ports["default"]!, questions, tcp: true),
                try PythonFixture.dnsQueries(port: ports["default"]!, questions, tcp: true, mixedCase: true)
            )
        }
        #expect(replayed.0 == recorded.0)
        #expect(replayed.1.status == 0 && replayed.1.stdout == DnsmasqServer.answers, "\(replayed.1)")
        #expect(status == 0, "\(stderr)")
    }

    /// A config file with two DNS routes to the same dnsmasq, `dns: true` on each: one over UDP, one over TCP.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func aConfigFileMarksUDPAndTCPRoutesAsDNS() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("config.tape")
        let config = directory.path("routes.yaml")
        try Data(
            """
            routes:
              - name: dns-udp
                listen: udp:127.0.0.1:0
                upstream: udp:127.0.0.1:\(dnsmasq.port)
                dns: true
              - name: dns-tcp
                listen: 127.0.0.1:0
                upstream: 127.0.0.1:\(dnsmasq.port)
                dns: true

            """.utf8
        ).write(to: URL(fileURLWithPath: config))
        @Sendable func clients(_ ports: [String: Int], mixedCase: Bool) throws -> [PythonFixture.Run] {
            [
                try PythonFixture.dnsQueries(port: ports["dns-udp"]!, DnsmasqServer.questions, mixedCase: mixedCase),
                try PythonFixture.dnsQueries(
                    port: ports["dns-tcp"]!,
                    DnsmasqServer.questions,
                    tcp: true,
                    mixedCase: mixedCase
                ),
            ]
        }
        let (recorded, _) = try await UDPEndToEndTests.record(["--config", config, "--tape", tape], routes: 2) {
            try clients($0, mixedCase: false)
        }
        dnsmasq.stop()
        #expect(recorded.map(\.stdout) == [DnsmasqServer.answers, DnsmasqServer.answers], "\(recorded)")
        let sessions = try await UDPEndToEndTests.sessions(tape)
        #expect(sessions.compactMap { $0["route"] as? String }.sorted() == ["dns-tcp", "dns-udp"], "\(sessions)")

        let (replayed, status, stderr) = try await UDPEndToEndTests.replay(
            ["--config", config, "--tape", tape, "--strict"],
            routes: 2
        ) { try clients($0, mixedCase: true) }
        #expect(replayed.map(\.stdout) == [DnsmasqServer.answers, DnsmasqServer.answers], "\(replayed)")
        #expect(status == 0, "\(stderr)")
    }
}

// MARK: - Inspecting

extension DNSEndToEndTests {
    /// A DNS tape read back: `sessions` lists the flow, `show` decodes the questions and answers, `grep` finds the
    /// names' bytes, `stats` counts the flow, and tshark dissects the pcapng export as DNS.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func inspectingADNSTape() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("inspect.tape")
        let (recorded, _) = try await UDPEndToEndTests.record(Self.udpRoute(to: dnsmasq.port, tape: tape)) { ports in
            try PythonFixture.dnsQueries(port: ports["default"]!, DnsmasqServer.questions)
        }
        let port = dnsmasq.port
        dnsmasq.stop()
        #expect(recorded.stdout == DnsmasqServer.answers, "\(recorded)")

        let listing = try await TapedeckProcess.run(["sessions", tape])
        #expect(listing.status == 0)
        #expect(listing.stdout.split(separator: "\n").count == 2, "a header and one flow: \(listing.stdout)")
        let show = try await TapedeckProcess.run(["show", tape, "1"])
        #expect(show.status == 0, "\(show.stderr)")
        // The names dotted and the addresses as text: on the wire they are length-prefixed labels and raw bytes.
        for decoded in [
            "www.tapedeck.test", "missing.tapedeck.test", "mail.tapedeck.test", "192.0.2.10", "2001:db8::10",
            "NXDOMAIN", "AAAA", "MX", "TXT",
        ] {
            #expect(show.stdout.contains(decoded), "show lacks \(decoded): \(show.stdout.prefix(3_000))")
        }
        let grep = try await TapedeckProcess.run(["grep", tape, "\\x08tapedeck\\x04test"])
        #expect(grep.status == 0, "\(grep.stderr)")
        #expect(grep.stdout.split(separator: "\n").count >= 10, "a question and an answer each: \(grep.stdout)")
        let stats = try await TapedeckProcess.run(["stats", tape])
        #expect(stats.status == 0 && stats.stdout.contains("1 sessions"), "\(stats.stdout)")

        guard let tshark = ExportTests.tshark else { return }
        let capture = directory.path("dns.pcapng")
        let export = try await TapedeckProcess.run(["export", tape, "--format", "pcapng", "--output", capture])
        #expect(export.status == 0 && export.stderr.isEmpty, "\(export.stderr)")
        let fields = try await offThePool {
            try ChildProcess.run([
                tshark, "-r", capture, "-d", "udp.port==\(port),dns", "-Y", "dns", "-T", "fields", "-E", "separator=|",
                "-e", "dns.flags.response", "-e", "dns.qry.name", "-e", "dns.flags.rcode", "-e", "dns.a", "-e",
                "dns.aaaa",
            ])
        }
        let packets = fields.output.split(separator: "\n").filter { $0.hasPrefix("0|") || $0.hasPrefix("1|") }
        #expect(
            packets == [
                "0|www.tapedeck.test|||", "1|www.tapedeck.test|0|192.0.2.10|",
                "0|www.tapedeck.test|||", "1|www.tapedeck.test|0||2001:db8::10",
                // The MX answer carries the mail host's address in its additional section.
                "0|tapedeck.test|||", "1|tapedeck.test|0|192.0.2.25|",
                "0|tapedeck.test|||", "1|tapedeck.test|0||",
                "0|missing.tapedeck.test|||", "1|missing.tapedeck.test|3||",
            ],
            "\(fields.output)"
        )
    }
}
