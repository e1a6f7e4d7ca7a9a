import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What another process (one the test started) uses, from `/proc`, and its open-files limit, set from outside.
enum ProcessResources {
    /// The CPU time the process has used so far, user and system, in seconds.
    static func cpuSeconds(_ pid: pid_t) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // The command name in parentheses may hold spaces; the fields after it are fixed: state is the 3rd field
        // of the line, utime and stime the 14th and 15th.
        guard let close = stat.lastIndex(of: ")") else { throw TestProcessError("unreadable /proc/\(pid)/stat") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw TestProcessError("unreadable /proc/\(pid)/stat")
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The CPU time the process uses per second of wall time, measured over `interval`.
    static func cpuLoad(_ pid: pid_t, over interval: Duration) async throws -> Double {
        let clock = ContinuousClock()
        let startedAt = clock.now
        let before = try cpuSeconds(pid)
        try await Task.sleep(for: interval)
        let used = try cpuSeconds(pid) - before
        let elapsed = clock.now - startedAt
        return used / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    /// The number of descriptors the process has open.
    static func openDescriptors(_ pid: pid_t) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
    }

    /// Sets the process's open-files limit, soft and hard, with prlimit(2): only that process's limit changes,
    /// never the test process's, which other tests running in parallel need.
    static func setOpenFileLimit(_ pid: pid_t, _ limit: Int) throws {
        // Swift's Glibc module does not import prlimit, a GNU extension.
        typealias Prlimit =
            @convention(c) (pid_t, Int32, UnsafePointer<rlimit>?, UnsafeMutablePointer<rlimit>?) -> Int32
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "prlimit") else { throw TestProcessError("no prlimit") }
        var value = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
        guard unsafeBitCast(symbol, to: Prlimit.self)(pid, Int32(RLIMIT_NOFILE.rawValue), &value, nil) == 0 else {
            throw TestProcessError("prlimit failed: errno \(errno)")
        }
    }

    /// Whether the process is still running: it exists and is not a zombie waiting for a parent to reap it
    /// (a process orphaned to a parent that never reaps stays one).
    static func isRunning(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }
}
