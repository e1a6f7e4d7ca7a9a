import Foundation
import Testing

@testable import Tapedeck

/// TLS with real clients and servers, through the `tapedeck` executable: each records with `--tls intercept`
/// against a server with a certificate from a test CA, checks that the tape holds plaintext and says how the
/// session spoke TLS, then replays over TLS with the server stopped, clients verifying Tapedeck's CA.
@Suite(.timeLimit(.minutes(3)))
struct TLSEndToEndTests {
    /// One test's files: a test CA with a leaf for `localhost` for the real server, Tapedeck's own CA in a
    /// directory of its own, and a tape.
    final class Setup: Sendable {
        let directory: TemporaryDirectory
        let certificates: TestCertificates
        /// Tapedeck's CA directory (`--ca-dir`).
        let caDirectory: String
        let tape: String

        /// The certificate of Tapedeck's CA: what clients trust to talk to Tapedeck.
        var tapedeckCA: String { caDirectory + "/" + CertificateAuthority.certificateFileName }

        init() async throws {
            directory = try TemporaryDirectory()
            // openssl runs on a thread of its own: a cooperative thread blocked on it stalls other suites.
            certificates = try await offThePool { try TestCertificates() }
            caDirectory = directory.path("tapedeck-ca")
            tape = directory.path("tls.tape")
            let created = try await TapedeckProcess.run(["ca", "init", "--ca-dir", caDirectory])
            guard created.status == 0 else { throw TestProcessError("tapedeck ca init failed: \(created.stderr)") }
        }

        /// `record` arguments intercepting TLS to 127.0.0.1:`upstreamPort`, trusting the test CA for it unless
        /// told not to.
        func intercept(upstreamPort: Int, trustingUpstream: Bool = true) -> [String] {
            ["--upstream", "127.0.0.1:\(upstreamPort)", "--tape", tape, "--tls", "intercept", "--ca-dir", caDirectory]
                + (trustingUpstream ? ["--upstream-ca", certificates.authority] : [])
        }

        /// `replay` arguments for the tape, serving TLS with Tapedeck's CA.
        var replayArguments: [String] { ["--tape", tape, "--ca-dir", caDirectory] }
    }

    /// Records with `arguments` until `clients` is done, then stops the recorder cleanly; returns the clients'
    /// result and the recorder's stderr.
    static func record<T: Sendable>(
        _ arguments: [String],
        _ clients: @escaping @Sendable (Int) throws -> T
    ) async throws -> (T, String) {
        let recorder = try TapedeckProcess(["record"] + arguments)
        let address = try #require(try await recorder.waitForListening()["default"])
        let port = address.port!
        let result = try await offThePool { try clients(port) }
        recorder.signal(SIGTERM)
        let status = try await recorder.waitForExit(timeout: .seconds(10))
        #expect(status == 0, "\(recorder.stderr)")
        return (result, recorder.stderr)
    }

    /// Replays with `arguments` and `--require-all` until `clients` is done; the replay must pass. Returns the
    /// clients' result and the replayer's stderr.
    static func replay<T: Sendable>(
        _ arguments: [String],
        _ clients: @escaping @Sendable (Int) throws -> T
    ) async throws -> (T, String) {
        let replayer = try TapedeckProcess(["replay", "--require-all"] + arguments)
        let address = try #require(try await replayer.waitForListening()["default"])
        let port = address.port!
        let result = try await offThePool { try clients(port) }
        replayer.signal(SIGTERM)
        let status = try await replayer.waitForExit(timeout: .seconds(10))
        #expect(status == 0, "\(replayer.stderr)")
        return (result, replayer.stderr)
    }

    /// The tape's sessions as `tapedeck sessions --json` prints them.
    static func sessions(_ tape: String) async throws -> [[String: Any]] {
        let result = try await TapedeckProcess.run(["sessions", "--json", tape])
        guard result.status == 0 else { throw TestProcessError("tapedeck sessions failed: \(result.stderr)") }
        let parsed = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return try #require(parsed as? [[String: Any]], "\(result.stdout)")
    }

