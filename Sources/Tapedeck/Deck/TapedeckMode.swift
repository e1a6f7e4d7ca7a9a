import Foundation

/// What a ``Deck`` does with its routes and its tape.
///
/// Test suites usually leave the mode to the environment, so that the same test records against real services
/// on a developer's machine and replays in CI:
///
/// ```swift
/// let mode = try TapedeckMode.fromEnvironment()  // TAPEDECK_MODE, or .replay when unset
/// ```
public enum TapedeckMode: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Relay to the upstreams and record nothing.
    case proxy
    /// Relay to the upstreams and record every session into the tape.
    case record
    /// Serve the tape's sessions with no upstream at all.
    case replay
    /// Replay, and relay and record the connections the tape has no session for.
    case recordMissing = "record-missing"
    /// Replay if the tape exists, record it if it does not.
    case auto

    /// The environment variable that chooses the mode: `record`, `replay`, `auto`, `record-missing` or `proxy`.
    public static let environmentVariable = "TAPEDECK_MODE"

    /// Parses a mode's name, as written in `TAPEDECK_MODE` or `--mode`; case and surrounding spaces are ignored.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument` naming the text and the valid modes.
    public init(parsing text: String) throws {
        guard let mode = Self.named(text) else {
            throw TapedeckError(.invalidArgument, "invalid mode '\(text)': use \(Self.names)")
        }
        self = mode
    }

    /// The mode `TAPEDECK_MODE` names, or `defaultMode` when it is unset or empty.
    ///
    /// - Parameters:
    ///   - environment: The environment to read; the process's by default.
    ///   - defaultMode: The mode when the variable is unset; replay, so CI never reaches a real service unasked.
    /// - Throws: ``TapedeckError`` naming the variable when it holds something that is not a mode.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment,
        default defaultMode: TapedeckMode = .replay
    ) throws -> TapedeckMode {
        guard let text = environment[environmentVariable], !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            return defaultMode
        }
        guard let mode = named(text) else {
            throw TapedeckError(.invalidArgument, "invalid \(environmentVariable) '\(text)': use \(names)")
        }
        return mode
    }

    /// The mode to run for a tape: ``auto`` becomes ``record`` when the tape file does not exist yet (or is
    /// empty, as a tape whose creation failed in an older Tapedeck could be) and ``replay`` when it does; every
    /// other mode is itself.
    public func resolved(forTape path: String?) -> TapedeckMode {
        guard self == .auto else { return self }
        guard let path, let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            return .record
        }
        return (attributes[.size] as? NSNumber)?.intValue == 0 ? .record : .replay
    }

    /// The mode a name spells, ignoring case and surrounding spaces.
    private static func named(_ text: String) -> TapedeckMode? {
        TapedeckMode(rawValue: text.trimmingCharacters(in: .whitespaces).lowercased())
    }

    /// Every mode's name, for error messages.
    private static var names: String {
        allCases.map(\.rawValue).joined(separator: ", ")
    }

    /// Whether this mode connects to each route's upstream, so that every route needs one.
    ///
    /// Proxy and record relay every connection, record-missing those the tape has no session for; replay
    /// touches no upstream. ``auto`` needs one, since it may record: resolve it for a tape first (see
    /// ``resolved(forTape:)``) to know whether it will.
    public var needsUpstream: Bool {
        switch self {
        case .proxy, .record, .recordMissing, .auto: true
        case .replay: false
        }
    }

    /// Whether this mode writes to the tape.
    var writesTape: Bool { self == .record || self == .recordMissing }

    public var description: String { rawValue }
}
