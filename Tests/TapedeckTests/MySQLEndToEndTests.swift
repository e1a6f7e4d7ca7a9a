import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import Tapedeck

/// Real MySQL clients against a real MariaDB, through the `tapedeck` executable: recorded, then replayed with
/// MariaDB stopped, in another order than recorded.
///
/// Every run of a client logs in differently: the `mariadb` CLI, PyMySQL and Connector/Python send their process
/// id among the login's connect attributes. The MySQL lens matches logins on user, database and capabilities, so
/// each client gets the session of its own user and database, and with it its own rows; `--protocol raw` shows
/// that byte-exact matching cannot.
@Suite(
    .serialized,
    .enabled(if: MariaDBServer.isInstalled, "needs MariaDB and the mariadb CLI (installed by .ci/run)"),
    .timeLimit(.minutes(3))
)
struct MySQLEndToEndTests {
    /// A MySQL client run: which program, as whom, on which database.
    struct Client: Sendable, CustomStringConvertible {
        enum Program: String, Sendable {
            /// The `mariadb` CLI (libmariadb).
            case cli
            /// PyMySQL, through `clients/mysql_queries.py`.
            case pymysql
        }

        var program: Program
        var user: String
        var database: String

        var description: String { "\(program) \(user)@\(database)" }

        /// Asks ``MariaDBServer/query`` through 127.0.0.1:`port`; returns the exit status and the rows printed
        /// (with the client's errors, for the expectation's message).
        func run(port: Int) throws -> (status: Int32, output: String) {
            switch program {
            case .cli:
                return try MariaDBServer.cli(port: port, user: user, database: database, MariaDBServer.query)
            case .pymysql:
                let run = try PythonFixture.mysqlQueries(
                    port: port,
                    user: user,
                    database: database,
                    [[MariaDBServer.query]]
                )
                return (run.status, run.stdout + run.stderr)
            }
        }

        /// What this client must print.
        var expected: String { MariaDBServer.rows(of: user, in: database) }
    }

    /// Records `clients` one after the other through `tapedeck record` to `mariadb`, into `tape`; returns what
    /// each printed.
    static func record(
        _ clients: [Client],
        to mariadb: MariaDBServer,
        tape: String
    ) async throws -> [(status: Int32, output: String)] {
        try await UDPEndToEndTests.record(["--upstream", "127.0.0.1:\(mariadb.port)", "--tape", tape]) { ports in
            try clients.map { try $0.run(port: ports["default"]!) }
        }.0
    }

    /// The summary `tapedeck replay` prints at shutdown when `sessions` connections each got a recorded session
    /// of their own, and none mismatched.
    static func summary(sessions: Int) -> String {
        "replay: \(sessions) connections, \(sessions) sessions replayed, 0 mismatched, 0 unused"
    }

    /// Replays `tape` with `--strict` (and `options`) while `clients` run one after the other, or all at once;
    /// returns what each printed, the replayer's exit status and its log (the summary and any mismatch).
    static func replay(
        _ clients: [Client],
        tape: String,
        options: [String] = ["--require-all"],
        concurrently: Bool = false
    ) async throws -> (outputs: [(status: Int32, output: String)], status: Int32, log: String) {
        let (outputs, status, log) = try await UDPEndToEndTests.replay(["--tape", tape, "--strict"] + options) {
            ports in
            let port = ports["default"]!
            if concurrently { return try Self.concurrently(clients.count) { try clients[$0].run(port: port) } }
            return try clients.map { try $0.run(port: port) }
        }
        return (outputs, status, log)
    }

    /// Runs `body` for each index on a thread of its own, all at once, and returns the results in index order.
    /// Each client run has a time limit of its own, so the wait for all of them is bounded.
    static func concurrently<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
        let results = NIOLockedValueBox([Int: Result<T, any Error>]())
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread.detachNewThread {
                let result = Result { try body(index) }
                results.withLockedValue { $0[index] = result }
                group.leave()
            }
        }
        group.wait()
        return try results.withLockedValue { results in try (0..<count).map { try results[$0]!.get() } }
    }
}

// MARK: - Logins steered by user and database

