import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file that may hold tape payloads (an export, a replay report) the safe way.
///
/// The content goes to a new file created owner-only (0600) beside the target, which is renamed into place
/// only once everything was written: a failure (a full disk) leaves no partial file under the requested name,
/// an existing file's looser mode is not inherited, and a reader never sees half a file. A symbolic link at the
/// target is refused unless the caller allows following it, since a link planted where a report is expected
/// would otherwise redirect tape contents anywhere the user can write. A target that exists and is not a
/// regular file (a terminal, a pipe, `/dev/null`) is written directly.
///
/// ```swift
/// try OutputFile.write(to: "session.pcapng") { output in
///     output.write("…")
/// }
/// ```
public enum OutputFile {
    /// Writes `body`'s output to `path`.
    ///
    /// - Parameters:
    ///   - path: The file to write.
    ///   - followingSymlink: Whether a symbolic link at `path` may be followed (`--force`); the file it points
    ///     to is then replaced the same way.
    ///   - body: Writes the content.
    /// - Throws: ``TapedeckError`` with code `outputUnwritable`, one line naming the path; and whatever `body`
    ///   throws. In both cases nothing is left at `path` that was not there before.
    public static func write(
        to path: String,
        followingSymlink: Bool = false,
        _ body: (OutputBuffer) throws -> Void
    ) throws {
        func failure(_ reason: String) -> TapedeckError {
            TapedeckError(.outputUnwritable, "cannot write '\(path)': \(reason)")
        }
        var target = path
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK {
            guard followingSymlink else {
                throw failure("it is a symbolic link; use --force to write to the file it points to")
            }
            target = try resolveLinks(path, failure)
        }
        if stat(target, &info) == 0 {
            switch info.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFDIR: throw failure("it is a directory")
            default: return try writeDirectly(to: target, name: path, body)
            }
        }
        let directory = (target as NSString).deletingLastPathComponent
        let temporary =
            (directory.isEmpty ? "" : directory + "/")
            + ".\((target as NSString).lastPathComponent).tapedeck-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure(errnoReason()) }
        do {
            let output = OutputBuffer(descriptor: descriptor, name: "'\(path)'")
            try body(output)
            try output.finish()
            guard fsync(descriptor) == 0 else { throw failure(errnoReason()) }
            close(descriptor)
            guard rename(temporary, target) == 0 else { throw failure(errnoReason()) }
        } catch {
            close(descriptor)
            unlink(temporary)
            throw error
        }
    }

    /// Writes `data` to `path` as ``write(to:followingSymlink:_:)`` does.
    public static func write(_ data: Data, to path: String, followingSymlink: Bool = false) throws {
        try write(to: path, followingSymlink: followingSymlink) { output in output.write(bytes: data) }
    }

    private static func writeDirectly(to path: String, name: String, _ body: (OutputBuffer) throws -> Void) throws {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw TapedeckError(.outputUnwritable, "cannot write '\(name)': \(errnoReason())")
        }
        defer { close(descriptor) }
        let output = OutputBuffer(descriptor: descriptor, name: "'\(name)'")
        try body(output)
        try output.finish()
    }

    /// Follows a chain of symbolic links to the path they end at, which need not exist yet.
    private static func resolveLinks(_ path: String, _ failure: (String) -> TapedeckError) throws -> String {
        var current = path
        // The kernel gives up after 40 links (ELOOP); so do we.
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0, info.st_mode & S_IFMT == S_IFLNK else { return current }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlink(current, &buffer, buffer.count - 1)
            guard length >= 0 else { throw failure(errnoReason()) }
            let destination = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            current =
                destination.hasPrefix("/")
                ? destination
                : ((current as NSString).deletingLastPathComponent as NSString).appendingPathComponent(destination)
        }
        throw failure("too many levels of symbolic links")
    }

    private static func errnoReason() -> String {
        Tape.errnoReason()
    }
}
