import Atomics
import NIOConcurrencyHelpers

/// The toxics of one route, changed at any time (by a fault file at start, or the control API while it runs)
/// and read by every connection of the route.
///
/// Connections look at ``version`` on each event, one atomic load, and take a new ``snapshot()`` only when it
/// changed; a route without toxics costs them nothing else. Changes are also pushed to observers, so that data
/// held by a `timeout` toxic flows once it is removed and a route taken `down` resets its open connections.
///
/// Whether a toxic acts on a connection (its `toxicity`) is drawn from the route's seed, the connection's order
/// and the toxic's name, so the same seed faults the same connections in every run, whatever the timing.
public final class RouteFaults: Sendable {
    /// What connections read: the toxics in order, whether the route is up, and the version they belong to.
    public struct Snapshot: Sendable {
        /// The toxics, in the order they were added; each stream applies its own in this order.
        public var toxics: [Toxic]
        /// Whether the route takes connections: not when disabled through the API or under a `down` toxic.
        public var isUp: Bool
        /// The version this snapshot is of.
        public var version: Int
    }

    /// Why a change of the toxics was refused; the control API answers each with its own status.
    public enum ChangeError: Error, Sendable, Equatable {
        /// A toxic of that name is already on the route.
        case exists(String)
        /// No toxic of that name is on the route.
        case notFound(String)
        /// The toxic is not valid here: the message says why.
        case invalid(String)
    }

    private struct State {
        var toxics: [Toxic] = []
        var enabled = true
        /// How many times each toxic with a count has fired.
        var fired: [String: Int] = [:]
        var observers: [Int: @Sendable () -> Void] = [:]
        var nextObserver = 0
    }

    /// The route's name.
    public let route: String
    /// Whether the route carries datagrams, which takes the datagram toxics and refuses the stream ones.
    public let isDatagram: Bool
    private let seed: UInt64
    private let state = NIOLockedValueBox(State())
    private let versionCounter = ManagedAtomic<Int>(0)
    private let sessionCounter = ManagedAtomic<Int>(0)
    /// Where fired toxics are listed: the deck's log.
    let log: FaultLog

    /// Creates an empty set of toxics for a route.
    ///
    /// - Parameters:
    ///   - route: The route's name.
    ///   - isDatagram: Whether the route is UDP.
    ///   - seed: The seed toxicity draws derive from.
    ///   - log: Where fired toxics are listed.
    public init(route: String, isDatagram: Bool = false, seed: UInt64 = 0, log: FaultLog = FaultLog()) {
        self.route = route
        self.isDatagram = isDatagram
        self.seed = seed
        self.log = log
    }

    /// The version of the toxics; it changes with every change.
    public var version: Int {
        versionCounter.load(ordering: .acquiring)
    }

    /// The toxics and the route's state now.
    public func snapshot() -> Snapshot {
        state.withLockedValue { state in
            Snapshot(
                toxics: state.toxics,
                isUp: state.enabled && !state.toxics.contains { $0.kind == .down },
                version: versionCounter.load(ordering: .relaxed)
            )
        }
    }

    /// The toxics, in order.
    public var toxics: [Toxic] {
        state.withLockedValue(\.toxics)
    }

    /// Whether the route is enabled, as Toxiproxy's `enabled` field says (a `down` toxic aside).
    public var isEnabled: Bool {
        state.withLockedValue(\.enabled)
    }

    /// Whether the route takes connections now.
    public var isUp: Bool {
        snapshot().isUp
    }

    // MARK: Changing

    /// Adds a toxic at the end.
    ///
    /// - Throws: ``ChangeError/exists(_:)`` for a name in use, ``ChangeError/invalid(_:)`` for a toxic that is not
    ///   valid or does not fit the route's transport.
    public func add(_ toxic: Toxic) throws(ChangeError) {
        try check(toxic)
        try change { state throws(ChangeError) in
            guard !state.toxics.contains(where: { $0.name == toxic.name }) else { throw .exists(toxic.name) }
            state.toxics.append(toxic)
            state.fired[toxic.name] = nil
        }
    }

    /// Changes the toxic called `name` in place, keeping its position.
    ///
    /// - Returns: The toxic as changed.
    /// - Throws: ``ChangeError/notFound(_:)``, or ``ChangeError/invalid(_:)`` when the change makes it invalid.
    @discardableResult
    public func update(_ name: String, _ edit: (inout Toxic) -> Void) throws(ChangeError) -> Toxic {
        guard var toxic = toxics.first(where: { $0.name == name }) else { throw .notFound(name) }
        edit(&toxic)
        toxic.name = name
        try check(toxic)
        try change { state throws(ChangeError) in
            guard let index = state.toxics.firstIndex(where: { $0.name == name }) else { throw .notFound(name) }
            state.toxics[index] = toxic
        }
        return toxic
    }