    /// The lines of a log that say a TLS handshake failed.
    static func failureLines(_ log: String) -> [Substring] {
        log.split(separator: "\n").filter { $0.contains("TLS failed") }
    }

    /// Every byte of a tape file and its side files.
    static func fileBytes(_ path: String) -> Data {
        ["", "-wal", "-shm", "-journal"].reduce(into: Data()) { bytes, suffix in
            bytes += (try? Data(contentsOf: URL(fileURLWithPath: path + suffix))) ?? Data()
        }
    }

    /// curl options that reach `localhost:PORT` at 127.0.0.1 (where Tapedeck listens; `localhost` may resolve to
    /// ::1 first) while asking for, and verifying, the name `localhost`.
    static func resolving(_ port: Int) -> [String] {
        ["--resolve", "localhost:\(port):127.0.0.1"]
    }

    static let small = Data("hello from nginx over TLS\n".utf8)
    static let big: Data = {
        var big = Data(count: 1 << 20)
        for index in big.indices { big[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 7) }
        return big
    }()

    static let nginxAndOpenSSL = NginxServer.isInstalled && TestCertificates.isAvailable
    /// Debian's bundle of the system's trusted roots (the `ca-certificates` package).
    static let systemBundle = "/etc/ssl/certs/ca-certificates.crt"
}

// MARK: - Real servers, intercepted

