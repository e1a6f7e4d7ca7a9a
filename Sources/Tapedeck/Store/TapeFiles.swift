import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The files that make up a tape on disk, and the rules for putting one in place.
///
/// SQLite keeps a database's write-ahead log, shared memory and rollback journal beside it, named after the
/// database's path (`TAPE-wal`, `TAPE-shm`, `TAPE-journal`), and it cannot tell whose they are: a log left by a
/// recorder killed mid-run is applied to whatever file sits at `TAPE` next, hiding or destroying it. So no tape
/// is ever put at a path with another database's side files beside it, and a new tape appears at its path
/// complete, in one rename, never as an empty file another process could mistake for a fixture.
enum TapeFiles {
    /// The suffixes of SQLite's side files.
    static let sideFileSuffixes = ["-wal", "-shm", "-journal"]

    /// Removes `path`'s side files, which belong to a database no longer at `path` (or to none).
    static func removeSideFiles(of path: String) throws {
        for suffix in sideFileSuffixes where unlink(path + suffix) != 0 && errno != ENOENT {
            throw TapedeckError(
                .tapeUnwritable,
                "cannot remove the stale '\(path + suffix)': \(Tape.errnoReason())"
            )
        }
    }

    /// Runs `body` holding an exclusive lock on the directory of `path`, so that Tapedeck processes creating or
    /// replacing tapes in it take turns. The lock is `flock` on the directory, which is independent of SQLite's
    /// own byte-range locks; where a directory cannot be locked, `body` runs unlocked.
    static func withDirectoryLock<T>(of path: String, _ body: () throws -> T) rethrows -> T {
        let directory = (path as NSString).deletingLastPathComponent
        let descriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return try body() }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX) != 0 && errno == EINTR {}
        return try body()
    }

    /// Creates a tape at `path` if nothing is there: initialized by `prepare` in a file of its own beside it
    /// (mode 0600), then renamed into place, with any stale side files of `path` removed first.
    ///
    /// - Returns: Whether this call created the tape; false if a file was already at `path`.
    /// - Throws: ``TapedeckError`` with code `tapeUnwritable`; nothing is left at `path` or beside it.
    static func createIfMissing(at path: String, prepare: (_ temporaryPath: String) throws -> Void) throws -> Bool {
        try withDirectoryLock(of: path) {
            guard !exists(path) else { return false }
            let directory = (path as NSString).deletingLastPathComponent
            let name = (path as NSString).lastPathComponent
            let temporary =
                (directory.isEmpty ? "" : directory + "/")
                + ".\(name).creating-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            // Tapes can hold secrets: create the file ourselves, owner-only, before SQLite opens it. SQLite gives
            // its side files the same mode.
            let descriptor = open(temporary, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                throw TapedeckError(.tapeUnwritable, "cannot create tape '\(path)': \(Tape.errnoReason())")
            }
            close(descriptor)
            func discardTemporary() {
                unlink(temporary)
                for suffix in sideFileSuffixes { unlink(temporary + suffix) }
            }
            do {
                try prepare(temporary)
                try removeSideFiles(of: path)
                guard rename(temporary, path) == 0 else {
                    throw TapedeckError(.tapeUnwritable, "cannot create tape '\(path)': \(Tape.errnoReason())")
                }
            } catch {
                discardTemporary()
                throw error
            }
            return true
        }
    }

    /// Puts the finished file at `source` in place of `destination`, in one rename, removing `destination`'s
    /// side files first: they belong to the database being replaced.
    static func replace(_ destination: String, with source: String) throws {
        try withDirectoryLock(of: destination) {
            try removeSideFiles(of: destination)
            guard rename(source, destination) == 0 else {
                throw TapedeckError(
                    .recordingFailed,
                    "cannot replace tape '\(destination)' with the new recording '\(source)': \(Tape.errnoReason())"
                )
            }
        }
    }

    /// Whether anything (even a dangling symbolic link) is at `path`.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }
}

/// The file a path named at some moment, to notice it being deleted or replaced later: SQLite goes on writing
/// to an unlinked file without an error.
struct FileIdentity: Sendable, Equatable {
    let device: UInt64
    let inode: UInt64

    /// The identity of the file at `path` now, or nil if there is none.
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    /// Whether `path` still names this file.
    func stillNames(_ path: String) -> Bool {
        FileIdentity(path: path) == self
    }
}