    /// Removes the toxic called `name`.
    ///
    /// - Throws: ``ChangeError/notFound(_:)``.
    public func remove(_ name: String) throws(ChangeError) {
        try change { state throws(ChangeError) in
            guard let index = state.toxics.firstIndex(where: { $0.name == name }) else { throw .notFound(name) }
            state.toxics.remove(at: index)
            state.fired[name] = nil
        }
    }

    /// Removes every toxic and enables the route, as Toxiproxy's `POST /reset` does.
    public func reset() {
        change { state in
            state.toxics = []
            state.fired = [:]
            state.enabled = true
        }
    }

    /// Enables or disables the route; a disabled route refuses new connections and resets open ones.
    public func setEnabled(_ enabled: Bool) {
        change { state in state.enabled = enabled }
    }

    private func check(_ toxic: Toxic) throws(ChangeError) {
        do {
            try toxic.validate()
        } catch let error as TapedeckError {
            throw .invalid(error.message)
        } catch {
            throw .invalid("\(error)")
        }
        if isDatagram, !toxic.kind.appliesToDatagrams {
            throw .invalid("a \(toxic.kind.rawValue) toxic acts on streams; route '\(route)' carries UDP datagrams")
        }
        if !isDatagram, !toxic.kind.appliesToStreams {
            throw .invalid("a \(toxic.kind.rawValue) toxic acts on datagrams; route '\(route)' carries a stream")
        }
    }

    private func change(_ body: (inout State) throws(ChangeError) -> Void) throws(ChangeError) {
        let outcome = state.withLockedValue { state -> Result<[@Sendable () -> Void], ChangeError> in
            do throws(ChangeError) {
                try body(&state)
            } catch {
                return .failure(error)
            }
            versionCounter.wrappingIncrement(ordering: .releasing)
            return .success(Array(state.observers.values))
        }
        // Outside the lock: observers hop to event loops, which may read the snapshot at once.
        for observer in try outcome.get() { observer() }
    }

    private func change(_ body: (inout State) -> Void) {
        let nothrow: (inout State) throws(ChangeError) -> Void = { state in body(&state) }
        try? change(nothrow)
    }

    // MARK: Observing

    /// Calls `observer` after every change until ``removeObserver(_:)``; it must not block.
    ///
    /// - Returns: The token to remove it with.
    public func addObserver(_ observer: @escaping @Sendable () -> Void) -> Int {
        state.withLockedValue { state in
            let token = state.nextObserver
            state.nextObserver += 1
            state.observers[token] = observer
            return token
        }
    }

    /// Stops calling the observer ``addObserver(_:)`` returned `token` for.
    public func removeObserver(_ token: Int) {
        _ = state.withLockedValue { state in state.observers.removeValue(forKey: token) }
    }

    // MARK: Connections

    /// The order of a new connection (or UDP flow) on the route, counting from 1.
    public func nextSessionOrdinal() -> Int {
        sessionCounter.wrappingIncrementThenLoad(ordering: .relaxed)
    }

    /// Whether `toxic` acts on the connection of order `session`: drawn against its toxicity from the route's
    /// seed, the session and the toxic's name, so a run with the same seed draws the same.
    public func draws(_ toxic: Toxic, session: Int) -> Bool {
        guard toxic.toxicity < 1 else { return true }
        guard toxic.toxicity > 0 else { return false }
        var generator = generator(for: toxic, session: session, salt: .max)
        return Double.random(in: 0..<1, using: &generator) < toxic.toxicity
    }

    /// A random source for one use of `toxic` on the connection (or flow) of order `session`, following from the
    /// route's seed, the route, the toxic's name, the session and `salt` alone: the same run gives the same numbers.
    public func generator(for toxic: Toxic, session: Int, salt: UInt64 = 0) -> SeededGenerator {
        var mixer = SeededGenerator(seed: seed ^ StableHash.of(route))
        var mixed = mixer.next() ^ StableHash.of(toxic.name)
        mixer = SeededGenerator(seed: mixed)
        mixed = mixer.next() ^ UInt64(truncatingIfNeeded: session)
        mixer = SeededGenerator(seed: mixed)
        return SeededGenerator(seed: mixer.next() ^ salt)
    }

    /// Claims one firing of `toxic` and lists it: a toxic with a `count` fires that many times, then is removed.
    ///
    /// - Returns: Whether the toxic may fire; false once its count is spent or it was removed meanwhile.
    public func fire(_ toxic: Toxic, at fired: FiredToxic) -> Bool {
        var removed = false
        let allowed = state.withLockedValue { state -> Bool in
            guard state.toxics.contains(where: { $0.name == toxic.name }) else { return false }
            guard let count = toxic.placement.count else { return true }
            let times = (state.fired[toxic.name] ?? 0) + 1
            guard times <= count else { return false }
            state.fired[toxic.name] = times
            if times == count {
                state.toxics.removeAll { $0.name == toxic.name }
                state.fired[toxic.name] = nil
                removed = true
            }
            return true
        }
        guard allowed else { return false }
        log.append(fired)
        if removed {
            // The count is spent: other connections see it gone, through the version as for any change.
            change { _ in }
        }
        return true
    }
}