extension TLSEndToEndTests {
    /// One curl, two requests on one connection (a small body, then a mebibyte): over HTTP/1.1 keep-alive, and over
    /// HTTP/2 where the client and nginx agree on it through Tapedeck (ALPN passed upstream, the upstream's choice
    /// served back).
    @Test(
        .enabled(if: TLSEndToEndTests.nginxAndOpenSSL, "needs nginx, curl and openssl (installed by .ci/run)"),
        arguments: [false, true]
    )
    func curlAgainstNginxOverTLS(http2: Bool) async throws {
        let setup = try await Setup()
        let nginx = try await NginxServer(
            files: ["small.txt": Self.small, "big.bin": Self.big],
            tls: setup.certificates.serverPair,
            http2: http2
        )
        defer { nginx.stop() }
        let caFile = setup.tapedeckCA
        // `%{http_version}` and `%{num_connects}` per transfer: the protocol spoken, and a second transfer that
        // connected nowhere new (it reused the first one's connection).
        @Sendable func fetch(_ port: Int) throws -> Fetched {
            let (bodies, output) = try NginxServer.curl(
                base: "https://localhost:\(port)",
                ["/small.txt", "/big.bin"],
                options: ["--cacert", caFile, "-w", "%{http_version} %{num_connects}\\n"]
                    + (http2 ? [] : ["--http1.1"]) + Self.resolving(port)
            )
            return Fetched(bodies: bodies, output: output, port: port)
        }
        let (recorded, recordLog) = try await Self.record(setup.intercept(upstreamPort: nginx.port), fetch)
        nginx.stop()
        #expect(recorded.bodies == Self.small + Self.big)
        let version = http2 ? "2" : "1.1"
        #expect(recorded.output == "\(version) 1\n\(version) 0\n", "\(recorded.output)")
        #expect(Self.failureLines(recordLog).isEmpty, "\(recordLog)")

        // One session, in plaintext, that says how it spoke TLS.
        let sessions = try await Self.sessions(setup.tape)
        #expect(sessions.count == 1, "\(sessions)")
        let tls = try #require(sessions.first?["tls"] as? [String: Any], "\(sessions)")
        #expect(tls["mode"] as? String == "intercept")
        #expect(tls["server_name"] as? String == "localhost")
        #expect(tls["alpn"] as? String == (http2 ? "h2" : "http/1.1"), "\(tls)")
        #expect((tls["upstream_subject"] as? String)?.contains("localhost") == true, "\(tls)")
        #expect(sessions.first?["outcome"] as? String != "tls_failed")
        let listing = try await TapedeckProcess.run(["sessions", setup.tape])
        #expect(listing.stdout.contains("[TLSv1."), "\(listing.stdout)")
        #expect(listing.stdout.contains("sni=localhost"), "\(listing.stdout)")
        if http2 { #expect(listing.stdout.contains(" h2 "), "\(listing.stdout)") }
        let show = try await TapedeckProcess.run(["show", setup.tape, "1"])
        #expect(show.stdout.contains("tls TLSv1."), "\(show.stdout)")
        let bytes = Self.fileBytes(setup.tape)
        #expect(bytes.range(of: Self.small) != nil, "the response is not in the tape as plaintext")
        if !http2 {
            #expect(show.stdout.contains("GET /small.txt HTTP/1.1"), "\(show.stdout.prefix(2_000))")
            #expect(bytes.range(of: Data("GET /big.bin HTTP/1.1".utf8)) != nil)
        }

        // nginx is gone: Tapedeck serves the same bytes over TLS, curl verifying its CA, on a port of its own:
        // HTTP/1.1 byte for byte (replay recognizes its listen address in the Host header), HTTP/2 through its lens
        // (streams matched on decoded headers, `:authority` left out), after the handshake chose `h2` as recorded.
        let (replayed, _) = try await Self.replay(setup.replayArguments, fetch)
        #expect(replayed.bodies == recorded.bodies)
        #expect(replayed.output == recorded.output)
    }

    /// psql with `sslmode=require`, then `verify-full` (trusting Tapedeck's CA through `PGSSLROOTCERT`, and checking
    /// the name `localhost`), against PostgreSQL with `ssl=on`: TLS starts after the SSLRequest.
    @Test(
        .enabled(if: PostgresServer.isInstalled && TestCertificates.isAvailable, "needs PostgreSQL 15, psql, openssl")
    )
    func psqlRequireAndVerifyFullAgainstPostgreSQLWithSSL() async throws {
        let setup = try await Setup()
        let postgres = try await PostgresServer(tls: setup.certificates.serverPair)
        defer { postgres.stop() }
        let caFile = setup.tapedeckCA
        // The server's own view: this connection is TLS (to Tapedeck's upstream side).
        let sql = "SELECT ssl, 6 * 7 FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        @Sendable func clients(_ port: Int) throws -> [PostgresResult] {
            [
                try PostgresServer.runPsql(port: port, sql, sslmode: "require", host: "localhost"),
                try PostgresServer.runPsql(
                    port: port,
                    sql,
                    sslmode: "verify-full",
                    host: "localhost",
                    rootCertificate: caFile
                ),
            ].map { PostgresResult($0) }
        }
        let (recorded, recordLog) = try await Self.record(setup.intercept(upstreamPort: postgres.port), clients)
        postgres.stop()
        #expect(recorded == [PostgresResult(status: 0, output: "t|42\n"), PostgresResult(status: 0, output: "t|42\n")])
        #expect(Self.failureLines(recordLog).isEmpty, "\(recordLog)")

        let sessions = try await Self.sessions(setup.tape)
        #expect(sessions.count == 2, "\(sessions)")
        for session in sessions {
            let tls = try #require(session["tls"] as? [String: Any], "\(session)")
            #expect(tls["mode"] as? String == "intercept")
            #expect(tls["upgrade"] as? String == "postgres")
            #expect(tls["server_name"] as? String == "localhost")
            #expect(session["outcome"] as? String != "tls_failed")
        }
        let listing = try await TapedeckProcess.run(["sessions", setup.tape])
        #expect(listing.stdout.contains("after postgres upgrade"), "\(listing.stdout)")
        #expect(Self.fileBytes(setup.tape).range(of: Data("pg_stat_ssl".utf8)) != nil, "the query is not plaintext")

        let (replayed, _) = try await Self.replay(setup.replayArguments, clients)
        #expect(replayed == recorded)
    }

