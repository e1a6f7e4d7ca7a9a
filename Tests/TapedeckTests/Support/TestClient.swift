import Foundation
import NIOCore
import NIOPosix

@testable import Tapedeck

/// A client connection for relay tests, built on `NIOAsyncChannel` so tests read like a conversation.
struct TestClient {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    /// How a connection's inbound stream ended.
    enum Ending: Equatable {
        case eof
        case reset
        case error(String)
    }

    static func connect(to endpoint: Endpoint) async throws -> Connection {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<Connection> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try Connection(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(isOutboundHalfClosureEnabled: true)
                )
            }
        }
        switch endpoint {
        case .tcp(let host, let port):
            return try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
        case .unix(let path):
            return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initializer)
        case .udp:
            throw TestProcessError("a stream client cannot connect to \(endpoint)")
        }
    }

    /// Reads until end of stream or `limit` bytes, and says how the stream ended.
    static func readAll(
        _ inbound: NIOAsyncChannelInboundStream<ByteBuffer>,
        limit: Int = .max
    ) async -> (bytes: ByteBuffer, ending: Ending) {
        var received = ByteBuffer()
        do {
            for try await var chunk in inbound {
                received.writeBuffer(&chunk)
                if received.readableBytes >= limit { return (received, .eof) }
            }
            return (received, .eof)
        } catch let error as IOError where RelayHandler.isReset(errno: error.errnoCode) {
            return (received, .reset)
        } catch {
            return (received, .error("\(error)"))
        }
    }

    /// Whether connections to `endpoint` are refused within a second. A listener just closed can accept a moment
    /// longer: a child being forked by another test holds every socket of this process until it closes them before
    /// its `exec`. A connection that is accepted is closed properly: a dropped `NIOAsyncChannel` whose writer was
    /// never finished traps.
    static func isRefused(_ endpoint: Endpoint) async -> Bool {
        for _ in 0..<20 {
            guard let connection = try? await connect(to: endpoint) else { return true }
            try? await connection.executeThenClose { _, outbound in outbound.finish() }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Connects, or returns nil when the server reset the connection so fast that the connect itself saw it
    /// (a relay whose upstream refused, a replayed refused connect): under load that race goes either way.
    static func connectUnlessReset(to endpoint: Endpoint) async throws -> Connection? {
        do {
            return try await connect(to: endpoint)
        } catch let error as NIOConnectionError
            where error.connectionErrors.contains(where: { ($0.error as? IOError)?.errnoCode == ECONNRESET })
        {
            return nil
        }
    }

    /// Connects and only listens, until the connection ends; a reset so fast that the connect itself saw it
    /// counts as a reset. Half-closes first unless told not to.
    static func listen(to endpoint: Endpoint, halfClosing: Bool = true) async throws -> Ending {
        guard let connection = try await connectUnlessReset(to: endpoint) else { return .reset }
        return try await connection.executeThenClose { inbound, outbound in
            if halfClosing { outbound.finish() }
            return await readAll(inbound).ending
        }
    }

    /// Closes with RST instead of FIN.
    static func reset(_ connection: Connection) async {
        let channel = connection.channel
        try? await channel.eventLoop.submit { RelayHandler.armReset(channel) }.get()
        try? await channel.close()
    }
}

/// Deterministic pseudo-random bytes, so large payloads can be compared without keeping two copies around.
enum Payload {
    static func random(count: Int, seed: UInt64) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count)
        var state = seed | 1
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
            let words = count / 8
            for index in 0..<words {
                // xorshift64*: fast and good enough to defeat any accidental pattern in a relay.
                state ^= state >> 12
                state ^= state << 25
                state ^= state >> 27
                pointer.storeBytes(of: state &* 2_685_821_657_736_338_717, toByteOffset: index * 8, as: UInt64.self)
            }
            for index in (words * 8)..<count {
                pointer[index] = UInt8(truncatingIfNeeded: index &* 31)
            }
            return count
        }
        return buffer
    }
}

/// Fails a test that waits too long instead of letting it hang the suite.
struct TimeoutError: Error, CustomStringConvertible {
    var description: String { "timed out" }
}

func withTimeout<T: Sendable>(
    _ timeout: Duration,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw TimeoutError()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Starts a proxy in front of `upstream` on a free loopback port, runs `body`, and always shuts it down.
func withProxy<T>(
    upstream: Endpoint,
    listen: Endpoint = .tcp(host: "127.0.0.1", port: 0),
    connectTimeout: Duration = .seconds(5),
    _ body: (Endpoint, ProxyServer) async throws -> T
) async throws -> T {
    let route = Route(listen: listen, upstream: upstream, connectTimeout: connectTimeout)
    let server = ProxyServer(configuration: try ProxyConfiguration(routes: [route]))
    let bound = try await server.start()
    do {
        let result = try await body(bound[0].address, server)
        await server.shutdown(drainTimeout: .seconds(2))
        return result
    } catch {
        await server.shutdown(drainTimeout: .zero)
        throw error
    }
}

extension TestClient {
    /// Connects, sends `request`, half-closes, and returns everything the other side sent before it ended.
    static func exchange(_ endpoint: Endpoint, _ request: String) async throws -> (reply: String, ending: Ending) {
        let (bytes, ending) = try await exchange(ByteBuffer(string: request), at: endpoint)
        return (String(buffer: bytes), ending)
    }

    /// Connects, sends `request` if any, half-closes, and returns what the other side sent and how it ended; a
    /// reset so fast that the connect itself saw it counts as a reset. A failed write (the server reset first)
    /// is not an error: the ending says what happened.
    static func exchange(_ request: ByteBuffer?, at address: Endpoint) async throws -> (ByteBuffer, Ending) {
        guard let connection = try await connectUnlessReset(to: address) else { return (ByteBuffer(), .reset) }
        return try await connection.executeThenClose { inbound, outbound in
            if let request { try? await outbound.write(request) }
            outbound.finish()
            return await readAll(inbound)
        }
    }
}
