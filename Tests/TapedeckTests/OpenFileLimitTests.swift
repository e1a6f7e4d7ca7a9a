import Foundation
import Testing

@testable import Tapedeck

/// `tapedeck proxy` at its open-files limit, as a real process: the limit is lowered for that process alone, so
/// the tests running beside this one keep theirs.
@Suite(.timeLimit(.minutes(3)))
struct OpenFileLimitTests {
    /// Sessions opened to fill the limit; each holds two descriptors in the proxy.
    private static let fillingSessions = 8
    /// Clients that connect once the limit is reached: the kernel completes their handshakes into the backlog,
    /// and the proxy's accepts fail with EMFILE.
    private static let waitingClients = 4

    @Test func atTheOpenFilesLimitAcceptingPausesQuietlyAndResumes() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let proxy = try TapedeckProcess(["proxy", "--upstream", "\(upstream.endpoint)"])
        let address = try #require(try await proxy.waitForListening()["default"])

        // One session first, so that whatever the process opens on its first connection is open when counting.
        var sessions = [try BlockingConnection(to: address)]
        #expect(try sessions[0].echo("first") == "first")
        let limit = try ProcessResources.openDescriptors(proxy.pid) + 2 * Self.fillingSessions
        try ProcessResources.setOpenFileLimit(proxy.pid, limit)
        for index in 0..<Self.fillingSessions {
            do {
                let session = try BlockingConnection(to: address)
                #expect(try session.echo("fill \(index)") == "fill \(index)")
                sessions.append(session)
            } catch {
                throw TestProcessError("session \(index) filling the limit: \(error)")
            }
        }
        try #require(try ProcessResources.openDescriptors(proxy.pid) == limit)

        var waiting = try (0..<Self.waitingClients).map { _ in try BlockingConnection(to: address) }
        try await Task.sleep(for: .milliseconds(200))
        let load = try await ProcessResources.cpuLoad(proxy.pid, over: .seconds(1))
        #expect(load < 0.3, "the proxy used \(load) s of CPU per second at its open-files limit")

        // Descriptors free up. Every client that waited gets an answer, none is left hanging: served, or reset when
        // the proxy accepted it while only one descriptor was free and could not open its upstream (a closing
        // session frees its two one at a time).
        sessions.removeAll()
        for (index, client) in waiting.enumerated() {
            let reply = try client.echoUnlessEnded("waited \(index)")
            #expect(reply == nil || reply == "waited \(index)")
        }
        // Once the closed sessions' descriptors are all back, a new client is served.
        try await waitUntil { (try? ProcessResources.openDescriptors(proxy.pid)).map { $0 <= limit - 4 } ?? false }
        #expect(try BlockingConnection(to: address).echo("late") == "late")
        waiting.removeAll()

        // One warning per pause, not one per failed accept (about ten a second); each pause ends in a notice.
        let log = proxy.stderr.split(separator: "\n")
        let pauses = log.filter { $0.contains("too many open files: accepting paused") }
        #expect((1...3).contains(pauses.count))
        #expect(log.filter { $0.contains("accepting again") }.count == pauses.count)
        #expect(pauses.allSatisfy { $0.contains("tapedeck.route=default") })
        proxy.signal(SIGTERM)
        #expect(try await proxy.waitForExit(timeout: .seconds(20)) == 0)
    }

    private func waitUntil(timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TimeoutError() }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
