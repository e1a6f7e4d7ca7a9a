import Foundation

/// Writes to standard output and standard error without trapping.
///
/// Foundation's `FileHandle.write(_:)` traps when a write fails, so a full disk or a closed descriptor behind
/// stdout or stderr (`tapedeck … 2>/dev/full`) would crash the process instead of ending it with a message.
public enum StandardStreams {
    /// Writes `text` to standard error. A failure is ignored: stderr is where failures are reported, so there is
    /// nowhere left to say it.
    public static func writeError(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Foundation.write(2, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }

    /// Writes `text` to standard output.
    ///
    /// - Throws: ``TapedeckError`` with code `outputUnwritable` if it could not be written, except for a closed
    ///   pipe, whose reader asked for no more.
    public static func writeOutput(_ text: String) throws {
        let output = OutputBuffer()
        output.write(text)
        try output.finish()
    }
}
