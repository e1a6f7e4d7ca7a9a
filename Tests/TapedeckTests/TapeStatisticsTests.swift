import Foundation
import GRDB
import Testing

@testable import Tapedeck

/// `tapedeck stats` on tapes whose counts no recording writes.
struct TapeStatisticsTests {
    @Test func aLargestSessionWhoseBytesAddUpBeyond64BitsIsAnErrorNotATrap() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("crafted.tape")
        // Each count fits 64 bits, and so does the route's total; one session's two directions do not.
        try CraftedTape.make(
            at: path,
            """
            UPDATE sessions SET client_bytes = 9e18, upstream_bytes = 9e18 WHERE id = 1;
            UPDATE sessions SET client_bytes = -9e18, upstream_bytes = -9e18 WHERE id = 2;
            """
        )
        let error = #expect(throws: TapedeckError.self) { try TapeStatistics(tape: try Tape(readingAt: path)) }
        #expect(error?.message.contains("session 1") == true, "\(error.map { "\($0)" } ?? "")")
        let result = try await TapedeckProcess.run(["stats", path])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }
}