    /// `originate`: psql speaking plaintext (`sslmode=disable`, and `prefer`, whose SSLRequest Tapedeck answers
    /// `N`) to a PostgreSQL that sees TLS, because Tapedeck asks it with an SSLRequest of its own.
    @Test(
        .enabled(if: PostgresServer.isInstalled && TestCertificates.isAvailable, "needs PostgreSQL 15, psql, openssl")
    )
    func psqlInPlaintextReachesPostgreSQLOverTLSWithOriginate() async throws {
        let setup = try await Setup()
        let postgres = try await PostgresServer(tls: setup.certificates.serverPair)
        defer { postgres.stop() }
        let sql = "SELECT ssl, 6 * 7 FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        @Sendable func clients(_ port: Int) throws -> [PostgresResult] {
            try ["disable", "prefer"].map {
                PostgresResult(try PostgresServer.runPsql(port: port, sql, sslmode: $0, host: "127.0.0.1"))
            }
        }
        let arguments = [
            "--upstream", "localhost:\(postgres.port)", "--tape", setup.tape, "--tls", "originate", "--ca-dir",
            setup.caDirectory, "--upstream-ca", setup.certificates.authority,
        ]
        let (recorded, recordLog) = try await Self.record(arguments, clients)
        postgres.stop()
        #expect(recorded == [PostgresResult(status: 0, output: "t|42\n"), PostgresResult(status: 0, output: "t|42\n")])
        #expect(Self.failureLines(recordLog).isEmpty, "\(recordLog)")
        let sessions = try await Self.sessions(setup.tape)
        #expect(sessions.count == 2, "\(sessions)")
        for session in sessions {
            let tls = try #require(session["tls"] as? [String: Any], "\(session)")
            #expect(tls["mode"] as? String == "originate")
            #expect(tls["upgrade"] as? String == "postgres")
        }
        let (replayed, _) = try await Self.replay(setup.replayArguments, clients)
        #expect(replayed == recorded)
    }

    /// `redis-cli --tls --cacert` against a redis-server whose only port speaks TLS.
    @Test(
        .enabled(
            if: RedisServer.isInstalled && RedisServer.supportsTLS && TestCertificates.isAvailable,
            "needs redis-server and redis-cli built with TLS, and openssl"
        )
    )
    func redisCliOverTLS() async throws {
        let setup = try await Setup()
        let certificates = setup.certificates
        let redis = try await RedisServer(
            tls: (certificates.certificate, certificates.key, certificates.authority)
        )
        defer { redis.stop() }
        // The real server cannot be reached without TLS.
        #expect(try RedisServer.cli(port: redis.port, tlsAuthority: certificates.authority, ["PING"]) == "PONG\n")
        let caFile = setup.tapedeckCA
        let commands = [["SET", "cassette", "side A"], ["GET", "cassette"], ["PING"]]
        @Sendable func clients(_ port: Int) throws -> [String] {
            try commands.map { try RedisServer.cli(port: port, tlsAuthority: caFile, $0) }
        }
        let (recorded, recordLog) = try await Self.record(setup.intercept(upstreamPort: redis.port), clients)
        redis.stop()
        #expect(recorded == ["OK\n", "side A\n", "PONG\n"])
        #expect(Self.failureLines(recordLog).isEmpty, "\(recordLog)")
        let sessions = try await Self.sessions(setup.tape)
        #expect(sessions.count == 3, "\(sessions)")
        #expect(sessions.allSatisfy { ($0["tls"] as? [String: Any])?["mode"] as? String == "intercept" }, "\(sessions)")
        #expect(Self.fileBytes(setup.tape).range(of: Data("cassette".utf8)) != nil, "the commands are not plaintext")

        let (replayed, _) = try await Self.replay(setup.replayArguments, clients)
        #expect(replayed == recorded)
    }

    /// Python's smtplib `starttls()` against aiosmtpd, which refuses mail before STARTTLS: TLS starts after the
    /// server's `220` to `STARTTLS`.
    @Test(
        .enabled(
            if: PythonFixture.pythonWithSMTP != nil && TestCertificates.isAvailable,
            "needs python3 with aiosmtpd (installed by .ci/run) and openssl"
        )
    )
    func smtplibStartTLSAgainstAiosmtpd() async throws {
        let setup = try await Setup()
        let smtp = try await PythonFixture.SMTPServer(
            certificate: setup.certificates.certificate,
            key: setup.certificates.key
        )
        defer { smtp.stop() }
        let caFile = setup.tapedeckCA
        let (recorded, recordLog) = try await Self.record(setup.intercept(upstreamPort: smtp.port)) { port in
            try PythonFixture.smtpClient(port: port, authority: caFile)
        }
        #expect(smtp.messages.count == 1, "\(smtp.messages)")
        smtp.stop()
        #expect(recorded.status == 0, "\(recorded)")
        #expect(recorded.stdout.hasPrefix("starttls 220 "), "\(recorded)")
        #expect(recorded.stdout.hasSuffix("ok\n"), "\(recorded)")
        #expect(Self.failureLines(recordLog).isEmpty, "\(recordLog)")
        let sessions = try await Self.sessions(setup.tape)
        #expect(sessions.count == 1, "\(sessions)")
        let tls = try #require(sessions.first?["tls"] as? [String: Any], "\(sessions)")
        #expect(tls["mode"] as? String == "intercept")
        #expect(tls["upgrade"] as? String == "smtp")
        #expect(tls["server_name"] as? String == "localhost")
        // What was said inside TLS is in the tape as text.
        #expect(Self.fileBytes(setup.tape).range(of: Data("Recorded as plaintext".utf8)) != nil)

        let (replayed, _) = try await Self.replay(setup.replayArguments) { port in
            try PythonFixture.smtpClient(port: port, authority: caFile)
        }
        #expect(replayed.status == 0, "\(replayed)")
        #expect(replayed.stdout == recorded.stdout)
    }

    /// `tapedeck run --tls intercept`: the command trusts Tapedeck's CA through the variables `run` sets
    /// (`CURL_CA_BUNDLE`, `SSL_CERT_FILE`), with no `--cacert` of its own; then `run --mode replay` with nginx
    /// stopped.
    @Test(.enabled(if: TLSEndToEndTests.nginxAndOpenSSL, "needs nginx, curl and openssl (installed by .ci/run)"))
    func runGivesTheCommandTrustInTapedecksCA() async throws {
        let setup = try await Setup()
        let nginx = try await NginxServer(files: ["small.txt": Self.small], tls: setup.certificates.serverPair)
        defer { nginx.stop() }
        let script =
            "exec \(NginxServer.curl!) -sS --fail --max-time 30 --resolve \"localhost:$TAPEDECK_PORT:127.0.0.1\" "
            + "\"https://localhost:$TAPEDECK_PORT/small.txt\""
        // Whatever the caller's environment says about trust stays out of it.
        let environment: [String: String?] = [
            "TAPEDECK_MODE": nil, "CURL_CA_BUNDLE": nil, "SSL_CERT_FILE": nil, "SSL_CERT_DIR": nil,
        ]
        let recorded = try await TapedeckProcess.run(
            [
                "run", "--mode", "record", "--tape", setup.tape, "--upstream", "127.0.0.1:\(nginx.port)", "--tls",
                "intercept", "--upstream-ca", setup.certificates.authority, "--ca-dir", setup.caDirectory, "--",
                "/bin/sh", "-c", script,
            ],
            environment: environment,
            timeout: .seconds(60)
        )
        nginx.stop()
        #expect(recorded.status == 0, "\(recorded.stderr)")
        #expect(recorded.stdout == String(decoding: Self.small, as: UTF8.self), "\(recorded.stdout)")
        let sessions = try await Self.sessions(setup.tape)
        #expect(sessions.count == 1, "\(sessions)")
        #expect((sessions.first?["tls"] as? [String: Any])?["mode"] as? String == "intercept", "\(sessions)")

        let replayed = try await TapedeckProcess.run(
            [
                "run", "--mode", "replay", "--require-all", "--tape", setup.tape, "--ca-dir", setup.caDirectory, "--",
                "/bin/sh", "-c", script,
            ],
            environment: environment,
            timeout: .seconds(60)
        )
        #expect(replayed.status == 0, "\(replayed.stderr)")
        #expect(replayed.stdout == recorded.stdout)
    }
}

