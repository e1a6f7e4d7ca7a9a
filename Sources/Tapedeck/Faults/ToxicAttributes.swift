/// A toxic's settings, in Toxiproxy's attribute names and units.
///
/// Each kind reads its own fields and ignores the rest; a field a kind needs and was not given is 0, as in
/// Toxiproxy. Encoded, a toxic lists exactly its kind's fields (``fields(for:)``), as Toxiproxy does.
public struct ToxicAttributes: Sendable, Hashable {
    /// `latency`: the delay added to each chunk, in milliseconds.
    public var latency: Int = 0
    /// `latency`: how far the delay may stray either way, in milliseconds.
    public var jitter: Int = 0
    /// `bandwidth`: the rate, in KB/s (1,000 bytes per second).
    public var rate: Int = 0
    /// `slow_close`: how long the end is held, in milliseconds; `slicer`: the pause between pieces, in
    /// microseconds.
    public var delay: Int = 0
    /// `timeout` and `reset_peer`: how long until the connection is closed or reset, in milliseconds.
    public var timeout: Int = 0
    /// `slicer`: the mean size of a piece, in bytes.
    public var averageSize: Int = 0
    /// `slicer`: how far a piece's size may stray either way, in bytes.
    public var sizeVariation: Int = 0
    /// `limit_data`: how many bytes pass before the connection is closed.
    public var bytes: Int = 0
    /// `loss`, `duplicate`, `reorder`: the chance a datagram is affected, from 0 to 1.
    public var probability: Double = 0
    /// `loss`, `duplicate`, `reorder`: how much a datagram's fate follows the one before, from 0 (independent)
    /// to 1 (always the same), which makes losses come in bursts.
    public var correlation: Double = 0

    /// Creates attributes with every field 0.
    public init() {}

    /// The attribute names a kind reads, in the order Toxiproxy lists them.
    public static func fields(for kind: ToxicKind) -> [String] {
        switch kind {
        case .latency: return ["latency", "jitter"]
        case .bandwidth: return ["rate"]
        case .slowClose: return ["delay"]
        case .timeout, .resetPeer: return ["timeout"]
        case .slicer: return ["average_size", "size_variation", "delay"]
        case .limitData: return ["bytes"]
        case .down: return []
        case .loss, .duplicate, .reorder: return ["probability", "correlation"]
        }
    }

    /// The value of the attribute called `name`, as a JSON number.
    public func value(of name: String) -> Double? {
        switch name {
        case "latency": return Double(latency)
        case "jitter": return Double(jitter)
        case "rate": return Double(rate)
        case "delay": return Double(delay)
        case "timeout": return Double(timeout)
        case "average_size": return Double(averageSize)
        case "size_variation": return Double(sizeVariation)
        case "bytes": return Double(bytes)
        case "probability": return probability
        case "correlation": return correlation
        default: return nil
        }
    }

    /// Sets the attribute called `name`.
    ///
    /// - Returns: Whether there is an attribute of that name.
    public mutating func set(_ name: String, to value: Double) -> Bool {
        let whole = Int(value.rounded())
        switch name {
        case "latency": latency = whole
        case "jitter": jitter = whole
        case "rate": rate = whole
        case "delay": delay = whole
        case "timeout": timeout = whole
        case "average_size": averageSize = whole
        case "size_variation": sizeVariation = whole
        case "bytes": bytes = whole
        case "probability": probability = value
        case "correlation": correlation = value
        default: return false
        }
        return true
    }

    /// Checks the values a kind reads: no negative time, size or rate, and chances between 0 and 1.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument` naming the attribute.
    public func validate(for kind: ToxicKind) throws {
        for name in Self.fields(for: kind) {
            let value = self.value(of: name) ?? 0
            guard value >= 0, value.isFinite else {
                throw TapedeckError(.invalidArgument, "toxic attribute '\(name)' must not be negative, not \(value)")
            }
            if name == "probability" || name == "correlation", value > 1 {
                throw TapedeckError(.invalidArgument, "toxic attribute '\(name)' is a chance from 0 to 1, not \(value)")
            }
        }
    }
}
