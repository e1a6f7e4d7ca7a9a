import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Tapedeck

/// The whole proxy, in process, against in-process upstream servers on loopback.
@Suite(.timeLimit(.minutes(3)))
struct RelayTests {
    @Test func relaysLargeRandomPayloadBothWaysByteForByte() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let payload = Payload.random(count: 64 << 20, seed: 42)
        try await withProxy(upstream: upstream.endpoint) { address, _ in
            let connection = try await TestClient.connect(to: address)
            let (received, ending) = try await connection.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        // Uneven chunks, so nothing depends on a chunk size lining up.
                        var rest = payload
                        var size = 1
                        while rest.readableBytes > 0 {
                            let chunk = rest.readSlice(length: min(size, rest.readableBytes))!
                            try await outbound.write(chunk)
                            size = size * 7 % 1_000_003 + 1
                        }
                        outbound.finish()
                    }
                    let result = await TestClient.readAll(inbound)
                    try await group.waitForAll()
                    return result
                }
            }
            #expect(ending == .eof)
            #expect(received.readableBytes == payload.readableBytes)
            #expect(received == payload)
        }
        #expect(await upstream.log.waitFor { $0.contains("eof:\(64 << 20)") })
    }

    @Test func serverThatSpeaksFirstIsRelayedFromTheFirstByte() async throws {
        let banner = Payload.random(count: 8 << 20, seed: 7)
        let upstream = try await TestServer.start(.speakFirst(banner))
        defer { Task { await upstream.stop() } }
        try await withProxy(upstream: upstream.endpoint) { address, _ in
            let connection = try await TestClient.connect(to: address)
            let (received, ending) = try await connection.executeThenClose { inbound, _ in
                await TestClient.readAll(inbound)
            }
            #expect(ending == .eof)
            #expect(received == banner)
        }
    }

    /// A client that says nothing and half-closes at once, while the upstream connect is still in progress: the
    /// FIN must wait for the connect rather than abort it.
    @Test func aFinBeforeTheUpstreamIsConnectedWaitsForTheConnect() async throws {
        // A full accept queue drops the proxy's SYN; once the listener accepts, the retransmitted SYN (about a
        // second later) connects.
        let (slowListener, fillers) = try await TestServer.startBlackHole()
        defer {
            for channel in fillers + [slowListener] { channel.close(promise: nil) }
        }
        let target = Endpoint(slowListener.localAddress!)
        // A long connect timeout: on a loaded machine the retransmitted SYN may take seconds.
        try await withProxy(upstream: target, connectTimeout: .seconds(20)) { address, _ in
            let connection = try await TestClient.connect(to: address)
            let ending = try await connection.executeThenClose { inbound, outbound in
                outbound.finish()
                try await Task.sleep(for: .milliseconds(200))
                // Accepts everything queued and what follows; NIO closes those channels on their FIN.
                try await slowListener.setOption(ChannelOptions.autoRead, value: true)
                return await TestClient.readAll(inbound).ending
            }
            #expect(ending == .eof)
        }
    }

    @Test func clientHalfCloseReachesUpstreamAndTheReplyStillFlows() async throws {
        let upstream = try await TestServer.start(.countThenReply)
        defer { Task { await upstream.stop() } }
        try await withProxy(upstream: upstream.endpoint) { address, _ in
            let connection = try await TestClient.connect(to: address)
            let (received, ending) = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(Payload.random(count: 100_000, seed: 1))
                outbound.finish()  // shutdown(SHUT_WR), reading on
                return await TestClient.readAll(inbound)
            }
            #expect(ending == .eof)
            #expect(String(buffer: received) == "received 100000")
        }
        #expect(upstream.log.events.contains("eof:100000"))
    }

    @Test func upstreamHalfCloseReachesClientAndTheClientCanStillSend() async throws {
        let upstream = try await TestServer.start(.speakFirst(ByteBuffer(string: "hello")))
        defer { Task { await upstream.stop() } }
        try await withProxy(upstream: upstream.endpoint) { address, _ in
            let connection = try await TestClient.connect(to: address)
            try await connection.executeThenClose { inbound, outbound in
                let (received, ending) = await TestClient.readAll(inbound)
                #expect(String(buffer: received) == "hello")
                #expect(ending == .eof)
                // The upstream only shut its output; the client's direction is still open.
                try await outbound.write(ByteBuffer(string: "still talking"))
                outbound.finish()
            }
        }
        #expect(await upstream.log.waitFor { _ in upstream.log.bytesReceived == 13 })
    }

    @Test func upstreamResetResetsTheClient() async throws {
        let upstream = try await TestServer.start(.resetOnData)
        defer { Task { await upstream.stop() } }
        try await withProxy(upstream: upstream.endpoint) { address, _ in
            let connection = try await TestClient.connect(to: address)
            let ending = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "boom"))
                return await TestClient.readAll(inbound).ending
            }
            #expect(ending == .reset)
        }
    }

    @Test func clientResetResetsTheUpstream() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withProxy(upstream: upstream.endpoint) { address, _ in
            let connection = try await TestClient.connect(to: address)
            try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "ping"))
                var iterator = inbound.makeAsyncIterator()
                _ = try await iterator.next()
            }
            #expect(await upstream.log.waitFor { $0.contains("open") })
            let second = try await TestClient.connect(to: address)
            try await second.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "ping"))
                var iterator = inbound.makeAsyncIterator()
                _ = try await iterator.next()
            }
            // Orderly closes so far: nothing may look like a reset upstream.
            try await Task.sleep(for: .milliseconds(100))
            #expect(!upstream.log.events.contains("peer-reset"))
            // Now reset a third connection mid-session.
            let third = try await TestClient.connect(to: address)
            try await third.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "ping"))
                var iterator = inbound.makeAsyncIterator()
                _ = try await iterator.next()
                await TestClient.reset(third)
            }
            #expect(await upstream.log.waitFor { $0.contains("peer-reset") })
        }
    }

    @Test func refusedUpstreamResetsTheClientAtOnce() async throws {
        let closed = try ClosedPort()
        defer { withExtendedLifetime(closed) {} }  // the port stays ours until the test is done
        // A connect timeout far beyond the bound below: a reset before it can only be the refusal.
        try await withProxy(upstream: closed.endpoint, connectTimeout: .seconds(120)) { address, _ in
            let started = ContinuousClock.now
            let ending = try await TestClient.listen(to: address)
            #expect(ending == .reset)
            // At once: well before the connect timeout, with room for a loaded machine.
            #expect(ContinuousClock.now - started < Sanitizer.scaled(.seconds(30)))
        }
    }

    @Test func upstreamConnectTimeoutResetsTheClient() async throws {
        let (blackHole, fillers) = try await TestServer.startBlackHole()
        defer {
            for channel in fillers + [blackHole] { channel.close(promise: nil) }
        }
        let target = Endpoint(blackHole.localAddress!)
        try await withProxy(upstream: target, connectTimeout: .milliseconds(300)) { address, _ in
            let started = ContinuousClock.now
            let ending = try await TestClient.listen(to: address)
            let elapsed = ContinuousClock.now - started
            #expect(ending == .reset)
            #expect(elapsed >= .milliseconds(250))
            // Bounded, with room for a machine loaded by the real servers of other suites (a connect that ignored
            // the timeout would hang until the test's time limit).
            #expect(elapsed < Sanitizer.scaled(.seconds(30)))
        }
    }

    @Test func relaysBetweenUnixSockets() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "td-\(UInt32.random(in: 0...UInt32.max))"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let upstream = try await TestServer.start(.echo, at: .unix(path: directory.path + "/up.sock"))
        defer { Task { await upstream.stop() } }
        let payload = Payload.random(count: 4 << 20, seed: 3)
        try await withProxy(upstream: upstream.endpoint, listen: .unix(path: directory.path + "/proxy.sock")) {
            address,
            _ in
            #expect(address == .unix(path: directory.path + "/proxy.sock"))
            let connection = try await TestClient.connect(to: address)
            let (received, ending) = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(payload)
                outbound.finish()
                return await TestClient.readAll(inbound)
            }
            #expect(ending == .eof)
            #expect(received == payload)
        }
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/proxy.sock"))
    }

    @Test func relaysOverIPv6Loopback() async throws {
        let upstream = try await TestServer.start(.echo, at: .tcp(host: "::1", port: 0))
        defer { Task { await upstream.stop() } }
        try await withProxy(upstream: upstream.endpoint, listen: .tcp(host: "::1", port: 0)) { address, _ in
            guard case .tcp("::1", let port) = address else {
                Issue.record("expected an IPv6 loopback address, got \(address)")
                return
            }
            #expect(port > 0)
            #expect(address.description == "[::1]:\(port)")
            let connection = try await TestClient.connect(to: address)
            let (received, _) = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "over v6"))
                outbound.finish()
                return await TestClient.readAll(inbound)
            }
            #expect(String(buffer: received) == "over v6")
        }
    }

    @Test func handlesFiveHundredConcurrentConnections() async throws {
        ProcessLimits.raiseOpenFileLimit()
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withProxy(upstream: upstream.endpoint) { address, server in
            let failures = try await withThrowingTaskGroup(of: String?.self) { group in
                for index in 0..<500 {
                    group.addTask {
                        let message = Payload.random(count: 1000 + index, seed: UInt64(index + 1))
                        let connection = try await TestClient.connect(to: address)
                        return try await connection.executeThenClose { inbound, outbound in
                            try await outbound.write(message)
                            outbound.finish()
                            let (bytes, ending) = await TestClient.readAll(inbound)
                            return bytes == message
                                ? nil : "\(index): \(bytes.readableBytes) of \(message.readableBytes) bytes, \(ending)"
                        }
                    }
                }
                var failures: [String] = []
                for try await failure in group { if let failure { failures.append(failure) } }
                return failures
            }
            #expect(failures.isEmpty, "\(failures.count) of 500 failed: \(failures.prefix(5))")
        }
    }

    @Test func listenPortInUseIsAClearError() async throws {
        let occupant = try await TestServer.start(.echo)
        defer { Task { await occupant.stop() } }
        let route = Route(listen: occupant.endpoint, upstream: occupant.endpoint)
        let server = ProxyServer(configuration: try ProxyConfiguration(routes: [route]))
        let error = await #expect(throws: TapedeckError.self) { try await server.start() }
        #expect(error?.code == .listenFailed)
        #expect(error?.description == "cannot listen on \(occupant.endpoint) (route 'default'): address already in use")
    }

    @Test func shutdownLetsOpenSessionsFinishAndRefusesNewOnes() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let server = ProxyServer(configuration: try ProxyConfiguration(routes: [Route(upstream: upstream.endpoint)]))
        let address = try await server.start()[0].address
        let connection = try await TestClient.connect(to: address)
        try await connection.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: "before"))
            #expect(try await iterator.next().map { String(buffer: $0) } == "before")
            let shutdown = Task { await server.shutdown(drainTimeout: .seconds(90)) }
            // The shutdown task may take a while to run on a loaded machine (the whole suite on two cores queues
            // tasks for tens of seconds): new connections are refused once it has closed the listeners (a bounded
            // wait, not a fixed sleep).
            var refused = false
            let deadline = ContinuousClock.now.advanced(by: .seconds(60))
            while !refused, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                refused = await TestClient.isRefused(address)
            }
            #expect(refused)
            // The open session still relays during the drain.
            try await outbound.write(ByteBuffer(string: "during"))
            #expect(try await iterator.next().map { String(buffer: $0) } == "during")
            outbound.finish()
            #expect(try await iterator.next() == nil)
            let outcome = try await withTimeout(.seconds(5)) { await shutdown.value }
            #expect(outcome.interruptedConnections == 0)
        }
    }

    @Test func drainTimeoutResetsSessionsThatDoNotEnd() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let server = ProxyServer(configuration: try ProxyConfiguration(routes: [Route(upstream: upstream.endpoint)]))
        let address = try await server.start()[0].address
        let connection = try await TestClient.connect(to: address)
        try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "hello"))
            var iterator = inbound.makeAsyncIterator()
            _ = try await iterator.next()
            let started = ContinuousClock.now
            let outcome = await server.shutdown(drainTimeout: .milliseconds(300))
            #expect(outcome.interruptedConnections == 2)
            // Bounded by the drain timeout (a shutdown that ignored it would never end), with room for a machine
            // loaded by the real servers of other suites.
            #expect(ContinuousClock.now - started < Sanitizer.scaled(.seconds(30)))
            await #expect(throws: IOError.self) { _ = try await iterator.next() }
        }
    }

    /// Small request-reply traffic must not wait for Nagle's algorithm on either leg of the relay.
    @Test func bothSocketsOfASessionHaveNagleOff() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let upstreamPort = try #require(upstream.endpoint.port)
        try await withProxy(upstream: upstream.endpoint) { address, _ in
            let proxyPort = try #require(address.port)
            let connection = try await TestClient.connect(to: address)
            try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "ping"))
                var iterator = inbound.makeAsyncIterator()
                _ = try await iterator.next()
                // The proxy runs in this process: find its two sockets of the session among ours.
                let accepted = Self.openSockets().filter { $0.local == proxyPort }
                let connected = Self.openSockets().filter { $0.peer == upstreamPort && $0.local != upstreamPort }
                #expect(accepted.count == 1)
                #expect(connected.count == 1)
                for socket in accepted + connected { #expect(socket.noDelay, "port \(socket.local)") }
            }
        }
    }

    /// This process's connected TCP sockets: local and peer port, and whether TCP_NODELAY is set.
    private static func openSockets() -> [(local: Int, peer: Int, noDelay: Bool)] {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.compactMap { Int32($0) }.compactMap { fd in
            func port(_ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> Int?
            {
                var address = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let result = withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
                }
                guard result == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
                return Int(UInt16(bigEndian: address.sin_port))
            }
            guard let local = port(getsockname), let peer = port(getpeername) else { return nil }
            var flag: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &flag, &size) == 0 else { return nil }
            return (local, peer, flag != 0)
        }
    }
}