// MARK: - Bad input

extension TLSEndToEndTests {
    /// Runs curl against Tapedeck on `port` (bounded); returns its exit status and output.
    static func curlOnce(_ url: String, _ options: [String]) throws -> (status: Int32, output: String) {
        guard let curl = NginxServer.curl else { throw TestProcessError("curl is not installed") }
        return try ChildProcess.run([curl, "-sS", "--max-time", "20", "-o", "/dev/null"] + options + [url])
    }

    /// Checks what a failed handshake leaves: one warning line naming the reason (each of `reason`), curl told no
    /// (and not by its own timeout, exit 28), and the session recorded `tls_failed`.
    static func expectOneFailure(
        log: String,
        curl: (status: Int32, output: String),
        tape: String,
        mentioning reason: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let lines = failureLines(log)
        #expect(lines.count == 1, "\(log)", sourceLocation: sourceLocation)
        for words in reason {
            #expect(lines.first?.contains(words) == true, "\(log)", sourceLocation: sourceLocation)
        }
        #expect(curl.status != 0 && curl.status != 28, "\(curl)", sourceLocation: sourceLocation)
        let sessions = try await self.sessions(tape)
        #expect(sessions.count == 1, "\(sessions)", sourceLocation: sourceLocation)
        #expect(sessions.first?["outcome"] as? String == "tls_failed", "\(sessions)", sourceLocation: sourceLocation)
        #expect((sessions.first?["tls"] as? [String: Any])?["failure"] != nil, sourceLocation: sourceLocation)
    }

