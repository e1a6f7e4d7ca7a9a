import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real MariaDB (Debian's `mariadbd`) on a free loopback port, with a data directory of its own, set up with
/// three users on two databases, each seeing rows of its own; started for one test and stopped by its PID.
///
/// The users, all `mysql_native_password`: `alice` and `carol` on `db1`, `bob` on `db2`, each with the password
/// `<name>-pw`. Each database has a `notes` table whose rows belong to users (``query`` selects the caller's), so
/// a client replayed the session of another user or database gets other rows. Where Debian's MariaDB ships the
/// ed25519 plugin, `dave` (password `dave-pw`) logs in with it on `db2`.
///
/// MariaDB refuses to run as root, so under root it runs as the `mysql` user (through `setpriv`, which execs
/// without forking: the PID we hold is the server's), in a directory that user owns.
///
/// ```swift
/// let mariadb = try await MariaDBServer()
/// defer { mariadb.stop() }
/// let run = try MariaDBServer.cli(port: mariadb.port, user: "alice", database: "db1", MariaDBServer.query)
/// #expect(run.output == MariaDBServer.rows(of: "alice", in: "db1"))
/// ```
final class MariaDBServer: Sendable {
    static let server = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let installer = ["/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let client = ["/usr/bin/mariadb", "/usr/bin/mysql"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static var isInstalled: Bool { server != nil && installer != nil && client != nil }

    /// Whether the server can load the ed25519 authentication plugin (Debian ships it in `mariadb-server`).
    static let hasEd25519 = FileManager.default.fileExists(atPath: "/usr/lib/mysql/plugin/auth_ed25519.so")

    /// The users and the database each logs in to.
    static let users = [("alice", "db1"), ("bob", "db2"), ("carol", "db1")]

    /// The rows of each database's `notes` table: id, owner, body.
    static let notes: [String: [(Int, String, String)]] = [
        "db1": [(1, "alice", "alpha one"), (2, "carol", "gamma one"), (3, "alice", "alpha two")],
        "db2": [(1, "bob", "beta one"), (2, "bob", "beta two"), (3, "dave", "delta one")],
    ]

    /// The one query every client asks: the same bytes for every user, so only the login tells sessions apart.
    static let query =
        "SELECT CURRENT_USER(), DATABASE(), id, body FROM notes WHERE owner = SUBSTRING_INDEX(CURRENT_USER(), '@', 1) "
        + "ORDER BY id"

    /// What ``query`` answers `user` in `database`, as `mariadb --batch --skip-column-names` prints it: a line per
    /// row, its columns separated by tabs.
    static func rows(of user: String, in database: String) -> String {
        (notes[database] ?? []).filter { $0.1 == user }.map { "\(user)@%\t\(database)\t\($0.0)\t\($0.2)\n" }.joined()
    }

    let port: Int
    private let directory: String
    private let process: ChildProcess

    /// The SQL the server is set up with, as root over its socket.
    static var setup: String {
        var statements = ["CREATE DATABASE db1", "CREATE DATABASE db2"]
        for (database, rows) in notes.sorted(by: { $0.key < $1.key }) {
            statements.append(
                "CREATE TABLE \(database).notes (id INT PRIMARY KEY, owner VARCHAR(16), body VARCHAR(64))"
            )
            let values = rows.map { "(\($0.0), '\($0.1)', '\($0.2)')" }.joined(separator: ", ")
            statements.append("INSERT INTO \(database).notes VALUES \(values)")
        }
        for (user, database) in users {
            statements.append(
                "CREATE USER \(user)@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('\(user)-pw')"
            )
            statements.append("GRANT ALL ON \(database).* TO \(user)@'%'")
        }
        if hasEd25519 {
            statements.append("INSTALL SONAME 'auth_ed25519'")
            statements.append("CREATE USER dave@'%' IDENTIFIED VIA ed25519 USING PASSWORD('dave-pw')")
            statements.append("GRANT SELECT ON db2.* TO dave@'%'")
        }
        return statements.joined(separator: ";\n") + ";\n"
    }

    init() async throws {
        guard let server = Self.server, let installer = Self.installer, let client = Self.client else {
            throw TestProcessError("MariaDB is not installed")
        }
        // Under /tmp itself rather than a private temporary directory: the `mysql` user must reach it, and the
        // socket's path must stay short.
        let home = "/tmp/tapedeck-mariadb-\(UUID().uuidString.prefix(8))"
        directory = home
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let asRoot = geteuid() == 0
        let runAs = asRoot ? ["/usr/bin/setpriv", "--reuid=mysql", "--regid=mysql", "--init-groups", "--"] : []
        // No option files (`--no-defaults`, which must come first): the machine's /etc/mysql has nothing to say.
        // Root logs in without a password over the socket, for the setup below.
        let install = try await offThePool {
            if asRoot { _ = try ChildProcess.run(["/bin/chown", "-R", "mysql:mysql", home]) }
            return try ChildProcess.run(
                [
                    installer, "--no-defaults", "--datadir=\(home)/data", "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ] + (asRoot ? ["--user=mysql"] : [])
            )
        }
        guard install.status == 0 else {
            throw TestProcessError("mariadb-install-db failed: \(install.output.suffix(800))")
        }
        do {
            (port, process) = try await startListening(timeout: .seconds(60)) { port in
                try ChildProcess(
                    runAs + [
                        server, "--no-defaults", "--datadir=\(home)/data", "--port=\(port)", "--bind-address=127.0.0.1",
                        "--socket=\(home)/m.sock", "--pid-file=\(home)/m.pid", "--skip-name-resolve",
                        "--innodb-buffer-pool-size=16M", "--innodb-flush-log-at-trx-commit=0", "--max-connections=200",
                    ],
                    outputPath: home + "/server.log"
                )
            }
        } catch {
            let log = (try? String(contentsOfFile: home + "/server.log", encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: home)
            throw TestProcessError("MariaDB did not start: \(error): \(log.suffix(800))")
        }
        let setup = try await offThePool {
            try ChildProcess.run([client, "--no-defaults", "--socket=\(home)/m.sock", "--user=root", "-e", Self.setup])
        }
        guard setup.status == 0 else {
            stop()
            throw TestProcessError("setting MariaDB up failed: \(setup.output.suffix(800))")
        }
    }

    /// Stops the server by its PID (SIGTERM is MariaDB's normal shutdown), then the data directory goes.
    func stop() {
        process.stop(SIGTERM, timeout: .seconds(30))
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }

    /// Runs the `mariadb` CLI against 127.0.0.1:`port` as `user` (password `<user>-pw`) on `database` with one
    /// SQL text; returns its exit status and its output (errors included), rows as ``rows(of:in:)`` prints them.
    static func cli(port: Int, user: String, database: String, _ sql: String) throws -> (status: Int32, output: String)
    {
        guard let client else { throw TestProcessError("the mariadb CLI is not installed") }
        return try ChildProcess.run(
            [
                client, "--no-defaults", "--protocol=TCP", "--host=127.0.0.1", "--port=\(port)", "--user=\(user)",
                "--password=\(user)-pw", "--batch", "--skip-column-names", "--connect-timeout=10", "--skip-ssl",
                "--execute=\(sql)", database,
            ],
            timeout: .seconds(30)
        )
    }
}
