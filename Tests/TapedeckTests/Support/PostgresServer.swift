import Foundation

/// A real PostgreSQL 15 on a free loopback port, in a temporary data directory: with trust authentication, or
/// with SCRAM-SHA-256 and a password for the user `postgres`; with `ssl=on` when given a certificate.
///
/// PostgreSQL refuses to run as root, so under root it runs as the `postgres` user (through `setpriv`, which
/// execs without forking: the PID we hold is the postmaster's).
final class PostgresServer: Sendable {
    static let binaries = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"]
        .first { FileManager.default.isExecutableFile(atPath: $0 + "/postgres") }
    static let psql = ["/usr/bin/psql"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var isInstalled: Bool { binaries != nil && psql != nil }

    let port: Int
    private let directory: String
    private let server: ChildProcess

    /// - Parameter scramPassword: The password of the user `postgres`, who then logs in with SCRAM-SHA-256 (the
    ///   default `password_encryption` of PostgreSQL 14 on); nil for trust authentication.
    /// - Parameter tls: A PEM certificate and key to serve TLS with (`ssl=on`); clients may then ask for TLS.
    init(scramPassword: String? = nil, tls: (certificate: String, key: String)? = nil) async throws {
        guard let binaries = Self.binaries else { throw TestProcessError("PostgreSQL is not installed") }
        let home = "/tmp/tapedeck-pg-\(UUID().uuidString.prefix(8))"
        directory = home
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let runAs =
            geteuid() == 0 ? ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] : []
        var authentication = ["--auth=trust"]
        if let scramPassword {
            // initdb reads the password from a file, as the user it runs as: the file is written before the
            // directory changes hands.
            let passwordFile = directory + "/password"
            try Data((scramPassword + "\n").utf8).write(to: URL(fileURLWithPath: passwordFile))
            authentication = ["--auth=scram-sha-256", "--pwfile=\(passwordFile)"]
        }
        var sslSettings: [String] = []
        if let tls {
            // Copied beside the data directory before it changes hands: the server reads them as its own user,
            // and refuses a key others can read.
            let certificate = directory + "/server.crt"
            let key = directory + "/server.key"
            try FileManager.default.copyItem(atPath: tls.certificate, toPath: certificate)
            try FileManager.default.copyItem(atPath: tls.key, toPath: key)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
            sslSettings = ["-c", "ssl=on", "-c", "ssl_cert_file=\(certificate)", "-c", "ssl_key_file=\(key)"]
        }
        // initdb takes seconds: on a thread of its own, not on one of the cooperative threads other suites time.
        let initdb = try await offThePool { [runAs, authentication] in
            if geteuid() == 0 { _ = try ChildProcess.run(["/bin/chown", "-R", "postgres:postgres", home]) }
            return try ChildProcess.run(
                runAs + [binaries + "/initdb", "-D", home + "/data", "-U", "postgres"] + authentication + [
                    "-E", "UTF8", "--no-sync",
                ]
            )
        }
        guard initdb.status == 0 else { throw TestProcessError("initdb failed: \(initdb.output.suffix(500))") }
        let directory = self.directory
        do {
            (port, server) = try await startListening(timeout: .seconds(60)) { port in
                try ChildProcess(
                    runAs + [
                        binaries + "/postgres", "-D", directory + "/data", "-p", "\(port)", "-c",
                        "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=\(directory)", "-c", "fsync=off",
                        "-c", "max_connections=50",
                    ] + sslSettings,
                    outputPath: directory + "/server.log"
                )
            }
        } catch {
            let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
            throw TestProcessError("PostgreSQL did not start: \(error): \(log.suffix(800))")
        }
    }

    /// Fast shutdown (SIGINT), then the data directory goes.
    func stop() {
        server.stop(SIGINT)
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }

    /// Runs `psql` against `port` with one SQL command; returns its unaligned output.
    static func psql(port: Int, _ sql: String) throws -> String {
        try runPsql(port: port, sql).output
    }

    /// Runs `psql` against `port` with one SQL command, logging in with `password` (through `PGPASSWORD`) when
    /// given, and `sslmode` when given (libpq's default, `prefer`, opens with an SSLRequest); returns its exit
    /// status and its unaligned output, errors included.
    ///
    /// - Parameters:
    ///   - host: The name libpq asks for (SNI) and checks the server's certificate against with `verify-full`;
    ///     it connects to 127.0.0.1 whatever the name.
    ///   - rootCertificate: The PEM file libpq trusts the server's certificate by (`PGSSLROOTCERT`).
    static func runPsql(
        port: Int,
        _ sql: String,
        password: String? = nil,
        sslmode: String? = nil,
        host: String = "127.0.0.1",
        rootCertificate: String? = nil
    ) throws -> (status: Int32, output: String) {
        guard let psql else { throw TestProcessError("psql is not installed") }
        let target =
            "host=\(host) hostaddr=127.0.0.1 port=\(port) user=postgres dbname=postgres connect_timeout=10"
            + (sslmode.map { " sslmode=\($0)" } ?? "")
        return try ChildProcess.run(
            [psql, "-X", "-At", "-w", "-c", sql, target],
            environment: ["PGPASSWORD": password, "PGSSLMODE": nil, "PGSSLROOTCERT": rootCertificate]
        )
    }
}
