import Foundation
import NIOCore
import Testing

@testable import Tapedeck

/// Replay through a protocol lens, on the MySQL tape committed under `fixtures/` (the `mariadb` CLI as alice,
/// bob and carol, then PyMySQL as bob, against MariaDB 10.11): no MySQL server or client needed.
@Suite(.timeLimit(.minutes(3)))
struct LensReplayTests {
    static var fixture: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("fixtures/mysql.tape").path
    }

    /// What the client of `session` sent, as another run of the same client would send it: another process id
    /// and another auth response (it answered another salt).
    static func anotherRun(of session: Int64, in tape: Tape) throws -> ByteBuffer {
        var stream = Data()
        try tape.forEachEvent(inSession: session) { event in
            if event.direction == .clientToUpstream, event.kind == .data { stream += event.payload ?? Data() }
        }
        var bytes = [UInt8](stream)
        let pid = try #require(bytes.firstRange(of: Array("_pid".utf8)))
        let digits = Int(bytes[pid.upperBound])
        for index in (pid.upperBound + 1)..<(pid.upperBound + 1 + digits) { bytes[index] = UInt8(ascii: "7") }
        // The login packet: a 4-byte header, 32 fixed bytes, the user's name ending in a NUL, then the auth
        // response's length and the response.
        let userEnd = try #require(bytes[36...].firstIndex(of: 0))
        let length = Int(bytes[userEnd + 1])
        #expect(length == 20)
        for index in (userEnd + 2)..<(userEnd + 2 + length) { bytes[index] ^= 0x5A }
        return ByteBuffer(bytes: bytes)
    }

    @Test func eachClientGetsItsOwnUsersSessionInAnotherOrderThanRecorded() async throws {
        let tape = try Tape(readingAt: Self.fixture)
        let server = try ReplayServer(tape: tape, routes: [Route()], options: .init())
        let address = try await server.start()[0].address
        // Recorded as alice (db1), bob (db2), carol (db1), bob again with PyMySQL; replayed carol first.
        let expectations: [(session: Int64, has: String, hasNot: String)] = [
            (3, "carol@%", "alice@%"), (2, "bob@%", "alice@%"), (1, "alice@%", "carol@%"),
        ]
        for (session, has, hasNot) in expectations {
            let request = try Self.anotherRun(of: session, in: tape)
            let connection = try await TestClient.connect(to: address)
            let reply = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(request)
                outbound.finish()
                return await TestClient.readAll(inbound).bytes
            }
            let text = String(decoding: reply.readableBytesView, as: UTF8.self)
            #expect(text.contains(has), "session \(session)")
            #expect(!text.contains(hasNot), "session \(session)")
        }
        let report = await server.shutdown()
        #expect(report.mismatches.isEmpty)
        #expect(Set(report.replayed.map(\.session)) == [1, 2, 3])
    }

    @Test func withoutTheLensTheSameClientMismatches() async throws {
        let tape = try Tape(readingAt: Self.fixture)
        let server = try ReplayServer(tape: tape, routes: [Route(lens: .raw)], options: .init())
        let address = try await server.start()[0].address
        let request = try Self.anotherRun(of: 3, in: tape)
        let connection = try await TestClient.connect(to: address)
        try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(request)
            outbound.finish()
            _ = await TestClient.readAll(inbound)
        }
        let report = await server.shutdown()
        #expect(report.mismatches.count == 1)
    }
}
