import Foundation

/// Scratch tapes of the workloads.
public enum ScratchTape {
    /// A fresh path for a scratch tape in the temporary directory.
    public static func path(_ name: String) -> String {
        FileManager.default.temporaryDirectory
            .appendingPathComponent("tapedeck-bench-\(name)-\(UUID().uuidString).tape").path
    }

    /// Removes a scratch tape and the side files SQLite may have left beside it.
    public static func remove(_ path: String) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            try? FileManager.default.removeItem(atPath: path + suffix)
        }
    }
}
