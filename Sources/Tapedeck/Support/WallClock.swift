import Foundation

/// Wall-clock time as tapes store it: nanoseconds since 1970.
public enum WallClock {
    /// Now, in nanoseconds since 1970.
    public static func nowNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
