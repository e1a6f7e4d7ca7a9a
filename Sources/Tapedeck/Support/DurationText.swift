import Foundation
import NIOCore

/// Reads and writes durations as people type them on a command line or in a config file.
///
/// Accepted forms: `5` (seconds), `5s`, `250ms`, `1.5s`, `2m`, `12h`, `30d`. Negative values, and values beyond what a
/// 64-bit count of nanoseconds holds (about 292 years), are refused.
public enum DurationText {
    /// The longest duration ``parse(_:)`` accepts, in whole seconds: the largest a 64-bit nanosecond count holds.
    public static let maximumSeconds: Int64 = Int64.max / 1_000_000_000

    /// Parses a duration such as `5s`, `250ms`, `2m`, `30d` or a bare number of seconds.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument` naming the text.
    public static func parse(_ text: String) throws -> Duration {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(suffix: String, scale: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        var number = Substring(trimmed)
        var scale = 1.0
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            number = trimmed.dropLast(unit.suffix.count)
            scale = unit.scale
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0 else {
            throw TapedeckError(
                .invalidArgument,
                "invalid duration '\(text)': use a number with ms, s, m, h or d, as 5s"
            )
        }
        let nanoseconds = (value * scale * 1e9).rounded()
        // Int64(_: Double) traps beyond Int64.max; compare in seconds, where the bound is exact enough.
        guard nanoseconds / 1e9 <= Double(maximumSeconds) else {
            throw TapedeckError(
                .invalidArgument,
                "invalid duration '\(text)': must be from 0 to \(maximumSeconds)s (about 292 years)"
            )
        }
        return .nanoseconds(Int64(nanoseconds))
    }

    /// Formats a duration in the shortest of the forms ``parse(_:)`` reads.
    public static func format(_ duration: Duration) -> String {
        let nanos = duration.nanoseconds
        // The largest unit that counts it whole: `30d` reads back as it was given, not as `2592000s`.
        for (unit, seconds) in [("d", Int64(86_400)), ("h", 3_600), ("m", 60)] {
            let size = seconds * 1_000_000_000
            if nanos > 0, nanos % size == 0 { return "\(nanos / size)\(unit)" }
        }
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

extension Duration {
    /// The duration as NIO's `TimeAmount`, saturating like ``nanoseconds``.
    var timeAmount: TimeAmount {
        .nanoseconds(nanoseconds)
    }
}
