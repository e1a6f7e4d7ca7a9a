import Foundation
import Tapedeck
import XCTest

extension XCTestCase {
    /// Starts Tapedeck for this test, on a tape named after it, and stops it when the test ends.
    ///
    /// Call it from `setUp()` (or the test itself). The deck is stopped by a teardown block, after
    /// `tearDown()`, whether the test passed or not; a replay mismatch, or a tape that could not be written
    /// fully, then fails the test. The tape is `fixtures/<TestClass>/<testMethod>.tape` under the package root
    /// unless `tape:` names one.
    ///
    /// ```swift
    /// final class CacheTests: XCTestCase {
    ///     var deck: Deck!
    ///
    ///     override func setUp() async throws {
    ///         deck = try await startTapedeck(upstream: "127.0.0.1:6379")
    ///     }
    ///
    ///     func testGreeting() async throws {
    ///         // … connect the client under test to deck.address …
    ///     }
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - mode: What to do; `nil` (the default) takes `TAPEDECK_MODE`, and replays when it is unset.
    ///   - upstream: The real service, `HOST:PORT` or `unix:/path`; needed to record, unused in replay.
    ///   - tape: A tape path instead of the one named after the test; relative to the package root.
    ///   - requireAll: Also fail the test when a recorded session was never replayed.
    ///   - options: Label, pace, event loops and logger.
    ///   - file: The test's source file, which locates the package root; leave the default.
    /// - Returns: The running deck.
    @discardableResult
    public func startTapedeck(
        _ mode: TapedeckMode? = nil,
        upstream: String? = nil,
        tape: String? = nil,
        requireAll: Bool = false,
        options: Deck.Options = .testDefaults,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> Deck {
        let route = Route(upstream: try upstream.map(Endpoint.init(parsing:)))
        return try await startTapedeck(
            mode,
            routes: [route],
            tape: tape,
            requireAll: requireAll,
            options: options,
            file: file,
            line: line
        )
    }

    /// Starts Tapedeck with several named routes for this test; see
    /// ``startTapedeck(_:upstream:tape:requireAll:options:file:line:)``.
    @discardableResult
    public func startTapedeck(
        _ mode: TapedeckMode? = nil,
        routes: [Route],
        tape: String? = nil,
        requireAll: Bool = false,
        options: Deck.Options = .testDefaults,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> Deck {
        let sourceFile = "\(file)"
        let tapePath = FixtureTapes.path(
            explicit: tape,
            sourceFile: sourceFile,
            components: [String(describing: type(of: self))],
            name: testMethodName
        )
        let session = try await FixtureSession.start(mode, tape: tapePath, routes: routes, options: options)
        addTeardownBlock { [requireAll] in
            let outcome = await session.stop(drainTimeout: .seconds(1))
            for problem in FixtureSession.problems(of: outcome, requireAll: requireAll, tape: tapePath) {
                XCTFail(problem, file: file, line: line)
            }
        }
        return session.deck
    }

    /// The test method's name: `testGreeting` from `-[CacheTests testGreeting]` or `CacheTests.testGreeting`.
    private var testMethodName: String {
        let trimmed = name.trimmingCharacters(in: CharacterSet(charactersIn: "-[]"))
        return String(trimmed.split(whereSeparator: { $0 == " " || $0 == "." }).last ?? Substring(trimmed))
    }
}
