import Foundation

/// The MySQL client under `fixtures/`, with PyMySQL or MySQL Connector/Python.
///
/// ```swift
/// let run = try PythonFixture.mysqlQueries(port: port, user: "carol", database: "db1", [[MariaDBServer.query]])
/// #expect(run.stdout == MariaDBServer.rows(of: "carol", in: "db1"))
/// ```
extension PythonFixture {
    /// A `python3` that can import PyMySQL (`.ci/run` installs it with pip).
    static let pythonWithPyMySQL = interpreter(importing: ["pymysql"])

    /// A `python3` that can import MySQL Connector/Python (`.ci/run` installs `mysql-connector-python` with pip).
    static let pythonWithConnector = interpreter(importing: ["mysql.connector"])

    /// The driver `clients/mysql_queries.py` speaks through.
    enum MySQLDriver: String, Sendable {
        /// PyMySQL: text queries only, parameters quoted in by the driver.
        case pymysql
        /// MySQL Connector/Python, pure Python; with `prepared`, the binary protocol.
        case connector
    }

    /// `clients/mysql_queries.py`: logs in to 127.0.0.1:`port` as `user` (password `<user>-pw`) on `database` and
    /// runs `statements` (each the SQL text, with `%s` placeholders, then its parameters, strings or integers),
    /// through the binary protocol with `prepared`. Prints each row as tab-separated values, or `affected N`.
    static func mysqlQueries(
        port: Int,
        user: String,
        database: String,
        _ statements: [[any Sendable]],
        driver: MySQLDriver = .pymysql,
        prepared: Bool = false,
        timeout: Duration = .seconds(60)
    ) throws -> Run {
        let encoded = try statements.map { statement in
            String(decoding: try JSONSerialization.data(withJSONObject: statement), as: UTF8.self)
        }
        return try run(
            "clients/mysql_queries.py",
            ["\(port)", user, database] + encoded + ["--driver", driver.rawValue] + (prepared ? ["--prepared"] : []),
            python: driver == .pymysql ? pythonWithPyMySQL : pythonWithConnector,
            timeout: timeout
        )
    }
}
