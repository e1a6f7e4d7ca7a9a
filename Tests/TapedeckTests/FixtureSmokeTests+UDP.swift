import Foundation
import Testing

@testable import Tapedeck

/// The UDP and DNS fixtures against their real servers, with no Tapedeck between (see `UDPEndToEndTests` and
/// `DNSEndToEndTests` for the same with Tapedeck).
extension FixtureSmokeTests {
    @Test(.enabled(if: PythonFixture.python != nil, "needs python3"))
    func udpClientAgainstTheUDPEchoServer() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        let run = try await offThePool {
            try PythonFixture.udpClient(port: echo.port, sizes: [1, 1_400, 65_507], texts: ["hello"])
        }
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout == "sent 1 echo same\nsent 1400 echo same\nsent 65507 echo same\nsent 5 echo same\n")
    }

    /// The sink counts every datagram of a stream, each distinct, and reports once it has them all.
    @Test(.enabled(if: PythonFixture.python != nil, "needs python3"))
    func statsdSenderIntoTheUDPSink() async throws {
        let sink = try await PythonFixture.UDPSink(expected: 2_000, idle: 3)
        defer { sink.stop() }
        let sent = try await offThePool { try PythonFixture.statsdSender(port: sink.port, count: 2_000, rate: 10_000) }
        #expect(sent.status == 0, "\(sent)")
        let heard = try await sink.count(timeout: .seconds(10))
        #expect(sent.stdout == "sent 2000 \(heard.bytes)\n", "\(sent)")
        #expect(heard.datagrams == 2_000 && heard.distinct == 2_000, "\(heard)")
    }

    /// dnspython over UDP and TCP, in a random letter case, and from several resolvers at once; dig over UDP and
    /// TCP: the zone's answers, NXDOMAIN for a name it lacks. Once stopped, dnsmasq answers no more.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func resolversAgainstDnsmasq() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let port = dnsmasq.port
        let questions = DnsmasqServer.questions
        let runs = try await offThePool {
            [
                try PythonFixture.dnsQueries(port: port, questions),
                try PythonFixture.dnsQueries(port: port, questions, tcp: true, mixedCase: true),
                try PythonFixture.dnsQueries(port: port, questions, concurrency: 3, mixedCase: true),
            ]
        }
        #expect(
            runs.map(\.stdout) == [
                DnsmasqServer.answers, DnsmasqServer.answers, DNSEndToEndTests.answers(resolvers: 3),
            ],
            "\(runs)"
        )
        for tcp in [false, true] {
            let dig = try await offThePool { try DnsmasqServer.dig(port: port, questions, tcp: tcp) }
            #expect(dig.hasPrefix("exit 0\n"), "\(dig)")
            #expect(dig.contains("status: NXDOMAIN") && dig.contains("2001:db8::10"), "\(dig)")
            #expect(!dig.contains(#/id: [0-9]/#), "\(dig)")
        }

        dnsmasq.stop()
        let silent = try await offThePool {
            try PythonFixture.dnsQueries(port: port, ["www.tapedeck.test/A"], wait: 0.5)
        }
        #expect(silent.status == 1 && silent.stdout == "www.tapedeck.test. A TIMEOUT\n", "\(silent)")
    }
}
