import Foundation

/// Reads and writes durations as people type them on a command line or in a config file.
///
/// Accepted forms: `5` (seconds), `5s`, `250ms`, `1.5s`, `2m`. Negative values are refused.
public enum DurationText {
    /// Parses a duration such as `5s`, `250ms`, `2m` or a bare number of seconds.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument` naming the text.
    public static func parse(_ text: String) throws -> Duration {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(suffix: String, scale: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(trimmed)
        var scale = 1.0
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            number = trimmed.dropLast(unit.suffix.count)
            scale = unit.scale
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0 else {
            throw TapedeckError(.invalidArgument, "invalid duration '\(text)': use a number with ms, s, m or h, as 5s")
        }
        return .nanoseconds(Int64((value * scale * 1e9).rounded()))
    }

    /// Formats a duration in the shortest of the forms ``parse(_:)`` reads.
    public static func format(_ duration: Duration) -> String {
        let nanos = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        if nanos % 1_000_000_000 == 0 { return "\(nanos / 1_000_000_000)s" }
        if nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
        return "\(Double(nanos) / 1e9)s"
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at the bounds of `Int64`.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