    /// The upstream's certificate is from a CA Tapedeck was not told of (no `--upstream-ca`): the client is closed,
    /// the line says the certificate did not verify and how to trust it.
    @Test(.enabled(if: TLSEndToEndTests.nginxAndOpenSSL, "needs nginx, curl and openssl (installed by .ci/run)"))
    func anUpstreamCertificateThatDoesNotVerifyClosesTheClient() async throws {
        let setup = try await Setup()
        let nginx = try await NginxServer(files: ["small.txt": Self.small], tls: setup.certificates.serverPair)
        defer { nginx.stop() }
        let caFile = setup.tapedeckCA
        let (curl, log) = try await Self.record(setup.intercept(upstreamPort: nginx.port, trustingUpstream: false)) {
            port in
            try Self.curlOnce("https://localhost:\(port)/small.txt", ["--cacert", caFile] + Self.resolving(port))
        }
        try await Self.expectOneFailure(
            log: log,
            curl: curl,
            tape: setup.tape,
            mentioning: ["certificate verify failed", "--upstream-ca"]
        )
    }

    /// The client trusts only the system's roots, not Tapedeck's CA: the line says so and what to trust. With TLS
    /// 1.2 (`--tls-max 1.2`) the client's `unknown ca` alert arrives encrypted as usual; with TLS 1.3, OpenSSL's
    /// client sends it in the clear after Tapedeck's encrypted Certificate, where the TLS layer alone would only
    /// see a bad record MAC.
    @Test(
        .enabled(
            if: TLSEndToEndTests.nginxAndOpenSSL
                && FileManager.default.fileExists(atPath: TLSEndToEndTests.systemBundle),
            "needs nginx, curl, openssl and the system's CA bundle"
        ),
        arguments: ["1.2", "1.3"]
    )
    func aClientThatDoesNotTrustTapedecksCAIsToldWhy(tlsMax: String) async throws {
        let setup = try await Setup()
        let nginx = try await NginxServer(files: ["small.txt": Self.small], tls: setup.certificates.serverPair)
        defer { nginx.stop() }
        let (curl, log) = try await Self.record(setup.intercept(upstreamPort: nginx.port)) { port in
            try Self.curlOnce(
                "https://localhost:\(port)/small.txt",
                ["--cacert", Self.systemBundle, "--tls-max", tlsMax] + Self.resolving(port)
            )
        }
        // curl exits 60: it could not verify the certificate served.
        #expect(curl.status == 60, "\(curl)")
        try await Self.expectOneFailure(
            log: log,
            curl: curl,
            tape: setup.tape,
            mentioning: ["the client's TLS handshake failed"]
        )
        let line = Self.failureLines(log).first ?? ""
        #expect(line.contains("unknown ca"), "\(log)")
        #expect(line.contains("make it trust Tapedeck's CA"), "\(log)")
        // The client is gone at once, and so is the session, with its TLS connection upstream.
        let sessions = try await Self.sessions(setup.tape)
        let duration = (sessions.first?["duration_ns"] as? NSNumber)?.int64Value ?? .max
        #expect(duration < 2_000_000_000, "\(sessions)")
    }

