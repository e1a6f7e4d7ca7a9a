import Foundation

/// A throwaway certificate authority and a leaf it signed for `localhost` (SAN `DNS:localhost`, `IP:127.0.0.1`),
/// made with the `openssl` command in a temporary directory for one test, for real servers that speak TLS.
///
/// ```swift
/// let certificates = try TestCertificates()
/// let nginx = try await NginxServer(files: files, tls: certificates.serverPair)
/// // record with --upstream-ca certificates.authority
/// ```
final class TestCertificates: Sendable {
    static let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static var isAvailable: Bool { openssl != nil }

    /// The PEM certificate of the test CA: what a client (or Tapedeck, with `--upstream-ca`) trusts the server by.
    let authority: String
    /// The server's PEM certificate, signed by the test CA.
    let certificate: String
    /// The server's PEM private key.
    let key: String
    private let directory: TemporaryDirectory

    /// The server's certificate and key, as the server fixtures take them.
    var serverPair: (certificate: String, key: String) { (certificate, key) }

    init() throws {
        guard let openssl = Self.openssl else { throw TestProcessError("openssl is not installed") }
        directory = try TemporaryDirectory()
        authority = directory.path("test-ca.pem")
        certificate = directory.path("localhost.pem")
        key = directory.path("localhost.key")
        let authorityKey = directory.path("test-ca.key")
        let request = directory.path("localhost.csr")
        let extensions = directory.path("localhost.ext")
        try Data(
            """
            subjectAltName=DNS:localhost,IP:127.0.0.1
            basicConstraints=critical,CA:FALSE
            keyUsage=critical,digitalSignature,keyEncipherment
            extendedKeyUsage=serverAuth

            """.utf8
        ).write(to: URL(fileURLWithPath: extensions))
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        let steps: [[String]] = [
            ["req", "-x509"] + curve + [
                "-keyout", authorityKey, "-out", authority, "-days", "2", "-subj", "/O=Tapedeck tests/CN=Test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
            ["req"] + curve + ["-keyout", key, "-out", request, "-subj", "/O=Tapedeck tests/CN=localhost"],
            [
                "x509", "-req", "-in", request, "-CA", authority, "-CAkey", authorityKey, "-CAcreateserial", "-out",
                certificate, "-days", "2", "-extfile", extensions,
            ],
        ]
        for step in steps {
            let result = try ChildProcess.run([openssl] + step, timeout: .seconds(30))
            guard result.status == 0 else {
                throw TestProcessError("openssl \(step[0]) failed: \(result.output.suffix(500))")
            }
        }
    }
}
