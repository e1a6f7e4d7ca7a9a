import Foundation
import Tapedeck

/// Runs `body` with Tapedeck between it and one upstream, and always stops Tapedeck afterwards.
///
/// `body` gets the address to point the client under test at. Once it returns or throws, the deck stops: open
/// connections get `drainTimeout` to finish, and a recording is flushed to the tape. A replay that did not go
/// as recorded then throws, so the test fails with the mismatch's diagnostics. Works in any test framework.
///
/// ```swift
/// try await withTapedeck(tape: "fixtures/redis.tape", upstream: "127.0.0.1:6379") { address in
///     let redis = try await RedisClient.connect(host: address.host!, port: address.port!)
///     #expect(try await redis.get("greeting") == "hello")
/// }
/// ```
///
/// In record mode the first deck of a test process to record a tape replaces it; later decks in the same
/// process add runs to it (see `docs/testing-guide.md`).
///
/// - Parameters:
///   - mode: What to do; `nil` (the default) takes `TAPEDECK_MODE` from the environment, and replays when
///     it is unset.
///   - tape: The tape file. Recording creates it and its directory.
///   - upstream: The real service, `HOST:PORT` or `unix:/path`; needed to record, unused in replay.
///   - listen: Where the client connects; a free loopback port by default.
///   - rules: Volatile spans and redactions, such as `RulePreset.uuid.rules`; stored in the tape when recording,
///     and added to the tape's own when replaying. Secrets go in `options.secrets`.
///   - requireAll: Also fail when a recorded session was never replayed.
///   - options: Label, pace, event loops and logger. Whether the tape is replaced is decided as above.
///   - drainTimeout: How long connections left open by `body` may run on before they are reset.
///   - body: The test code, given the address to connect to.
/// - Returns: What `body` returned.
/// - Throws: `body`'s error; otherwise a ``TapedeckError`` if the deck could not start, the tape could not be
///   written fully, or the replay mismatched.
public func withTapedeck<T>(
    _ mode: TapedeckMode? = nil,
    tape: String,
    upstream: String? = nil,
    listen: String = "127.0.0.1:0",
    rules: [Rule] = [],
    requireAll: Bool = false,
    options: Deck.Options = .testDefaults,
    drainTimeout: Duration = .seconds(1),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (Endpoint) async throws -> T
) async throws -> T {
    let route = Route(
        listen: try Endpoint(parsing: listen),
        upstream: try upstream.map(Endpoint.init(parsing:)),
        rules: rules
    )
    return try await withTapedeck(
        mode,
        tape: tape,
        routes: [route],
        requireAll: requireAll,
        options: options,
        drainTimeout: drainTimeout
    ) { deck in
        try await body(deck.address)
    }
}

/// Runs `body` with Tapedeck serving several routes on one tape, and always stops Tapedeck afterwards.
///
/// `body` gets the running ``Deck``; ask it for each route's address with ``Deck/address(of:)``.
///
/// ```swift
/// let routes = [
///     Route(name: "db", upstream: .tcp(host: "127.0.0.1", port: 5432)),
///     Route(name: "cache", upstream: .tcp(host: "127.0.0.1", port: 6379)),
/// ]
/// try await withTapedeck(tape: "fixtures/checkout.tape", routes: routes) { deck in
///     let app = try App(database: try deck.address(of: "db"), cache: try deck.address(of: "cache"))
///     try await app.checkout()
/// }
/// ```
///
/// - Parameters:
///   - mode: What to do; `nil` takes `TAPEDECK_MODE` from the environment, and replays when it is unset.
///   - tape: The tape file.
///   - routes: The routes, each with a unique name; their upstreams are needed to record.
///   - requireAll: Also fail when a recorded session was never replayed.
///   - options: Label, pace, event loops and logger.
///   - drainTimeout: How long connections left open by `body` may run on before they are reset.
///   - body: The test code, given the running deck.
/// - Returns: What `body` returned.
/// - Throws: As ``withTapedeck(_:tape:upstream:listen:rules:requireAll:options:drainTimeout:isolation:_:)``.
public func withTapedeck<T>(
    _ mode: TapedeckMode? = nil,
    tape: String,
    routes: [Route],
    requireAll: Bool = false,
    options: Deck.Options = .testDefaults,
    drainTimeout: Duration = .seconds(1),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (Deck) async throws -> T
) async throws -> T {
    let (result, outcome) = try await FixtureTapes.withDeck(
        mode,
        tape: tape,
        routes: routes,
        options: options,
        drainTimeout: drainTimeout,
        body
    )
    switch (result, outcome) {
    case (.success(let value), .success(let outcome)):
        try outcome.replay?.verify(requireAll: requireAll)
        return value
    case (.success, .failure(let stopError)):
        throw stopError
    case (.failure(let error), let outcome):
        // The test's own error comes first; what Tapedeck saw is often why it happened, so say it too.
        switch outcome {
        case .success(let outcome):
            for failure in outcome.replay?.failures(requireAll: requireAll) ?? [] {
                StandardStreams.writeError("tapedeck: \(failure)\n")
            }
        case .failure(let stopError):
            StandardStreams.writeError("tapedeck: error: \(stopError)\n")
        }
        throw error
    }
}