extension MySQLEndToEndTests {
    /// Three users on two databases ask the same query with the `mariadb` CLI and with PyMySQL; replayed in
    /// another order with MariaDB stopped, every client gets its own user's rows, and every session is served.
    @Test(.enabled(if: PythonFixture.pythonWithPyMySQL != nil, "needs PyMySQL (installed by .ci/run)"))
    func eachUserGetsItsOwnRowsReplayedInAnotherOrder() async throws {
        let mariadb = try await MariaDBServer()
        defer { mariadb.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("mysql.tape")
        let clients = [
            Client(program: .cli, user: "alice", database: "db1"),
            Client(program: .cli, user: "bob", database: "db2"),
            Client(program: .pymysql, user: "carol", database: "db1"),
            Client(program: .pymysql, user: "bob", database: "db2"),
            Client(program: .cli, user: "carol", database: "db1"),
            Client(program: .pymysql, user: "alice", database: "db1"),
        ]
        let recorded = try await Self.record(clients, to: mariadb, tape: tape)
        mariadb.stop()
        for (client, run) in zip(clients, recorded) {
            #expect(run.status == 0 && run.output == client.expected, "recording \(client): \(run.output)")
        }

        // Interleaved differently: neither the same order nor the same program after program.
        let order = [3, 0, 5, 1, 4, 2]
        let replayed = try await Self.replay(order.map { clients[$0] }, tape: tape)
        for (client, run) in zip(order.map { clients[$0] }, replayed.outputs) {
            #expect(run.status == 0 && run.output == client.expected, "replaying \(client): \(run.output)")
        }
        #expect(replayed.status == 0, "\(replayed.log)")
        #expect(replayed.log.contains(Self.summary(sessions: clients.count)), "\(replayed.log)")
    }

    /// Twelve clients, two of each program for each user, recorded one after the other and replayed all at once:
    /// sessions with the same login are interchangeable, and none goes to a client of another user or database.
    @Test(.enabled(if: PythonFixture.pythonWithPyMySQL != nil, "needs PyMySQL (installed by .ci/run)"))
    func twelveClientsAtOnceEachGetTheirOwnUsersRows() async throws {
        let mariadb = try await MariaDBServer()
        defer { mariadb.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("concurrent.tape")
        let clients = (0..<2).flatMap { _ in
            MariaDBServer.users.flatMap { user, database in
                [Client.Program.cli, .pymysql].map { Client(program: $0, user: user, database: database) }
            }
        }
        let recorded = try await Self.record(clients, to: mariadb, tape: tape)
        mariadb.stop()
        for (client, run) in zip(clients, recorded) {
            #expect(run.status == 0 && run.output == client.expected, "recording \(client): \(run.output)")
        }

        let replayed = try await Self.replay(clients.reversed(), tape: tape, concurrently: true)
        for (client, run) in zip(clients.reversed(), replayed.outputs) {
            #expect(run.status == 0 && run.output == client.expected, "replaying \(client): \(run.output)")
        }
        #expect(replayed.status == 0, "\(replayed.log)")
        #expect(replayed.log.contains(Self.summary(sessions: clients.count)), "\(replayed.log)")
    }

    /// Connector/Python's prepared cursor speaks the binary protocol: COM_STMT_PREPARE, then COM_STMT_EXECUTE with
    /// typed parameters, for a SELECT and an INSERT. Replayed with MariaDB stopped, in another order, each user's
    /// statements get their recorded results, the INSERT's row included.
    @Test(
        .enabled(
            if: PythonFixture.pythonWithConnector != nil,
            "needs mysql-connector-python (installed by .ci/run)"
        )
    )
    func preparedStatementsOverTheBinaryProtocol() async throws {
        let mariadb = try await MariaDBServer()
        defer { mariadb.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("prepared.tape")
        let select = "SELECT id, body FROM notes WHERE owner = %s AND id >= %s ORDER BY id"
        let sessions: [(user: String, database: String, statements: [[any Sendable]], expected: String)] = [
            (
                "alice", "db1",
                [
                    [select, "alice", 2], ["INSERT INTO notes VALUES (%s, %s, %s)", 10, "alice", "alpha ten"],
                    [select, "alice", 1],
                ],
                "3\talpha two\naffected 1\n1\talpha one\n3\talpha two\n10\talpha ten\n"
            ),
            ("bob", "db2", [[select, "bob", 1]], "1\tbeta one\n2\tbeta two\n"),
            ("carol", "db1", [[select, "carol", 1]], "2\tgamma one\n"),
        ]
        @Sendable func run(_ index: Int, port: Int) throws -> PythonFixture.Run {
            let session = sessions[index]
            return try PythonFixture.mysqlQueries(
                port: port,
                user: session.user,
                database: session.database,
                session.statements,
                driver: .connector,
                prepared: true
            )
        }
        let (recorded, _) = try await UDPEndToEndTests.record([
            "--upstream", "127.0.0.1:\(mariadb.port)", "--tape", tape,
        ]) { ports in
            try sessions.indices.map { try run($0, port: ports["default"]!) }
        }
        mariadb.stop()
        for (session, run) in zip(sessions, recorded) {
            #expect(run.status == 0 && run.stdout == session.expected, "recording \(session.user): \(run)")
        }

        let order = [2, 0, 1]
        let (replayed, status, log) = try await UDPEndToEndTests.replay([
            "--tape", tape, "--strict", "--require-all",
        ]) { ports in
            try order.map { try run($0, port: ports["default"]!) }
        }
        for (index, run) in zip(order, replayed) {
            #expect(
                run.status == 0 && run.stdout == sessions[index].expected,
                "replaying \(sessions[index].user): \(run)"
            )
        }
        #expect(status == 0, "\(log)")
        #expect(log.contains(Self.summary(sessions: sessions.count)), "\(log)")
    }

    /// With the lens off (`--protocol raw`), the `mariadb` CLI's login differs from the recorded one in its
    /// process id, and nothing matches: the lens is what makes MySQL clients replay.
    @Test func theCLIMismatchesWithTheLensOff() async throws {
        let mariadb = try await MariaDBServer()
        defer { mariadb.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("raw.tape")
        let alice = Client(program: .cli, user: "alice", database: "db1")
        let recorded = try await Self.record([alice], to: mariadb, tape: tape)
        mariadb.stop()
        #expect(recorded[0].status == 0 && recorded[0].output == alice.expected, "\(recorded[0].output)")

        let replayed = try await Self.replay([alice], tape: tape, options: ["--protocol", "raw"])
        #expect(replayed.outputs[0].status != 0, "\(replayed.outputs[0].output)")
        #expect(replayed.status == 3, "\(replayed.log)")
        #expect(replayed.log.contains("mismatch") && replayed.log.contains("_pid"), "\(replayed.log)")
    }

    /// A user identified via ed25519 (MariaDB's own plugin, which libmariadb's client has): the upstream's nonce
    /// comes from the tape, and the signature over it is deterministic, so the login replays as recorded.
    @Test(.enabled(if: MariaDBServer.hasEd25519, "needs MariaDB's auth_ed25519 plugin"))
    func anEd25519LoginReplays() async throws {
        let mariadb = try await MariaDBServer()
        defer { mariadb.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("ed25519.tape")
        let clients = [
            Client(program: .cli, user: "dave", database: "db2"),
            Client(program: .cli, user: "bob", database: "db2"),
        ]
        let recorded = try await Self.record(clients, to: mariadb, tape: tape)
        mariadb.stop()
        #expect(recorded[0].output == "dave@%\tdb2\t3\tdelta one\n")
        for (client, run) in zip(clients, recorded) {
            #expect(run.status == 0 && run.output == client.expected, "recording \(client): \(run.output)")
        }

        let replayed = try await Self.replay(clients.reversed(), tape: tape)
        for (client, run) in zip(clients.reversed(), replayed.outputs) {
            #expect(run.status == 0 && run.output == client.expected, "replaying \(client): \(run.output)")
        }
        #expect(replayed.status == 0, "\(replayed.log)")
        #expect(replayed.log.contains(Self.summary(sessions: clients.count)), "\(replayed.log)")
    }
}
