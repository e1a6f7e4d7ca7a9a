import NIOConcurrencyHelpers

/// The toxics of every route a deck serves, the seed their toxicity draws come from, and the log of what fired.
///
/// A deck has one when it was given faults (`--fault`) or a control API (`--api`); without one, its relays have
/// no fault stage at all.
///
/// ```swift
/// let faults = FaultRegistry(seed: 7)
/// try faults.apply(try FaultPlan.load(path: "faults.yaml"), to: routes)
/// // … serve; then:
/// print(faults.log.fired.map(\.description))
/// ```
public final class FaultRegistry: Sendable {
    /// The seed every route's draws derive from.
    public let seed: UInt64
    /// Every toxic that fired.
    public let log = FaultLog()
    private let routes = NIOLockedValueBox([String: RouteFaults]())

    /// Creates a registry with no toxics.
    ///
    /// - Parameter seed: The seed toxicity draws derive from; the same seed faults the same connections.
    public init(seed: UInt64 = 0) {
        self.seed = seed
    }

    /// The toxics of `route`, made empty on first use.
    public func faults(for route: Route) -> RouteFaults {
        routes.withLockedValue { routes in
            if let existing = routes[route.name] { return existing }
            let made = RouteFaults(route: route.name, isDatagram: route.isDatagram, seed: seed, log: log)
            routes[route.name] = made
            return made
        }
    }

    /// The toxics of the route called `name`, if it has been served.
    public func faults(named name: String) -> RouteFaults? {
        routes.withLockedValue { $0[name] }
    }

    /// Forgets a route's toxics, when the route is deleted.
    public func forget(route name: String) {
        _ = routes.withLockedValue { $0.removeValue(forKey: name) }
    }

    /// Removes every toxic of every route and enables them all, as Toxiproxy's `POST /reset` does.
    public func resetAll() {
        for faults in routes.withLockedValue({ Array($0.values) }) { faults.reset() }
    }

    /// Adds a fault file's toxics to the routes they name, or to every route they fit when they name none.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument` when a toxic names a route not served, repeats a
    ///   name on a route, or fits no route.
    public func apply(_ plan: FaultPlan, to served: [Route]) throws {
        for planned in plan.toxics {
            let targets: [Route]
            if let name = planned.route {
                guard let route = served.first(where: { $0.name == name }) else {
                    throw TapedeckError(
                        .invalidArgument,
                        "fault '\(planned.toxic.name)' names route '\(name)', which is not served (routes: "
                            + served.map { "'\($0.name)'" }.joined(separator: ", ") + ")"
                    )
                }
                targets = [route]
            } else {
                targets = served.filter {
                    $0.isDatagram ? planned.toxic.kind.appliesToDatagrams : planned.toxic.kind.appliesToStreams
                }
                guard !targets.isEmpty else {
                    throw TapedeckError(
                        .invalidArgument,
                        "fault '\(planned.toxic.name)' (\(planned.toxic.kind.rawValue)) fits none of the routes served"
                    )
                }
            }
            for route in targets {
                do {
                    try faults(for: route).add(planned.toxic)
                } catch {
                    throw TapedeckError(.invalidArgument, "fault on route '\(route.name)': \(error.message)")
                }
            }
        }
    }
}

extension RouteFaults.ChangeError {
    /// One line saying what was refused.
    public var message: String {
        switch self {
        case .exists(let name): return "toxic '\(name)' already exists"
        case .notFound(let name): return "toxic '\(name)' not found"
        case .invalid(let why): return why
        }
    }
}
