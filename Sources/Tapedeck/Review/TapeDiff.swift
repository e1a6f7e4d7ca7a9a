import Foundation

/// What changed between two tapes (`tapedeck diff A B`): sessions only in one, and for sessions paired across the
/// two, the first exchange that differs, with both sides' bytes there.
///
/// Sessions pair the way replay picks them: by route and the client's bytes, compared as replay compares them (the
/// tape's rules applied, the recording's listen address as `{tapedeck:listen}`). Equal client streams pair in
/// recording order; what is left pairs with the session of the same route whose client stream shares the longest
/// start. Each session is read as exchanges (what the client sent, then what the upstream answered), compared in
/// order in both directions, then by how it ended. Timing is not content: two recordings of the same conversation
/// are identical.
public struct TapeDiff: Sendable {
    /// Two sessions that hold the same conversation.
    public struct Pair: Sendable, Hashable, Codable {
        /// The session in the first tape.
        public var a: Int64
        /// The session in the second tape.
        public var b: Int64
    }

    /// A paired session whose conversation differs.
    public struct Change: Sendable, Hashable, Codable {
        /// The session in the first tape.
        public var a: Int64
        /// The session in the second tape.
        public var b: Int64
        /// Their route.
        public var route: String
        /// The first exchange that differs, from 1.
        public var exchange: Int
        /// What differs there: `client_to_upstream`, `upstream_to_client`, or `end` (how the session ended).
        public var direction: String
        /// The offset of the first differing byte within that exchange's bytes in that direction.
        public var offset: Int
        /// The first tape's bytes around it, rendered (text as text, other bytes escaped); its outcome for `end`.
        public var aExcerpt: String
        /// The second tape's, the same way.
        public var bExcerpt: String

        enum CodingKeys: String, CodingKey {
            case a, b, route, exchange, direction, offset
            case aExcerpt = "a_excerpt"
            case bExcerpt = "b_excerpt"
        }
    }

    /// A session found in one tape only.
    public struct Lone: Sendable, Hashable, Codable {
        /// The session's id in its tape.
        public var session: Int64
        /// Its route.
        public var route: String
        /// How many bytes its client sent.
        public var clientBytes: Int

        enum CodingKeys: String, CodingKey {
            case session, route
            case clientBytes = "client_bytes"
        }
    }

    /// Paired sessions whose conversations are equal.
    public var unchanged: [Pair] = []
    /// Paired sessions whose conversations differ.
    public var changed: [Change] = []
    /// Sessions of the first tape with no partner in the second.
    public var onlyInA: [Lone] = []
    /// Sessions of the second tape with no partner in the first.
    public var onlyInB: [Lone] = []

    /// Whether the two tapes hold the same conversations, timing aside.
    public var identical: Bool { changed.isEmpty && onlyInA.isEmpty && onlyInB.isEmpty }

    /// Left-over sessions beyond this many per route pair only by equal client bytes: pairing by the longest
    /// shared start compares every left-over session with every other.
    static let closestPairingLimit = 2000

    /// Compares `a` with `b`.
    ///
    /// - Throws: ``TapedeckError`` when a tape cannot be read.
    public static func compare(_ a: Tape, _ b: Tape) throws -> TapeDiff {
        let left = try RecordedConversation.all(in: a)
        let right = try RecordedConversation.all(in: b)
        var diff = TapeDiff()
        let routes = Set(left.map(\.route)).union(right.map(\.route)).sorted()
        for route in routes {
            var remainingA = left.filter { $0.route == route }
            var remainingB = right.filter { $0.route == route }
            var pairs: [(RecordedConversation, RecordedConversation)] = []
            // Equal client streams first, in recording order on both sides.
            var byKey: [Data: [Int]] = [:]
            for (index, conversation) in remainingB.enumerated() {
                byKey[conversation.clientKey, default: []].append(index)
            }
            var takenB = Set<Int>()
            var leftA: [RecordedConversation] = []
            for conversation in remainingA {
                if var queue = byKey[conversation.clientKey], let index = queue.first {
                    queue.removeFirst()
                    byKey[conversation.clientKey] = queue
                    takenB.insert(index)
                    pairs.append((conversation, remainingB[index]))
                } else {
                    leftA.append(conversation)
                }
            }
            remainingB = remainingB.enumerated().filter { !takenB.contains($0.offset) }.map(\.element)
            remainingA = leftA
            // Then the closest: the longest shared start of the client stream.
            if remainingA.count <= closestPairingLimit, remainingB.count <= closestPairingLimit {
                var unpaired: [RecordedConversation] = []
                for conversation in remainingA {
                    let best = remainingB.indices.max { first, second in
                        let one = conversation.sharedStart(with: remainingB[first])
                        let other = conversation.sharedStart(with: remainingB[second])
                        return one < other || (one == other && remainingB[first].id > remainingB[second].id)
                    }
                    if let best, conversation.sharedStart(with: remainingB[best]) > 0 || conversation.clientKey.isEmpty
                    {
                        pairs.append((conversation, remainingB.remove(at: best)))
                    } else {
                        unpaired.append(conversation)
                    }
                }
                remainingA = unpaired
            }
            for (one, other) in pairs {
                if let change = one.firstDifference(from: other) {
                    diff.changed.append(change)
                } else {
                    diff.unchanged.append(Pair(a: one.id, b: other.id))
                }
            }
            diff.onlyInA += remainingA.map(\.lone)
            diff.onlyInB += remainingB.map(\.lone)
        }
        diff.unchanged.sort { ($0.a, $0.b) < ($1.a, $1.b) }
        diff.changed.sort { ($0.a, $0.b) < ($1.a, $1.b) }
        diff.onlyInA.sort { $0.session < $1.session }
        diff.onlyInB.sort { $0.session < $1.session }
        return diff
    }
}

extension TapeDiff: Codable {
    enum CodingKeys: String, CodingKey {
        case identical, unchanged, changed
        case onlyInA = "only_in_a"
        case onlyInB = "only_in_b"
    }

    /// Reads a diff written as JSON.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        unchanged = try container.decode([Pair].self, forKey: .unchanged)
        changed = try container.decode([Change].self, forKey: .changed)
        onlyInA = try container.decode([Lone].self, forKey: .onlyInA)
        onlyInB = try container.decode([Lone].self, forKey: .onlyInB)
    }

    /// Writes the diff with `identical`, for scripts.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(identical, forKey: .identical)
        try container.encode(unchanged, forKey: .unchanged)
        try container.encode(changed, forKey: .changed)
        try container.encode(onlyInA, forKey: .onlyInA)
        try container.encode(onlyInB, forKey: .onlyInB)
    }
}
