import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A command run as a child process, with this process's standard input, output and error.
///
/// Started with `posix_spawn`: an empty signal mask and default signal dispositions, so the child sees SIGINT,
/// SIGTERM and SIGPIPE as if a shell had started it, whatever this process blocks or ignores; and no
/// descriptor of ours beyond the standard three, so listeners and the tape stay ours.
struct ChildCommand: Sendable {
    /// The child's process id.
    let pid: pid_t

    /// The signals whose disposition the child gets back to the default.
    static let defaultSignals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGCHLD]

    /// Finds `name` the way a shell would: a name with a slash is a path, any other is looked up in `PATH`.
    ///
    /// - Throws: ``TapedeckError`` naming the command when there is no such executable.
    static func locate(_ name: String, environment: [String: String]) throws -> String {
        guard !name.isEmpty else { throw TapedeckError(.commandNotRun, "no command to run after '--'") }
        if name.contains("/") {
            guard FileManager.default.isExecutableFile(atPath: name) else {
                throw TapedeckError(.commandNotRun, "cannot run '\(name)': no such executable file")
            }
            return name
        }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + name
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
                FileManager.default.isExecutableFile(atPath: candidate)
            {
                return candidate
            }
        }
        throw TapedeckError(.commandNotRun, "cannot run '\(name)': command not found in PATH")
    }

    /// Where one of the child's standard descriptors goes instead of ours.
    struct Redirection: Sendable {
        /// The child's descriptor: 0, 1 or 2.
        var descriptor: Int32
        /// The file it opens, or another of its descriptors it duplicates.
        var target: Target

        enum Target: Sendable {
            case file(path: String, flags: Int32)
            case descriptor(Int32)
        }
    }

    /// Starts `executable` with `arguments` (the first being the program's name) and `environment`.
    ///
    /// - Parameter redirections: Standard descriptors to point elsewhere, applied in order; the others are ours.
    init(
        executable: String,
        arguments: [String],
        environment: [String: String],
        redirections: [Redirection] = []
    ) throws {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in Self.defaultSignals { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for redirection in redirections {
            switch redirection.target {
            case .file(let path, let flags):
                posix_spawn_file_actions_addopen(&actions, redirection.descriptor, path, flags, 0o644)
            case .descriptor(let source):
                posix_spawn_file_actions_adddup2(&actions, source, redirection.descriptor)
            }
        }
        // Sockets and the tape are opened close-on-exec, but a descriptor inherited from our own parent may not
        // be. glibc 2.34+ has posix_spawn_file_actions_addclosefrom_np, which Swift's Glibc module does not import.
        if let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") {
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        }

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] =
            environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw TapedeckError(
                .commandNotRun,
                "cannot run '\(arguments.first ?? executable)': \(String(cString: strerror(status)))"
            )
        }
        pid = child
    }

    /// Waits for the child to exit and returns its status as a shell reports it: the exit code, or 128 plus
    /// the number of the signal that killed it.
    func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            // waitpid blocks; a thread of its own keeps it off the cooperative pool for however long the
            // command runs.
            Thread.detachNewThread { [pid] in
                var raw: Int32 = 0
                while waitpid(pid, &raw, 0) < 0 {
                    guard errno == EINTR else {
                        continuation.resume(returning: 127)
                        return
                    }
                }
                let signal = raw & 0x7F
                continuation.resume(returning: signal != 0 ? 128 + signal : (raw >> 8) & 0xFF)
            }
        }
    }
}
