import Foundation
import Testing

@testable import Tapedeck

extension DriftEndToEndTests {
    /// curl over HTTPS to nginx, recorded with `--tls intercept` and the timestamps preset: drift makes TLS to the
    /// upstream again with the recorded server name, trusting the CA it is given, and finds nothing changed; without
    /// that CA the upstream's certificate is not trusted and the session fails, saying why.
    @Test(.enabled(if: TLSEndToEndTests.nginxAndOpenSSL, "needs nginx, curl and openssl (installed by .ci/run)"))
    func httpsRecordedWithInterceptIsReissuedOverTLS() async throws {
        let setup = try await TLSEndToEndTests.Setup()
        let nginx = try await NginxServer(
            files: ["small.txt": TLSEndToEndTests.small],
            tls: setup.certificates.serverPair
        )
        defer { nginx.stop() }
        let caFile = setup.tapedeckCA
        @Sendable func fetch(_ port: Int) throws -> Data {
            try NginxServer.curl(
                base: "https://localhost:\(port)",
                ["/small.txt"],
                options: ["--cacert", caFile, "--http1.1"] + TLSEndToEndTests.resolving(port)
            ).bodies
        }
        let (body, _) = try await TLSEndToEndTests.record(
            setup.intercept(upstreamPort: nginx.port) + ["--preset", "timestamps"],
            fetch
        )
        #expect(body == TLSEndToEndTests.small)

        let trusted = try await TapedeckProcess.run(
            ["drift", setup.tape, "--upstream-ca", setup.certificates.authority, "--json"]
        )
        let shown = try await TapedeckProcess.run(["show", setup.tape, "1"])
        #expect(trusted.status == 0, "\(trusted)\n\(shown.stdout)")
        let results = try JSONDecoder().decode([DriftResult].self, from: Data(trusted.stdout.utf8))
        #expect(results.map(\.status) == [.unchanged], "\(results)")

        let untrusted = try await TapedeckProcess.run(["drift", setup.tape, "--json", "--timeout", "3s"])
        #expect(untrusted.status == 4, "\(untrusted)")
        let failed = try JSONDecoder().decode([DriftResult].self, from: Data(untrusted.stdout.utf8))
        #expect(failed.map(\.status) == [.failed], "\(failed)")
        #expect(failed.first?.reason?.hasPrefix("TLS with the upstream failed: ") == true, "\(failed)")
    }
}
