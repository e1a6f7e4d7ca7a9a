import Foundation
import Testing

/// The benchmark harness (`scripts/bench`) keeps working as the product changes: its dry run drives every
/// workload at tiny sizes against the `tapedeck` built beside these tests, and skips, with a note, peers that are
/// not installed (socat, HAProxy and dnsmasq are not, in CI) and the micro-benchmark executable, which only a release
/// build of the Benchmarks package makes.
@Suite(.timeLimit(.minutes(5)))
struct BenchHarnessTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func dryRunOfTheBenchmarkHarnessMeasuresEveryWorkloadWithoutAFailure() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-dry-run-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("stdout").path
        let errors = directory.appendingPathComponent("stderr").path
        let harness = try ChildProcess(
            [
                "/usr/bin/env", "python3", Self.repository.appendingPathComponent("scripts/bench").path, "--dry-run",
                "--tapedeck", TapedeckProcess.executable.path, "--tmp-dir", directory.path,
            ],
            outputPath: output,
            errorPath: errors
        )
        // The dry run takes well under a minute on an idle machine; the suite runs beside it.
        let deadline = ContinuousClock.now.advanced(by: Sanitizer.scaled(.seconds(180)))
        while harness.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        // SIGTERM first: the harness then stops the servers it started before it exits.
        harness.stop(SIGTERM, timeout: .seconds(20))
        let status = try #require(harness.exitStatus)
        let log = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        let report = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(status == 0, "scripts/bench --dry-run exited with \(status):\n\(log.suffix(3_000))")
        #expect(log.contains("dry run: "), "no summary line:\n\(log.suffix(3_000))")
        for section in [
            "### Replay (`tapedeck replay`)", "### Replay at scale", "### Inspect", "### `tapedeck run`", "### Rules",
        ] {
            #expect(report.contains(section), "the report has no '\(section)' section:\n\(report.prefix(3_000))")
        }
        // The TLS workload needs nginx, openssl and wrk; where one is missing it is skipped, with a note.
        #expect(
            report.contains("### TLS") || report.contains("- workload tls: "),
            "the report has neither a TLS section nor a note that the tls workload was skipped:\n\(report.prefix(3_000))"
        )
        // The UDP workload runs its direct leg wherever gcc builds its load generator; DNS needs dnsmasq, MySQL
        // MariaDB and mariadb-slap; the faults workload redis-server and redis-benchmark; the web workload headless
        // Chromium, chromedriver and Selenium.
        for (section, workload) in [
            ("### UDP", "udp"), ("### DNS", "dns"), ("### MySQL", "mysql"), ("### Faults", "faults"),
            ("### Web inspector", "web"),
        ] {
            #expect(
                report.contains(section) || report.contains("- workload \(workload): "),
                "no '\(section)' section and no note that workload \(workload) was skipped:\n\(report.prefix(3_000))"
            )
        }
    }
}
