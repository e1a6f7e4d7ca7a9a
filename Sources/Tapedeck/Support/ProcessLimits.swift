#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-wide resource limits a relay needs.
public enum ProcessLimits {
    /// Raises the soft limit on open files to the hard limit.
    ///
    /// Every session holds two sockets, so the common soft limit of 1024 caps a relay at about 500 sessions.
    /// Servers such as HAProxy raise it the same way at startup.
    ///
    /// - Returns: The soft limit in force afterwards.
    @discardableResult
    public static func raiseOpenFileLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
    }
}
