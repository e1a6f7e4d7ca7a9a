import Foundation

/// How the inspect commands render times, durations, sizes and bytes.
public enum InspectFormat {
    /// `2026-11-25T10:30:36.123Z` for nanoseconds since 1970.
    public static func timestamp(_ nanoseconds: Int64) -> String {
        var seconds = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(nanoseconds % 1_000_000_000 / 1_000_000)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), millis
        )
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
    public static func hexdump(_ bytes: Data, indent: String = "", startingAt base: Int = 0) -> String {
        var text = ""
        var offset = 0
        let all = [UInt8](bytes)
        while offset < all.count {
            let row = all[offset..<min(offset + 16, all.count)]
            var hex = ""
            for (index, byte) in row.enumerated() {
                if index == 8 { hex += " " }
                hex += String(format: "%02x ", byte)
            }
            let padding = String(repeating: " ", count: max(0, 49 - hex.count))
            let ascii = String(row.map { (0x20...0x7E).contains($0) ? Character(Unicode.Scalar($0)) : "." })
            text += indent + String(format: "%08x  ", base + offset) + hex + padding + " |" + ascii + "|\n"
            offset += 16
        }
        return text
    }
}
