import Foundation

/// A tape being re-recorded beside the one it replaces, so the old tape is kept until the new one is complete.
///
/// Recording with overwrite writes `<tape>.recording` and renames it over the tape once the recording has
/// finished and is closed. If recording cannot start, is cut short by a write error, or the process is killed,
/// the old tape is untouched, and what was recorded stays in the `.recording` file.
struct TapeReplacement: Sendable {
    /// The file being recorded.
    let recordingPath: String
    /// The tape it replaces.
    let tapePath: String

    /// The replacement for `tape`, if it exists; a new tape is simply recorded in place.
    init?(replacing tape: String) {
        guard FileManager.default.fileExists(atPath: tape) else { return nil }
        tapePath = tape
        recordingPath = tape + ".recording"
    }

    /// Puts the finished recording in the tape's place, in one rename.
    ///
    /// The old tape's log, shared memory and journal go first: left beside the new file, SQLite would apply
    /// them to it (see ``TapeFiles``).
    func commit() throws {
        try TapeFiles.replace(tapePath, with: recordingPath)
    }

    /// Removes a recording that never started.
    func discard() {
        for suffix in [""] + TapeFiles.sideFileSuffixes {
            try? FileManager.default.removeItem(atPath: recordingPath + suffix)
        }
    }
}
