import Tapedeck
import Testing

/// A Swift Testing trait that runs a test inside Tapedeck, on a tape named after the test.
///
/// The tape is `fixtures/<Suite>/<test>.tape` under the package root unless `tape:` names one. Inside the test,
/// ``Deck/current`` is the running deck. A replay mismatch (or, with `requireAll`, a session never replayed)
/// fails the test with the mismatch's diagnostics, as does a tape that could not be written fully.
///
/// ```swift
/// @Test(.tapedeck(upstream: "127.0.0.1:6379"))
/// func cachesGreeting() async throws {
///     let address = try #require(Deck.current).address
///     // … connect the client under test to address …
/// }
/// ```
///
/// On a suite, every test in it gets its own deck and tape. The mode is `TAPEDECK_MODE`'s, replay when
/// unset, unless the trait names one: `TAPEDECK_MODE=record swift test` re-records every such tape.
public struct TapedeckTrait: TestTrait, SuiteTrait, TestScoping {
    /// The mode; `nil` takes `TAPEDECK_MODE`, else replay.
    public var mode: TapedeckMode?
    /// The routes, each with its upstream as text (`HOST:PORT` or `unix:/path`), parsed when the test runs.
    public var routes: [(name: String, upstream: String?)]
    /// The tape, if not the one named after the test. Relative paths are from the package root.
    public var tape: String?
    /// Whether a recorded session never replayed fails the test.
    public var requireAll: Bool
    /// Label, pace, event loops and logger for the deck.
    public var options: Deck.Options

    /// On a suite, each test gets its own deck.
    public var isRecursive: Bool { true }

    /// Runs the test (or one of its cases) inside a deck.
    public func provideScope(
        for test: Test,
        testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        let sourceFile = test.sourceLocation.filePath
        let tapePath = FixtureTapes.path(
            explicit: tape,
            sourceFile: sourceFile,
            components: Array(test.id.nameComponents.dropLast()),
            name: test.name
        )
        let parsed = try routes.map { route in
            Route(name: route.name, upstream: try route.upstream.map(Endpoint.init(parsing:)))
        }
        let (result, outcome) = try await FixtureTapes.withDeck(
            mode,
            tape: tapePath,
            routes: parsed,
            options: options,
            drainTimeout: .seconds(1)
        ) { _ in
            try await function()
        }
        for problem in FixtureSession.problems(of: outcome, requireAll: requireAll, tape: tapePath) {
            Issue.record(Comment(rawValue: problem), sourceLocation: test.sourceLocation)
        }
        try result.get()
    }
}

extension Trait where Self == TapedeckTrait {
    /// Runs the test inside Tapedeck with one route to `upstream`, on a tape named after the test.
    ///
    /// - Parameters:
    ///   - mode: What to do; `nil` (the default) takes `TAPEDECK_MODE`, and replays when it is unset.
    ///   - upstream: The real service, `HOST:PORT` or `unix:/path`; needed to record, unused in replay.
    ///   - tape: A tape path instead of `fixtures/<Suite>/<test>.tape`; relative to the package root.
    ///   - requireAll: Also fail the test when a recorded session was never replayed.
    ///   - options: Label, pace, event loops and logger.
    public static func tapedeck(
        _ mode: TapedeckMode? = nil,
        upstream: String? = nil,
        tape: String? = nil,
        requireAll: Bool = false,
        options: Deck.Options = .testDefaults
    ) -> Self {
        TapedeckTrait(
            mode: mode,
            routes: [(Route.defaultName, upstream)],
            tape: tape,
            requireAll: requireAll,
            options: options
        )
    }

    /// Runs the test inside Tapedeck with named routes, each `name: upstream`, on a tape named after the test.
    ///
    /// ```swift
    /// @Test(.tapedeck(routes: ["db": "127.0.0.1:5432", "cache": "127.0.0.1:6379"]))
    /// func checkout() async throws {
    ///     let deck = try #require(Deck.current)
    ///     let db = try deck.address(of: "db")
    /// }
    /// ```
    public static func tapedeck(
        _ mode: TapedeckMode? = nil,
        routes: KeyValuePairs<String, String>,
        tape: String? = nil,
        requireAll: Bool = false,
        options: Deck.Options = .testDefaults
    ) -> Self {
        TapedeckTrait(
            mode: mode,
            routes: routes.map { ($0.key, $0.value) },
            tape: tape,
            requireAll: requireAll,
            options: options
        )
    }
}
