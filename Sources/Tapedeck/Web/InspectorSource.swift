import Foundation

/// What a web inspector shows: a tape, and the replay report whose mismatches it explains.
///
/// `tapedeck web` shows a finished tape and, with `--report`, a report read from a file. Attached to a running
/// deck (`--web`), it shows the tape being recorded or replayed and the replay's report as it grows.
public struct InspectorSource: Sendable {
    /// The tape file.
    public var tapePath: String
    /// `view` for `tapedeck web`, else the mode of the deck it is attached to.
    public var mode: String
    /// Whether sessions and mismatches may still arrive: the page then polls for them.
    public var live: Bool
    /// The report as it is now, or nil when there is none.
    let report: @Sendable () -> ReplayReport?

    /// A finished tape, with the report of a replay of it when there is one.
    public init(tapePath: String, report: ReplayReport? = nil) {
        self.tapePath = tapePath
        mode = "view"
        live = false
        self.report = { report }
    }

    /// A tape a deck is writing or replaying; `report` answers the replay's report so far.
    public init(liveTapePath: String, mode: String, report: @escaping @Sendable () -> ReplayReport?) {
        tapePath = liveTapePath
        self.mode = mode
        live = true
        self.report = report
    }

    /// Reads a replay report written by `--report FILE`.
    ///
    /// - Throws: ``TapedeckError`` naming the file when it cannot be read or is not a report.
    public static func readReport(at path: String) throws -> ReplayReport {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TapedeckError(.invalidArgument, "cannot read report '\(path)': \(Self.reason(error))")
        }
        do {
            return try JSONDecoder().decode(ReplayReport.self, from: data)
        } catch {
            throw TapedeckError(.invalidArgument, "report '\(path)' is not a replay report written by --report")
        }
    }

    private static func reason(_ error: any Error) -> String {
        let error = error as NSError
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code))).lowercased()
        }
        if error.code == NSFileReadNoSuchFileError { return "no such file" }
        return error.localizedDescription
    }
}
