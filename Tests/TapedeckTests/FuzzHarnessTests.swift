import Foundation
import Testing

@testable import Tapedeck

/// The tape and matcher fuzz harnesses, which only `scripts/fuzz` runs for long, on inputs known to matter: they
/// must keep compiling against the library, find nothing in what Tapedeck handles well, and reach the inputs that
/// once crashed it.
struct FuzzHarnessTests {
    @Test func theTapeHarnessReadsTheFixturesAndTheHostileTapesWithoutAFinding() throws {
        let directory = try TemporaryDirectory()
        try BadInputTests.prepare(directory)
        let fixtures = ParserFuzzTests.repository.appendingPathComponent("fixtures")
        var tapes = try FileManager.default.subpathsOfDirectory(atPath: fixtures.path).filter { $0.hasSuffix(".tape") }
            .map { fixtures.appendingPathComponent($0).path }
        tapes += try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter {
            $0.hasSuffix(".tape")
        }
        .map(directory.path)
        #expect(tapes.count >= 10, "\(tapes)")
        for tape in tapes {
            let finding = TapeFuzzing.read(
                try Data(contentsOf: URL(fileURLWithPath: tape)),
                at: directory.path("in.tape")
            )
            #expect(finding == nil, "\(tape): \(finding.map { "\($0)" } ?? "")")
        }
        // Not a tape at all, and nothing.
        #expect(TapeFuzzing.read(Data("routes: []\n".utf8), at: directory.path("in.tape")) == nil)
        #expect(TapeFuzzing.read(Data(), at: directory.path("in.tape")) == nil)
    }

    /// Inputs of `scripts/fuzz`'s matcher seeds, and of two crashes: a delay scaled past 64 bits at half pace, and
    /// the recursion between following a lead and leaving it.
    @Test(arguments: [
        "AP//AAMBBw8AAgAAFAYAAAcA",
        "A///AAECAwQAAAIABAcCAQQHAwAFAwMBBQMGAAAGAAA=",
        "AgAAAQQAA2FiYwECT0sCBQECAwQAAgAACAYAAAcA",
        "Cv////9///////////8=",
        "AEZscGF0cnBwcP8AAwEHDwAAAgAAFBQAAAA=",
    ])
    func theMatcherHarnessPlaysWithoutAFinding(base64: String) throws {
        let input = try #require(Data(base64Encoded: base64))
        let finding = MatcherFuzzing.run(input)
        #expect(finding == nil, "\(finding.map { "\($0)" } ?? "")")
    }

    @Test func everyRecordedSessionOfTheMatcherHarnessMatchesItsOwnClientInAnyChunking() {
        for script in MatcherFuzzing.library {
            for size in [1, 2, 5, 1_000] {
                let finding = MatcherFuzzing.playOwnClient(of: script, chunkSize: { _ in size }, pace: .fast)
                #expect(
                    finding == nil,
                    "session \(script.sessionID), chunks of \(size): \(finding.map { "\($0)" } ?? "")"
                )
            }
        }
    }
}
