import Foundation
import Testing
import X509

@testable import Tapedeck

/// The local certificate authority: created once, kept private, and signing leaves that real TLS stacks accept.
struct CertificateAuthorityTests {
    static let openssl = ["/usr/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
    }

    @Test func isCreatedOnceWithAPrivateKeyAndThenReused() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("ca")
        let created = try CertificateAuthority.loadOrCreate(in: path)
        #expect(try Self.mode(path) == 0o700)
        #expect(try Self.mode(path + "/ca-key.pem") == 0o600)
        #expect(created.certificatePath == path + "/ca-cert.pem")
        let loaded = try #require(try CertificateAuthority.load(from: path))
        #expect(loaded.certificate == created.certificate)
        let constraints = try #require(try created.certificate.extensions.basicConstraints)
        #expect(constraints == .isCertificateAuthority(maxPathLength: 0))
    }

    @Test func theDefaultDirectoryFollowsTheEnvironment() {
        #expect(CertificateAuthority.defaultDirectory(environment: ["TAPEDECK_CA_DIR": "/x/ca"]) == "/x/ca")
        #expect(
            CertificateAuthority.defaultDirectory(environment: ["XDG_DATA_HOME": "/d", "HOME": "/h"])
                == "/d/tapedeck/ca"
        )
        #expect(CertificateAuthority.defaultDirectory(environment: ["HOME": "/h"]) == "/h/.local/share/tapedeck/ca")
    }

    @Test func aKeyThatIsNotTheCertificatesIsRefusedInOneLine() throws {
        let directory = try TemporaryDirectory()
        let first = directory.path("first")
        let second = directory.path("second")
        _ = try CertificateAuthority.loadOrCreate(in: first)
        _ = try CertificateAuthority.loadOrCreate(in: second)
        try FileManager.default.removeItem(atPath: second + "/ca-key.pem")
        try FileManager.default.copyItem(atPath: first + "/ca-key.pem", toPath: second + "/ca-key.pem")
        #expect {
            try CertificateAuthority.loadOrCreate(in: second)
        } throws: { error in
            "\(error)" == "cannot load the CA in '\(second)': its key does not belong to its certificate"
        }
    }

    @Test(
        .enabled(if: openssl != nil, "needs openssl"),
        arguments: ["localhost", "127.0.0.1", "::1", "api.example.test"]
    )
    func leavesVerifyAgainstTheCAForTheirName(name: String) throws {
        let directory = try TemporaryDirectory()
        let authority = try CertificateAuthority.loadOrCreate(in: directory.path("ca"))
        let leaf = try authority.leaf(for: name)
        #expect(try authority.leaf(for: name).certificate == leaf.certificate, "a leaf is made once per name")
        let leafPath = directory.path("leaf.pem")
        try leaf.certificate.serializeAsPEM().pemString.write(toFile: leafPath, atomically: true, encoding: .utf8)
        let check = name.contains(":") || name.first?.isNumber == true ? "-verify_ip" : "-verify_hostname"
        let verified = try ChildProcess.run([
            Self.openssl!, "verify", "-CAfile", authority.certificatePath, check, name, "-purpose", "sslserver",
            leafPath,
        ])
        #expect(verified.status == 0 && verified.output.contains("OK"), "\(verified.output)")
        let other = try ChildProcess.run([
            Self.openssl!, "verify", "-CAfile", authority.certificatePath, "-verify_hostname", "elsewhere.test",
            leafPath,
        ])
        #expect(other.status != 0, "a leaf must not verify for another name")
    }

    @Test func theCommandLineInitsPrintsAndExportsTheCA() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("cli-ca")
        let created = try await TapedeckProcess.run(["ca", "init", "--ca-dir", path])
        #expect(created.status == 0 && created.stdout == path + "/ca-cert.pem\n", "\(created)")
        #expect(created.stderr.contains("created a CA"))
        let again = try await TapedeckProcess.run(["ca", "init"], environment: ["TAPEDECK_CA_DIR": path])
        #expect(again.stderr.contains("already exists"), "\(again)")
        let printed = try await TapedeckProcess.run(["ca", "path", "--ca-dir", path])
        #expect(printed.stdout == path + "/ca-cert.pem\n")
        let exported = try await TapedeckProcess.run(["ca", "export", "--ca-dir", path])
        #expect(exported.stdout.hasPrefix("-----BEGIN CERTIFICATE-----"))
        #expect(exported.stdout == (try String(contentsOfFile: path + "/ca-cert.pem", encoding: .utf8)) + "\n")
        let blocked = directory.path("not-a-directory")
        FileManager.default.createFile(atPath: blocked, contents: Data("x".utf8))
        let refused = try await TapedeckProcess.run(["ca", "path", "--ca-dir", blocked + "/ca"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.hasPrefix("tapedeck: error: cannot create a CA in '\(blocked)/ca'"), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1)
    }
}
