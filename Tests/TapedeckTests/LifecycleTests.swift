import NIOConcurrencyHelpers
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing

@testable import Tapedeck

/// The one start/stop contract of the long-running parts, without sockets: a second start throws, a second stop
/// returns the first one's outcome, and `run()` serves until a graceful shutdown, cancellation or a stop.
@Suite(.timeLimit(.minutes(3)))
struct LifecycleTests {
    @Test func aSecondStartThrowsAndSoDoesAStartAfterAStop() async throws {
        let lifecycle = Lifecycle<Int, String>("widget")
        #expect(try await lifecycle.start { 1 } == 1)
        let again = await #expect(throws: TapedeckError.self) { try await lifecycle.start { 2 } }
        #expect(again?.message == "widget was already started")
        #expect(lifecycle.running == 1)
        #expect(await lifecycle.stop { "stopped \($0 ?? 0)" } == "stopped 1")
        #expect(lifecycle.running == nil)
        let late = await #expect(throws: TapedeckError.self) { try await lifecycle.start { 3 } }
        #expect(late?.message == "widget was already stopped")
    }

    @Test func aFailedStartIsNotRetriedAndItsStopHasNothingToStop() async throws {
        let lifecycle = Lifecycle<Int, String>("widget")
        await #expect(throws: TimeoutError.self) { try await lifecycle.start { throw TimeoutError() } }
        let again = await #expect(throws: TapedeckError.self) { try await lifecycle.start { 2 } }
        #expect(again?.message == "widget was already started")
        #expect(await lifecycle.stop { "stopped \($0 ?? 0)" } == "stopped 0")
    }

    @Test func concurrentStopsStopOnceAndAllReturnTheOutcome() async throws {
        let lifecycle = Lifecycle<Int, Int>("widget")
        _ = try await lifecycle.start { 7 }
        let calls = NIOLockedValueBox(0)
        let (entered, enter) = AsyncStream.makeStream(of: Void.self)
        let (released, release) = AsyncStream.makeStream(of: Void.self)
        let first = Task {
            await lifecycle.stop { running in
                calls.withLockedValue { $0 += 1 }
                enter.yield()
                for await _ in released { break }
                return (running ?? 0) * 2
            }
        }
        for await _ in entered { break }
        // The first stop is at work: this one waits for its outcome instead of stopping again.
        let second = Task {
            await lifecycle.stop { _ in
                calls.withLockedValue { $0 += 1 }
                return -1
            }
        }
        release.yield()
        #expect(await first.value == 14)
        #expect(await second.value == 14)
        #expect(await lifecycle.stop { _ in -1 } == 14)
        #expect(calls.withLockedValue { $0 } == 1)
    }

    @Test func aStopDuringAStartWaitsAndStopsWhatTheStartMade() async throws {
        let lifecycle = Lifecycle<Int, String>("widget")
        let (entered, enter) = AsyncStream.makeStream(of: Void.self)
        let (released, release) = AsyncStream.makeStream(of: Void.self)
        let start = Task {
            try await lifecycle.start {
                enter.yield()
                for await _ in released { break }
                return 5
            }
        }
        for await _ in entered { break }
        let stop = Task { await lifecycle.stop { "stopped \($0 ?? 0)" } }
        release.yield()
        #expect(try await start.value == 5)
        #expect(await stop.value == "stopped 5")
    }

    @Test func aStopBeforeAnyStartStopsNothingAndForbidsTheStart() async throws {
        let lifecycle = Lifecycle<Int, String>("widget")
        #expect(await lifecycle.stop { "stopped \($0 ?? 0)" } == "stopped 0")
        await #expect(throws: TapedeckError.self) { try await lifecycle.start { 1 } }
    }

    @Test func aRunStartsServesAndStopsGracefullyOnAGracefulShutdown() async throws {
        let lifecycle = Lifecycle<Int, String>("widget")
        let started = NIOLockedValueBox(false)
        try await testGracefulShutdown { trigger in
            async let outcome = lifecycle.run {
                started.withLockedValue { $0 = true }
                return 1
            } stop: { cancelled in
                await lifecycle.stop { "stopped \($0 ?? 0), cancelled: \(cancelled)" }
            }
            trigger.triggerGracefulShutdown()
            let stopped = try await outcome
            #expect(stopped == "stopped 1, cancelled: false")
        }
        #expect(started.withLockedValue { $0 })
    }

    @Test func aCancelledRunStopsAndIsToldSo() async throws {
        let lifecycle = Lifecycle<Int, String>("widget", running: 1)
        let run = Task {
            try await lifecycle.run {
                2
            } stop: { cancelled in
                await lifecycle.stop { "stopped \($0 ?? 0), cancelled: \(cancelled)" }
            }
        }
        run.cancel()
        #expect(try await run.value == "stopped 1, cancelled: true")
    }

    @Test func aDirectStopEndsTheRunWithItsOutcome() async throws {
        let lifecycle = Lifecycle<Int, String>("widget")
        let (entered, enter) = AsyncStream.makeStream(of: Void.self)
        let run = Task {
            try await lifecycle.run {
                enter.yield()
                return 1
            } stop: { _ in
                await lifecycle.stop { _ in "stopped by the run" }
            }
        }
        for await _ in entered { break }
        #expect(await lifecycle.stop { _ in "stopped directly" } == "stopped directly")
        #expect(try await run.value == "stopped directly")
    }

    @Test func aSecondRunThrowsWhileTheFirstServes() async throws {
        let lifecycle = Lifecycle<Int, String>("widget")
        let (entered, enter) = AsyncStream.makeStream(of: Void.self)
        let first = Task {
            try await lifecycle.run {
                enter.yield()
                return 1
            } stop: { _ in
                await lifecycle.stop { _ in "first" }
            }
        }
        for await _ in entered { break }
        let second = await #expect(throws: TapedeckError.self) {
            try await lifecycle.run {
                2
            } stop: { _ in
                "second"
            }
        }
        #expect(second?.message == "widget is already running")
        first.cancel()
        #expect(try await first.value == "first")
        // Once stopped, a run has nothing to serve: it returns the outcome at once.
        #expect(
            try await lifecycle.run {
                3
            } stop: { _ in
                await lifecycle.stop { _ in "late" }
            } == "first"
        )
    }

    @Test func aStopAskedForBeforeTheRunEndsItAtOnce() async throws {
        let lifecycle = Lifecycle<Int, String>("widget", running: 1)
        lifecycle.requestStop()
        let outcome = try await lifecycle.run {
            2
        } stop: { cancelled in
            await lifecycle.stop { "stopped \($0 ?? 0), cancelled: \(cancelled)" }
        }
        #expect(outcome == "stopped 1, cancelled: false")
    }
}
