import Foundation

/// The inspector's page: static files shipped with Tapedeck as package resources (`Resources/`), found beside
/// the executable that runs.
///
/// SwiftPM copies a target's resources into a directory beside the products it builds (`tapedeck_Tapedeck.resources`
/// on Linux, a `.bundle` on macOS). The generated `Bundle.module` accessor stops the process when it finds none, so
/// the inspector looks for the directory itself and reports a missing one as an error. `TAPEDECK_WEB_ASSETS`
/// names a directory to serve instead, read on every request: for working on the page without rebuilding.
struct InspectorAssets: Sendable {
    /// A file of the page.
    struct File: Sendable {
        var contents: Data
        var contentType: String
    }

    /// The files, by name (`index.html`, `inspector.js`, …).
    private let files: [String: File]
    /// The directory to read on every request instead, when set by `TAPEDECK_WEB_ASSETS`.
    private let liveDirectory: String?

    /// The names of the files the page is made of.
    static let names = ["index.html", "inspector.css", "inspector.js"]

    /// Finds and reads the page's files.
    ///
    /// - Throws: ``TapedeckError`` when they are nowhere to be found.
    static func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> InspectorAssets {
        if let directory = environment["TAPEDECK_WEB_ASSETS"], !directory.isEmpty {
            return InspectorAssets(files: [:], liveDirectory: directory)
        }
        for directory in candidateDirectories() {
            guard let files = try? read(directory) else { continue }
            return InspectorAssets(files: files, liveDirectory: nil)
        }
        throw TapedeckError(
            .invalidArgument,
            "cannot find the web inspector's files (tapedeck_Tapedeck.resources beside the tapedeck executable); "
                + "install the directory with the executable"
        )
    }

    /// Where SwiftPM puts the resources: beside the running executable (a test runner's too) and its main bundle,
    /// and the source directory of a checkout, for a build whose products moved.
    private static func candidateDirectories() -> [String] {
        var roots: [String] = []
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            roots.append((executable as NSString).deletingLastPathComponent)
        }
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            roots.append(executable.deletingLastPathComponent().path)
        }
        roots.append(Bundle.main.bundleURL.path)
        var directories: [String] = []
        for root in roots {
            for bundle in ["tapedeck_Tapedeck.resources", "tapedeck_Tapedeck.bundle"] {
                directories.append("\(root)/\(bundle)/Resources")
                directories.append("\(root)/\(bundle)/Contents/Resources/Resources")
            }
        }
        directories.append(
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path
        )
        return directories
    }

    private static func read(_ directory: String) throws -> [String: File] {
        var files: [String: File] = [:]
        for name in names {
            files[name] = File(
                contents: try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(name)),
                contentType: contentType(of: name)
            )
        }
        return files
    }

    static func contentType(of name: String) -> String {
        switch (name as NSString).pathExtension {
        case "html": return "text/html; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "js": return "text/javascript; charset=utf-8"
        default: return "application/octet-stream"
        }
    }

    /// The file named `name`, if the page has one.
    func file(_ name: String) -> File? {
        guard Self.names.contains(name) else { return nil }
        if let liveDirectory {
            guard let contents = try? Data(contentsOf: URL(fileURLWithPath: liveDirectory).appendingPathComponent(name))
            else { return nil }
            return File(contents: contents, contentType: Self.contentType(of: name))
        }
        return files[name]
    }
}
