import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if os(Linux)
import CTapedeckSpawn
#endif

/// A command run as a child process, with this process's standard input, output and error.
///
/// Started with an empty signal mask and default signal dispositions, so the child sees SIGINT, SIGTERM and
/// SIGPIPE as if a shell had started it, whatever this process blocks or ignores; and with no descriptor of ours
/// beyond the standard three, so listeners and the tape stay ours.
///
/// On Linux the child also dies with us: it is forked (by `CTapedeckSpawn`) with a parent-death signal, SIGKILL,
/// so a `tapedeck run` killed with SIGKILL, which has no chance to pass anything on, does not leave its command
/// running as an orphan. (A command's own children are its business.) Elsewhere it is started with
/// `posix_spawn`.
struct ChildCommand: Sendable {
    /// The child's process id.
    let pid: pid_t
    private let reaper: ChildReaper

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
    /// - Throws: ``TapedeckError`` with code `commandNotRun` when the command cannot be started.
    init(
        executable: String,
        arguments: [String],
        environment: [String: String],
        redirections: [Redirection] = []
    ) throws {
        do {
            reaper = try ChildReaper.start {
                try Self.spawn(
                    executable: executable,
                    arguments: arguments,
                    environment: environment,
                    redirections: redirections
                )
            }
        } catch let error as SpawnFailure {
            throw TapedeckError(
                .commandNotRun,
                "cannot run '\(arguments.first ?? executable)': \(String(cString: strerror(error.errno)))"
            )
        }
        pid = reaper.pid
    }

    /// Why a child could not be started: the errno of the call that failed.
    struct SpawnFailure: Error {
        var errno: Int32
    }

    /// Starts the child, on the reaper's thread; see ``ChildReaper``.
    private static func spawn(
        executable: String,
        arguments: [String],
        environment: [String: String],
        redirections: [Redirection]
    ) throws -> pid_t {
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] =
            environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var child: pid_t = 0
        #if os(Linux)
        let paths: [UnsafeMutablePointer<CChar>?] = redirections.map { redirection in
            if case .file(let path, _) = redirection.target { return strdup(path) }
            return nil
        }
        defer { for pointer in paths { free(pointer) } }
        let targets = zip(redirections, paths).map { redirection, path in
            switch redirection.target {
            case .file(_, let flags):
                tapedeck_redirection(descriptor: redirection.descriptor, path: path, flags: flags, source: -1)
            case .descriptor(let source):
                tapedeck_redirection(descriptor: redirection.descriptor, path: nil, flags: 0, source: source)
            }
        }
        let status = tapedeck_spawn(
            executable,
            argv,
            envp,
            targets,
            Int32(targets.count),
            Self.defaultSignals,
            Int32(Self.defaultSignals.count),
            1,
            &child
        )
        #else
        let status = posixSpawn(&child, executable, argv, envp, redirections)
        #endif
        guard status == 0 else { throw SpawnFailure(errno: status) }
        return child
    }

    #if !os(Linux)
    /// Where there is no parent-death signal, `posix_spawn` does the rest of the work as well as a fork would.
    private static func posixSpawn(
        _ child: inout pid_t,
        _ executable: String,
        _ argv: [UnsafeMutablePointer<CChar>?],
        _ envp: [UnsafeMutablePointer<CChar>?],
        _ redirections: [Redirection]
    ) -> Int32 {
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
        return posix_spawn(&child, executable, &actions, &attributes, argv, envp)
    }
    #endif

    /// Waits for the child to exit and returns its status as a shell reports it: the exit code, or 128 plus
    /// the number of the signal that killed it.
    func exitStatus() async -> Int32 {
        await reaper.exitStatus()
    }

    /// The exit status (128 plus the signal for a killed child), if the child has exited.
    var exitStatusIfExited: Int32? {
        reaper.exitStatusIfExited
    }

    /// Sends `signal` to the child, unless it has exited (its pid may then be another process's).
    func signal(_ signal: Int32) {
        reaper.signal(signal)
    }
}