    /// A client speaking plain HTTP to a route that intercepts TLS: one line saying so, quoting its first bytes.
    @Test(.enabled(if: TLSEndToEndTests.nginxAndOpenSSL, "needs nginx, curl and openssl (installed by .ci/run)"))
    func aPlaintextClientOnAnInterceptRouteIsClosed() async throws {
        let setup = try await Setup()
        let nginx = try await NginxServer(files: ["small.txt": Self.small], tls: setup.certificates.serverPair)
        defer { nginx.stop() }
        let (curl, log) = try await Self.record(setup.intercept(upstreamPort: nginx.port)) { port in
            try Self.curlOnce("http://127.0.0.1:\(port)/small.txt", [])
        }
        try await Self.expectOneFailure(
            log: log,
            curl: curl,
            tape: setup.tape,
            mentioning: ["the client did not start TLS", "GET /small.txt", "--tls intercept"]
        )
    }

    /// `--tls off` and psql's default `sslmode=prefer` against PostgreSQL with `ssl=on`: the session works, is
    /// recorded as ciphertext with a warning saying how to record it instead, and says `undecrypted`.
    @Test(
        .enabled(if: PostgresServer.isInstalled && TestCertificates.isAvailable, "needs PostgreSQL 15, psql, openssl")
    )
    func tlsOffWarnsThatAPostgresClientsTLSIsRecordedUndecrypted() async throws {
        let setup = try await Setup()
        let postgres = try await PostgresServer(tls: setup.certificates.serverPair)
        defer { postgres.stop() }
        let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        let (recorded, log) = try await Self.record([
            "--upstream", "127.0.0.1:\(postgres.port)", "--tape", setup.tape, "--tls", "off",
        ]) { port in
            PostgresResult(try PostgresServer.runPsql(port: port, sql, sslmode: "prefer"))
        }
        postgres.stop()
        // psql spoke TLS with PostgreSQL itself, through the relay.
        #expect(recorded == PostgresResult(status: 0, output: "t\n"))
        let warnings = log.split(separator: "\n").filter { $0.contains("the client started TLS") }
        #expect(warnings.count == 1, "\(log)")
        #expect(warnings.first?.contains("record with --tls intercept") == true, "\(log)")
        #expect(Self.failureLines(log).isEmpty, "\(log)")
        let sessions = try await Self.sessions(setup.tape)
        #expect(sessions.count == 1, "\(sessions)")
        let tls = try #require(sessions.first?["tls"] as? [String: Any], "\(sessions)")
        #expect(tls["mode"] as? String == "undecrypted", "\(tls)")
        #expect(tls["upgrade"] as? String == "postgres", "\(tls)")
        let listing = try await TapedeckProcess.run(["sessions", setup.tape])
        #expect(listing.stdout.contains("undecrypted"), "\(listing.stdout)")
        // The query went inside TLS: it is not in the tape.
        #expect(Self.fileBytes(setup.tape).range(of: Data("pg_stat_ssl".utf8)) == nil)
    }
}

/// What one curl invocation fetched: the bodies, what curl printed, and the port it went to.
struct Fetched: Sendable {
    var bodies: Data
    var output: String
    var port: Int
}

/// How psql ran, comparable.
struct PostgresResult: Equatable, Sendable, CustomStringConvertible {
    var status: Int32
    var output: String

    init(status: Int32, output: String) {
        self.status = status
        self.output = output
    }

    init(_ run: (status: Int32, output: String)) {
        self.init(status: run.status, output: run.output)
    }

    var description: String { "exit \(status): \(output)" }
}
