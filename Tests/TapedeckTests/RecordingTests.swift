import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Tapedeck

/// Recording through the in-process proxy, checked row by row in the tape.
@Suite(.timeLimit(.minutes(3)))
struct RecordingTests {
    @Test func recordsLargeBinaryPayloadsByteForByteInOrder() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("bulk.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let payload = Payload.random(count: 64 << 20, seed: 5)

        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            let connection = try await TestClient.connect(to: address)
            let (echo, _) = try await connection.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        var rest = payload
                        var size = 3
                        while rest.readableBytes > 0 {
                            try await outbound.write(rest.readSlice(length: min(size, rest.readableBytes))!)
                            size = size * 13 % 700_001 + 1
                        }
                        outbound.finish()
                    }
                    let result = await TestClient.readAll(inbound)
                    try await group.waitForAll()
                    return result
                }
            }
            #expect(echo == payload)
        }

        let tape = try Tape(readingAt: tapePath)
        let sessions = try tape.sessions()
        try #require(sessions.count == 1)
        let session = sessions[0]
        #expect(session.outcome == .closed)
        #expect(session.clientBytes == Int64(payload.readableBytes))
        #expect(session.upstreamBytes == Int64(payload.readableBytes))
        let events = try tape.events(inSession: session.id!)
        #expect(events.count == Int(session.eventCount))
        #expect(events.map(\.seq) == Array(0..<Int64(events.count)))
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.offsetNanoseconds <= $1.offsetNanoseconds })
        #expect(events.bytes(.clientToUpstream) == payload.data)
        #expect(events.bytes(.upstreamToClient) == payload.data)
        // Chunk boundaries are kept as they arrived: many reads, none empty.
        #expect(events.filter { $0.kind == .data }.count > 100)
        #expect(events.filter { $0.kind == .data }.allSatisfy { ($0.payload?.count ?? 0) > 0 })
    }

    @Test func recordsHalfCloseAndTheReplyAfterIt() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("half.tape")
        let upstream = try await TestServer.start(.countThenReply)
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            let connection = try await TestClient.connect(to: address)
            _ = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "hello"))
                outbound.finish()
                return await TestClient.readAll(inbound)
            }
        }
        let tape = try Tape(readingAt: tapePath)
        let session = try #require(try tape.sessions().first)
        let events = try tape.events(inSession: session.id!)
        #expect(session.outcome == .closed)
        #expect(events.bytes(.clientToUpstream) == Data("hello".utf8))
        #expect(events.bytes(.upstreamToClient) == Data("received 5".utf8))
        #expect(events.markers.first == "client half_close")
        #expect(events.markers.contains("upstream half_close"))
        // The reply comes after the client's half-close.
        let halfClose = try #require(events.firstIndex { $0.kind == .halfClose && $0.direction == .clientToUpstream })
        let reply = try #require(events.firstIndex { $0.kind == .data && $0.direction == .upstreamToClient })
        #expect(halfClose < reply)
    }

    @Test func recordsAnUpstreamReset() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("reset.tape")
        let upstream = try await TestServer.start(.resetOnData)
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            let connection = try await TestClient.connect(to: address)
            let ending = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "boom"))
                return await TestClient.readAll(inbound).ending
            }
            #expect(ending == .reset)
        }
        let tape = try Tape(readingAt: tapePath)
        let session = try #require(try tape.sessions().first)
        #expect(session.outcome == .resetByUpstream)
        #expect(try tape.events(inSession: session.id!).markers == ["upstream reset"])
    }

    @Test func recordsAClientReset() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("client-reset.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            let connection = try await TestClient.connect(to: address)
            try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "ping"))
                var iterator = inbound.makeAsyncIterator()
                _ = try await iterator.next()
                await TestClient.reset(connection)
            }
            #expect(await upstream.log.waitFor { $0.contains("peer-reset") })
        }
        let tape = try Tape(readingAt: tapePath)
        let session = try #require(try tape.sessions().first)
        #expect(session.outcome == .resetByClient)
        #expect(try tape.events(inSession: session.id!).markers == ["client reset"])
    }

    @Test func recordsARefusedUpstream() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("refused.tape")
        let closed = try ClosedPort()
        defer { withExtendedLifetime(closed) {} }  // the port stays ours until the test is done
        let endpoint = closed.endpoint
        try await withRecordingProxy(upstream: endpoint, tapePath: tapePath) { address throws in
            #expect(try await TestClient.listen(to: address, halfClosing: false) == .reset)
        }
        let tape = try Tape(readingAt: tapePath)
        let session = try #require(try tape.sessions().first)
        #expect(session.outcome == .upstreamRefused)
        let events = try tape.events(inSession: session.id!)
        #expect(events.markers == ["upstream connect_failed"])
        #expect(events.first?.payload == Data("connection refused".utf8))
    }

    @Test func recordsAConnectTimeout() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("timeout.tape")
        let (blackHole, fillers) = try await TestServer.startBlackHole()
        defer { for channel in fillers + [blackHole] { channel.close(promise: nil) } }
        try await withRecordingProxy(
            upstream: Endpoint(blackHole.localAddress!),
            tapePath: tapePath,
            connectTimeout: .milliseconds(200)
        ) { address in
            // Under load the 200 ms can run out before the client's own connect completes: it then sees the reset.
            guard let connection = try await TestClient.connectUnlessReset(to: address) else { return }
            _ = try await connection.executeThenClose { inbound, _ in await TestClient.readAll(inbound).ending }
        }
        let session = try #require(try Tape(readingAt: tapePath).sessions().first)
        #expect(session.outcome == .connectTimeout)
    }

    @Test func recordsThreeHundredConcurrentSessionsEachInItsOwnOrder() async throws {
        ProcessLimits.raiseOpenFileLimit()
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("many.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<300 {
                    group.addTask {
                        let connection = try await TestClient.connect(to: address)
                        try await connection.executeThenClose { inbound, outbound in
                            var iterator = inbound.makeAsyncIterator()
                            // Three exchanges, so each session has several events that must stay in order.
                            for round in 0..<3 {
                                try await outbound.write(ByteBuffer(string: "client \(index) round \(round);"))
                                var received = 0
                                while received < "client \(index) round \(round);".utf8.count,
                                    let chunk = try await iterator.next()
                                {
                                    received += chunk.readableBytes
                                }
                            }
                            outbound.finish()
                            while try await iterator.next() != nil {}
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let tape = try Tape(readingAt: tapePath)
        // A connect-and-close with no byte is not one of these clients: another suite's server fixture, polling
        // for its own listener on a port number the kernel has just handed this proxy too.
        let sessions = try tape.sessions().filter { $0.outcome != .probe }
        #expect(sessions.count == 300)
        var seen = Set<Int>()
        for session in sessions {
            let events = try tape.events(inSession: session.id!)
            let sent = String(decoding: events.bytes(.clientToUpstream), as: UTF8.self)
            let index = try #require(sent.split(separator: " ").dropFirst().first.flatMap { Int($0) }, "\(sent)")
            seen.insert(index)
            #expect(sent == "client \(index) round 0;client \(index) round 1;client \(index) round 2;")
            #expect(events.bytes(.upstreamToClient) == events.bytes(.clientToUpstream))
            #expect(events.map(\.seq) == Array(0..<Int64(events.count)))
            #expect(session.outcome == .closed)
        }
        #expect(seen.count == 300)
    }

    @Test func appendsRunsAndOverwriteStartsFresh() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("runs.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        func oneSession(overwrite: Bool, label: String) async throws {
            try await withRecordingProxy(
                upstream: upstream.endpoint,
                tapePath: tapePath,
                overwrite: overwrite,
                label: label
            ) { address in
                let connection = try await TestClient.connect(to: address)
                _ = try await connection.executeThenClose { inbound, outbound in
                    try await outbound.write(ByteBuffer(string: label))
                    outbound.finish()
                    return await TestClient.readAll(inbound)
                }
            }
        }
        try await oneSession(overwrite: false, label: "first")
        try await oneSession(overwrite: false, label: "second")
        var tape = try Tape(readingAt: tapePath)
        #expect(try tape.runs().map(\.label) == ["first", "second"])
        #expect(try tape.sessions().map(\.runID) == (try tape.runs().map { $0.id! }))
        #expect(try tape.runs().allSatisfy { $0.endedAt != nil && $0.toolVersion == tapedeckVersion })

        try await oneSession(overwrite: true, label: "fresh")
        tape = try Tape(readingAt: tapePath)
        #expect(try tape.runs().map(\.label) == ["fresh"])
        #expect(try tape.sessions().count == 1)
    }

    @Test func tapesAreCreatedOwnerOnly() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("private.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let route = Route(upstream: upstream.endpoint)
        let tape = try Tape(recordingAt: tapePath)
        let recorder = try Recorder(tape: tape, routes: [route])
        for suffix in ["", "-wal", "-shm"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: tapePath + suffix)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(suffix)")
        }
        try await recorder.finish()
    }

    @Test func aTapeCanBeReadWhileItIsRecorded() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("live.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let route = Route(upstream: upstream.endpoint)
        let recorder = try Recorder(tape: try Tape(recordingAt: tapePath), routes: [route])
        let server = ProxyServer(configuration: try ProxyConfiguration(routes: [route]), recorder: recorder)
        let address = try await server.start()[0].address
        let connection = try await TestClient.connect(to: address)
        _ = try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "live"))
            outbound.finish()
            return await TestClient.readAll(inbound)
        }
        // The session reaches the recorder once both of its connections have closed: soon, but on a busy machine
        // not at a fixed moment, so the reader looks for it for up to ten seconds.
        let reader = try Tape(readingAt: tapePath)
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        repeat {
            try await Task.sleep(for: .milliseconds(50))
            try await recorder.flush()
        } while try reader.sessions().first?.outcome != .closed && ContinuousClock.now < deadline
        #expect(try reader.sessions().count == 1)
        #expect(try reader.events(inSession: 1).bytes(.clientToUpstream) == Data("live".utf8))
        await server.shutdown()
        try await recorder.finish()
    }
}
