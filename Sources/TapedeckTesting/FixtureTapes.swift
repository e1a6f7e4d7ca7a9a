import Foundation
import Tapedeck

/// Where the test helpers keep tapes, and the rules that keep tests that share a tape out of each other's way.
///
/// A tape named after a test lives at `fixtures/<Suite>/<test>.tape` under the package root (the nearest
/// directory above the test's source file holding `Package.swift`), or under `$TAPEDECK_FIXTURES` when set.
///
/// In record mode the first deck of a test process to record a tape replaces it, so that re-recording never
/// mixes old sessions with new ones; later decks in the same process (the cases of a parameterized test, a
/// second phase of one test) add runs to it. Decks that write the same tape take turns.
enum FixtureTapes {
    /// The environment variable that moves the fixtures directory.
    static let directoryVariable = "TAPEDECK_FIXTURES"

    /// The tape a test uses: `explicit` (relative to the package root unless absolute), or else the one named
    /// after the test.
    static func path(explicit: String?, sourceFile: String, components: [String], name: String) -> String {
        guard let explicit else { return path(sourceFile: sourceFile, components: components, name: name) }
        return explicit.hasPrefix("/") ? explicit : packageRoot(containing: sourceFile) + "/" + explicit
    }

    /// The tape for a test: `<fixtures>/<components…>/<name>.tape`.
    static func path(
        sourceFile: String,
        components: [String],
        name: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String {
        let directory: String
        if let overridden = environment[directoryVariable], !overridden.isEmpty {
            directory = overridden
        } else {
            directory = packageRoot(containing: sourceFile) + "/fixtures"
        }
        return ([directory] + components.map(fileName) + [fileName(name) + ".tape"]).joined(separator: "/")
    }

    /// The nearest directory above `file` that holds a `Package.swift`; the working directory if none does.
    static func packageRoot(containing file: String) -> String {
        var directory = URL(fileURLWithPath: file).deletingLastPathComponent()
        for _ in 0..<64 {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
                return directory.path
            }
            let parent = directory.deletingLastPathComponent()
            if parent.path == directory.path { break }
            directory = parent
        }
        return FileManager.default.currentDirectoryPath
    }

    /// A test or suite name as a file name: `fetchesUser()` becomes `fetchesUser`, `load(id:)` becomes `load_id`.
    static func fileName(_ name: String) -> String {
        var base = name.hasSuffix("()") ? String(name.dropLast(2)) : name
        base = String(base.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
        while base.hasSuffix("_") { base.removeLast() }
        return base.isEmpty ? "tape" : base
    }

    /// Starts a deck for a test, runs `body`, and always stops it.
    ///
    /// - Returns: What `body` returned, and the deck's outcome or the error its stop threw.
    static func withDeck<T>(
        _ mode: TapedeckMode?,
        tape: String,
        routes: [Route],
        options: Deck.Options,
        drainTimeout: Duration,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Deck) async throws -> T
    ) async throws -> (Result<T, any Error>, Result<DeckOutcome, any Error>) {
        let session = try await FixtureSession.start(mode, tape: tape, routes: routes, options: options)
        let result: Result<T, any Error>
        do {
            result = .success(try await Deck.$current.withValue(session.deck) { try await body(session.deck) })
        } catch {
            result = .failure(error)
        }
        return (result, await session.stop(drainTimeout: drainTimeout))
    }
}

/// A deck started for a test, holding its tape's turn while it may write the tape.
struct FixtureSession: Sendable {
    /// The running deck.
    let deck: Deck
    /// The tape whose turn this session holds, if it may write it.
    private let turn: String?

    /// Starts a deck; one that may write the tape first waits for its turn and keeps it until ``stop(drainTimeout:)``.
    static func start(
        _ mode: TapedeckMode?,
        tape: String,
        routes: [Route],
        options: Deck.Options
    ) async throws -> FixtureSession {
        let requested = try mode ?? TapedeckMode.fromEnvironment()
        let key = URL(fileURLWithPath: tape).standardizedFileURL.path
        let turn = requested == .replay || requested == .proxy ? nil : key
        if let turn { await TapeTurns.shared.acquire(turn) }
        do {
            var options = options
            // Resolved within the turn: another deck of this process may just have recorded the tape.
            let resolved = requested.resolved(forTape: tape)
            options.overwrite = resolved == .record ? await TapeTurns.shared.firstRecording(of: key) : false
            let deck = try await Deck.start(resolved, tape: tape, routes: routes, options: options)
            return FixtureSession(deck: deck, turn: turn)
        } catch let error as TapedeckError
            where error.code == .tapeUnreadable && !FileManager.default.fileExists(atPath: tape)
        {
            if let turn { await TapeTurns.shared.release(turn) }
            throw TapedeckError(
                error.code,
                error.message + "; record it with \(TapedeckMode.environmentVariable)=record"
            )
        } catch {
            if let turn { await TapeTurns.shared.release(turn) }
            throw error
        }
    }

    /// What fails a test once its deck has stopped, one line each: every replay problem, or the error the stop
    /// threw (a tape that could not be written fully).
    static func problems(of outcome: Result<DeckOutcome, any Error>, requireAll: Bool, tape: String) -> [String] {
        switch outcome {
        case .success(let outcome):
            return (outcome.replay?.failures(requireAll: requireAll) ?? []).map { "Tapedeck: \($0) (tape '\(tape)')" }
        case .failure(let error):
            return ["Tapedeck could not finish the tape '\(tape)': \(error)"]
        }
    }

    /// Stops the deck, flushing the tape, and gives up the tape's turn.
    func stop(drainTimeout: Duration) async -> Result<DeckOutcome, any Error> {
        let outcome: Result<DeckOutcome, any Error>
        do {
            outcome = .success(try await deck.stop(drainTimeout: drainTimeout))
        } catch {
            outcome = .failure(error)
        }
        if let turn { await TapeTurns.shared.release(turn) }
        return outcome
    }
}

/// Turns at writing tapes within this process, and which tapes it has recorded already.
actor TapeTurns {
    static let shared = TapeTurns()

    private var held: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var recorded: Set<String> = []

    /// Waits until no other deck of this process writes the tape, then takes the turn.
    func acquire(_ tape: String) async {
        if held.insert(tape).inserted { return }
        await withCheckedContinuation { waiting[tape, default: []].append($0) }
    }

    /// Passes the turn to the next waiting deck, if any.
    func release(_ tape: String) {
        if var queue = waiting[tape], !queue.isEmpty {
            let next = queue.removeFirst()
            waiting[tape] = queue.isEmpty ? nil : queue
            next.resume()
        } else {
            held.remove(tape)
        }
    }

    /// Whether this is the process's first recording of the tape, which therefore replaces it.
    func firstRecording(of tape: String) -> Bool {
        recorded.insert(tape).inserted
    }
}
