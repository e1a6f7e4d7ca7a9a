import Foundation
import Yams

/// The toxics of a fault file (`--fault FILE`): a list in the control API's JSON shape, as YAML, or as JSON for
/// a name ending in `.json`.
///
/// ```yaml
/// - {type: reset_peer, stream: downstream, session: 1, exchange: 2, offset: 100}
/// - {type: reset_peer, stream: downstream, match: "GET", count: 2}
/// - {type: latency, route: postgres, attributes: {latency: 50, jitter: 5}}
/// ```
///
/// A toxic may name its `route`; one that names none goes on every route it fits.
public struct FaultPlan: Sendable, Hashable {
    /// One toxic of the file, and the route it names.
    public struct Planned: Sendable, Hashable {
        /// The route, when named.
        public var route: String?
        /// The toxic.
        public var toxic: Toxic
    }

    /// The toxics, in the file's order.
    public var toxics: [Planned]

    /// Creates a plan from toxics.
    public init(toxics: [Planned]) {
        self.toxics = toxics
    }

    private struct Entry: Decodable {
        var route: String?
        var toxic: Toxic

        private enum Keys: String, CodingKey { case route, proxy }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            route =
                try container.decodeIfPresent(String.self, forKey: .route)
                ?? container.decodeIfPresent(String.self, forKey: .proxy)
            toxic = try Toxic(from: decoder)
        }
    }

    /// Reads a fault file.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument`, one line naming the file and what is wrong.
    public static func load(path: String) throws -> FaultPlan {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TapedeckError(.invalidArgument, "cannot read fault file '\(path)'")
        }
        return try parse(data, json: path.hasSuffix(".json"), named: path)
    }

    /// Reads a fault file's contents.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument`.
    public static func parse(_ data: Data, json: Bool, named name: String = "fault file") throws -> FaultPlan {
        let entries: [Entry]
        do {
            if json {
                entries = try JSONDecoder().decode([Entry].self, from: data)
            } else {
                entries = try YAMLDecoder().decode([Entry].self, from: String(decoding: data, as: UTF8.self))
            }
        } catch {
            throw TapedeckError(.invalidArgument, "invalid fault file '\(name)': \(ProxyConfiguration.reason(error))")
        }
        var seen = Set<String>()
        for entry in entries {
            do {
                try entry.toxic.validate()
            } catch let error as TapedeckError {
                throw TapedeckError(.invalidArgument, "invalid fault file '\(name)': \(error.message)")
            }
            guard seen.insert("\(entry.route ?? "")/\(entry.toxic.name)").inserted else {
                throw TapedeckError(
                    .invalidArgument,
                    "invalid fault file '\(name)': toxic '\(entry.toxic.name)' is named twice; give each a 'name'"
                )
            }
        }
        return FaultPlan(toxics: entries.map { Planned(route: $0.route, toxic: $0.toxic) })
    }
}
