import Foundation
import Testing

@testable import Tapedeck
@testable import TapedeckTesting

/// `tapedeck diff`: sessions paired as replay picks them, the first exchange that differs, and the exit status.
@Suite(.timeLimit(.minutes(2)))
struct TapeDiffTests {
    static let base: [[ConversationTape.Read]] = [
        [.client("GET /a\r\n"), .upstream("alpha\r\n"), .client("GET /b\r\n"), .upstream("bravo\r\n")],
        [.client("PING\r\n"), .upstream("+PONG\r\n")],
        [.client("GET /c\r\n"), .upstream("charlie\r\n")],
    ]

    @Test func aTapeAgainstItselfIsIdenticalWhateverTheTiming() throws {
        let diff = try Self.diff(Self.base, Self.base)
        #expect(diff.identical)
        #expect(diff.unchanged == [.init(a: 1, b: 1), .init(a: 2, b: 2), .init(a: 3, b: 3)])
    }

    @Test func sessionsPairByTheirClientBytesInAnyOrderAndAChangedReplyIsFound() throws {
        // The same sessions in another order, with the second reply of the first one changed.
        var other = [Self.base[2], Self.base[1], Self.base[0]]
        other[2][3] = .upstream("bravissimo\r\n")
        let diff = try Self.diff(Self.base, other)
        #expect(!diff.identical)
        #expect(diff.unchanged == [.init(a: 2, b: 2), .init(a: 3, b: 1)])
        let change = try #require(diff.changed.first)
        #expect(change.a == 1 && change.b == 3)
        #expect(change.exchange == 2)
        #expect(change.direction == "upstream_to_client")
        #expect(change.offset == 4)
        #expect(change.aExcerpt == "bravo\\r\\n")
        #expect(change.bExcerpt == "bravissimo\\r\\n")
    }

    @Test func aClientThatAsksSomethingElsePairsWithTheClosestSession() throws {
        var other = Self.base
        other[0][2] = .client("GET /z\r\n")
        let diff = try Self.diff(Self.base, other)
        let change = try #require(diff.changed.first)
        #expect(change.a == 1 && change.b == 1)
        #expect(change.exchange == 2 && change.direction == "client_to_upstream" && change.offset == 5)
        #expect(diff.onlyInA.isEmpty && diff.onlyInB.isEmpty)
    }

    @Test func sessionsWithNothingInCommonAreOnlyInOneTape() throws {
        let diff = try Self.diff(Self.base, Array(Self.base.prefix(2)) + [[.client("QUIT\r\n"), .upstream("+OK\r\n")]])
        #expect(diff.onlyInA.map(\.session) == [3])
        #expect(diff.onlyInB.map(\.session) == [3])
        #expect(diff.onlyInA.first?.clientBytes == 8)
        #expect(diff.unchanged.count == 2)
    }

    @Test func theCommandExitsFourOnADifferenceAndPrintsJSON() async throws {
        let directory = try TemporaryDirectory()
        let a = directory.path("a.tape")
        let b = directory.path("b.tape")
        try ConversationTape.make(at: a, Self.base)
        var other = Self.base
        other[1][1] = .upstream("-ERR\r\n")
        try ConversationTape.make(at: b, other)
        let same = try await TapedeckProcess.run(["diff", a, a])
        #expect(same.status == 0)
        #expect(same.stdout.contains("3 unchanged, 0 changed, 0 only in a, 0 only in b"))
        let text = try await TapedeckProcess.run(["diff", a, b])
        #expect(text.status == 4)
        #expect(
            text.stdout.contains("changed: session 2 → 2 (route 'default'): exchange 1, upstream byte 0"),
            "\(text.stdout)"
        )
        #expect(!text.stdout.contains("\u{1B}["))
        let json = try await TapedeckProcess.run(["diff", a, b, "--json"])
        #expect(json.status == 4)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["identical"] as? Bool == false)
        #expect((object?["changed"] as? [[String: Any]])?.first?["b_excerpt"] as? String == "-ERR\\r\\n")
        let missing = try await TapedeckProcess.run(["diff", a, directory.path("nope.tape")])
        #expect(missing.status == 1)
        #expect(missing.stderr.split(separator: "\n").count == 1)
    }

    /// Recorded twice from nginx with the timestamps preset: identical while the files are, and the changed
    /// file's session found once it changed, while the other stays unchanged.
    @Test(.enabled(if: NginxServer.isInstalled, "needs nginx and curl (installed by .ci/run)"))
    func aTapeAndItsReRecordingFromNginx() async throws {
        let nginx = try await NginxServer(files: ["a.txt": Data("alpha\n".utf8), "b.txt": Data("bravo\n".utf8)])
        defer { nginx.stop() }
        let directory = try TemporaryDirectory()
        let rules = RulePreset.timestamps.rules
        func record(_ name: String) async throws -> String {
            let tape = directory.path(name)
            try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(nginx.port)", rules: rules) {
                address throws in
                _ = try NginxServer.curl(port: address.port!, ["/a.txt"])
                _ = try NginxServer.curl(port: address.port!, ["/b.txt"])
            }
            return tape
        }
        let first = try await record("first.tape")
        try await Task.sleep(for: .milliseconds(1100))  // a new Date header
        let again = try await record("again.tape")
        let same = try TapeDiff.compare(try Tape(readingAt: first), try Tape(readingAt: again))
        #expect(same.identical, "\(same)")
        try Data("bravissimo\n".utf8).write(to: URL(fileURLWithPath: nginx.root + "/b.txt"))
        let changed = try await record("changed.tape")
        let diff = try TapeDiff.compare(try Tape(readingAt: first), try Tape(readingAt: changed))
        #expect(diff.unchanged == [.init(a: 1, b: 1)])
        let change = try #require(diff.changed.first, "\(diff)")
        #expect(change.a == 2 && change.b == 2 && change.exchange == 1)
        #expect(change.direction == "upstream_to_client")
    }

    static func diff(_ a: [[ConversationTape.Read]], _ b: [[ConversationTape.Read]]) throws -> TapeDiff {
        let directory = try TemporaryDirectory()
        try ConversationTape.make(at: directory.path("a.tape"), a)
        try ConversationTape.make(at: directory.path("b.tape"), b)
        return try TapeDiff.compare(
            try Tape(readingAt: directory.path("a.tape")),
            try Tape(readingAt: directory.path("b.tape"))
        )
    }
}
