import Foundation
import Testing

@testable import Tapedeck

/// `show`, `grep` and `export --format jsonl` with `--decode`, on the MySQL tape committed under `fixtures/`.
@Suite(.timeLimit(.minutes(3)))
struct DecodeCommandTests {
    static var fixture: String { LensReplayTests.fixture }

    @Test func showReadsAMySQLSessionThroughItsLens() async throws {
        let result = try await TapedeckProcess.run(["show", Self.fixture, "1", "--decode"])
        #expect(result.status == 0)
        for line in [
            "    mysql: greeting 5.5.5-10.11.19-MariaDB-0+deb12u1 connection 10 plugin=mysql_native_password",
            "    mysql: login user=alice database=db1 plugin=mysql_native_password",
            "    mysql: logged in",
            "    mysql: COM_QUERY select who, current_user() from t",
            "    mysql: result set: 2 columns (who, current_user()), 2 rows",
            "        one-db1 | alice@%",
            "    mysql: COM_QUIT",
        ] {
            #expect(result.stdout.contains(line + "\n"), "\(line)")
        }
        let plain = try await TapedeckProcess.run(["show", Self.fixture, "1"])
        #expect(!plain.stdout.contains("mysql:"))
    }

    @Test func grepSearchesDecodedMessages() async throws {
        let found = try await TapedeckProcess.run(["grep", Self.fixture, "--decode", "--regex", "carol@"])
        #expect(found.status == 0)
        #expect(
            found.stdout
                == "session 3  event 5  ←  mysql: result set: 2 columns (who, current_user()), 1 rows\n"
                + "    two-db1 | carol@%\n"
        )
        let none = try await TapedeckProcess.run(["grep", Self.fixture, "--decode", "no such thing"])
        #expect(none.status == 1)
    }

    @Test func exportJSONLinesCarryTheDecodedMessages() async throws {
        let result = try await TapedeckProcess.run([
            "export", Self.fixture, "--format", "jsonl", "--session", "4", "--output", "-", "--decode",
        ])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n").map { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
        }
        let decoded = lines.compactMap { $0["decoded"] as? [[String: Any]] }.joined()
        let summaries = decoded.compactMap { $0["summary"] as? String }
        #expect(summaries.contains("login user=bob database=db2 plugin=mysql_native_password"))
        #expect(summaries.contains("result set: 1 columns (who), 1 rows"))
        #expect(decoded.allSatisfy { $0["lens"] as? String == "mysql" })
        let pcap = try await TapedeckProcess.run([
            "export", Self.fixture, "--format", "pcapng", "--output", "-", "--decode",
        ])
        #expect(pcap.status == 2)
        #expect(pcap.stderr.contains("--decode works with --format jsonl"))
    }
}

/// MySQL replies read for `--decode`: errors, OK packets and prepared statements, without a tape.
struct MySQLMessageDecoderTests {
    @Test func readsAnErrorAnOKAndAPreparedStatement() {
        var decoder = MySQLMessageDecoder()
        _ = decoder.upstream(Data(MySQLPacketFramer.frame(MySQLLensTests.mariadbGreeting, sequence: 0)))
        _ = decoder.client(Data(MySQLPacketFramer.frame(MySQLLensTests.pymysqlLogin, sequence: 1)))
        #expect(
            decoder.upstream(Data(MySQLPacketFramer.frame([0, 0, 0, 2, 0, 0, 0], sequence: 2))).map(\.summary) == [
                "logged in"
            ]
        )
        let prepare = decoder.client(Data(MySQLPacketFramer.frame([0x16] + Array("select ?".utf8), sequence: 0)))
        #expect(prepare.map(\.summary) == ["COM_STMT_PREPARE select ?"])
        // Statement 1, one column, one parameter, then their definitions and EOFs.
        var replies = MySQLPacketFramer.frame([0x00, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0], sequence: 1)
        for sequence in 2...5 {
            replies += MySQLPacketFramer.frame([0x03] + Array("def".utf8), sequence: UInt8(sequence))
        }
        #expect(decoder.upstream(Data(replies)).map(\.summary) == ["prepared statement 1: 1 columns, 1 parameters"])
        _ = decoder.client(Data(MySQLPacketFramer.frame([0x03] + Array("insert".utf8), sequence: 0)))
        #expect(
            decoder.upstream(Data(MySQLPacketFramer.frame([0, 3, 7, 2, 0, 0, 0], sequence: 1))).map(\.summary) == [
                "OK, 3 rows affected, last insert id 7"
            ]
        )
        _ = decoder.client(Data(MySQLPacketFramer.frame([0x02] + Array("nope".utf8), sequence: 0)))
        let error = [0xFF, 0x19, 0x04] + Array("#42000Unknown database 'nope'".utf8)
        #expect(
            decoder.upstream(Data(MySQLPacketFramer.frame(error, sequence: 1))).map(\.summary) == [
                "ERR 1049 (42000): Unknown database 'nope'"
            ]
        )
    }
}
