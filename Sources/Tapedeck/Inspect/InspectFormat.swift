import Foundation

/// How the inspect commands render times, durations, sizes and bytes.
public enum InspectFormat {
    /// `2026-11-25T10:30:36.123Z` for nanoseconds since 1970.
    public static func timestamp(_ nanoseconds: Int64) -> String {
        timestamp(nanoseconds, fractionDigits: 3)
    }

    /// `2026-11-25T10:30:36.123456789Z`: every nanosecond, as the text form of a tape keeps it.
    public static func exactTimestamp(_ nanoseconds: Int64) -> String {
        timestamp(nanoseconds, fractionDigits: 9)
    }

    private static func timestamp(_ nanoseconds: Int64, fractionDigits: Int) -> String {
        // Floor division, so a time before 1970 keeps its fraction positive.
        let (quotient, remainder) = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        var seconds = time_t(remainder < 0 ? quotient - 1 : quotient)
        var parts = tm()
        // Every Int64 of nanoseconds is a year from 1677 to 2262, which gmtime_r always converts; be safe anyway.
        guard gmtime_r(&seconds, &parts) != nil else { return "\(nanoseconds)ns" }
        var fraction = Int64(remainder < 0 ? remainder + 1_000_000_000 : remainder)
        for _ in fractionDigits..<9 { fraction /= 10 }
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%0\(fractionDigits)lldZ",
            Int(parts.tm_year) + 1900,
            Int(parts.tm_mon) + 1,
            Int(parts.tm_mday),
            Int(parts.tm_hour),
            Int(parts.tm_min),
            Int(parts.tm_sec),
            fraction
        )
    }

    /// How long ago `nanoseconds` since 1970 was, at `now`: `45s`, `12m`, `5h`, `30d`; `0s` for a time not yet come.
    public static func age(of nanoseconds: Int64, now: Int64 = WallClock.nowNanoseconds()) -> String {
        age(seconds: ageSeconds(of: nanoseconds, now: now))
    }

    /// An age of `seconds` as ``age(of:now:)`` says it: `45s`, `12m`, `5h`, `30d`.
    public static func age(seconds: Int64) -> String {
        switch seconds {
        case ..<120: return "\(seconds)s"
        case ..<7200: return "\(seconds / 60)m"
        case ..<172_800: return "\(seconds / 3600)h"
        default: return "\(seconds / 86_400)d"
        }
    }

    /// How long ago `nanoseconds` since 1970 was, at `now`, in whole seconds; 0 for a time not yet come.
    public static func ageSeconds(of nanoseconds: Int64, now: Int64 = WallClock.nowNanoseconds()) -> Int64 {
        max(0, now.subtractingReportingOverflow(nanoseconds).partialValue / 1_000_000_000)
    }

    /// `850µs`, `2.991ms`, `1.250s`, `2m03.5s` for a duration in nanoseconds.
    public static func duration(_ nanoseconds: Int64) -> String {
        let value = Double(nanoseconds)
        switch nanoseconds {
        case ..<1_000_000: return String(format: "%.0fµs", value / 1e3)
        case ..<1_000_000_000: return String(format: "%.3fms", value / 1e6)
        case ..<60_000_000_000: return String(format: "%.3fs", value / 1e9)
        default:
            let minutes = nanoseconds / 60_000_000_000
            return String(format: "%dm%04.1fs", Int(minutes), Double(nanoseconds - minutes * 60_000_000_000) / 1e9)
        }
    }

    /// Classic hexdump rows: offset, sixteen bytes in two groups of eight, and the printable ASCII.
    ///
    /// Built byte by byte from a digit table: formatting each byte with `String(format:)` would make dumping a
    /// large payload many times slower.
    public static func hexdump(_ bytes: Data, indent: String = "", startingAt base: Int = 0) -> String {
        let digits = Array("0123456789abcdef".utf8)
        let indentBytes = Array(indent.utf8)
        var text: [UInt8] = []
        text.reserveCapacity((bytes.count / 16 + 1) * (78 + indentBytes.count))
        var row: [UInt8] = []
        row.reserveCapacity(16)
        var offset = 0
        var iterator = bytes.makeIterator()
        while true {
            row.removeAll(keepingCapacity: true)
            while row.count < 16, let byte = iterator.next() { row.append(byte) }
            if row.isEmpty { break }
            text.append(contentsOf: indentBytes)
            let position = base + offset
            for shift in stride(from: 28, through: 0, by: -4) { text.append(digits[(position >> shift) & 0xF]) }
            text.append(contentsOf: [0x20, 0x20])
            for index in 0..<16 {
                if index == 8 { text.append(0x20) }
                if index < row.count {
                    text.append(digits[Int(row[index] >> 4)])
                    text.append(digits[Int(row[index] & 0xF)])
                    text.append(0x20)
                } else {
                    text.append(contentsOf: [0x20, 0x20, 0x20])
                }
            }
            text.append(contentsOf: [0x20, 0x7C])
            for byte in row { text.append((0x20...0x7E).contains(byte) ? byte : 0x2E) }
            text.append(contentsOf: [0x7C, 0x0A])
            offset += row.count
        }
        return String(decoding: text, as: UTF8.self)
    }
}
