import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

@testable import Tapedeck

/// In-process upstream servers for relay tests, each a small channel handler on a NIO server bound to port 0.
enum TestServer {
    /// What an upstream does with a connection.
    enum Behavior: Sendable {
        /// Echoes every byte; echoes a half-close by shutting its own output once everything is echoed.
        case echo
        /// Reads and counts everything; on end of input, replies with the byte count as text and closes.
        case countThenReply
        /// Writes `bytes` as soon as a client connects, then shuts its output and keeps reading, counting;
        /// on end of input closes.
        case speakFirst(ByteBuffer)
        /// Writes `greeting` on connect, then echoes like `.echo`.
        case greetThenEcho(ByteBuffer)
        /// Resets the connection (RST) as soon as any byte arrives.
        case resetOnData
        /// Reads `chunk` bytes at most every `interval`, replying nothing.
        case slowReader(interval: TimeAmount)
    }

    /// A running upstream; records what each connection saw.
    final class Running: Sendable {
        let channel: any Channel
        let log: ConnectionLog

        init(channel: any Channel, log: ConnectionLog) {
            self.channel = channel
            self.log = log
        }

        var endpoint: Endpoint { Endpoint(channel.localAddress!) }

        func stop() async {
            try? await channel.close()
        }
    }

    /// Events the server saw, for assertions.
    final class ConnectionLog: Sendable {
        private let box = NIOLockedValueBox<[String]>([])
        private let received = NIOLockedValueBox<Int>(0)

        func note(_ event: String) { box.withLockedValue { $0.append(event) } }
        func count(_ bytes: Int) { received.withLockedValue { $0 += bytes } }
        var events: [String] { box.withLockedValue { $0 } }
        var bytesReceived: Int { received.withLockedValue { $0 } }

        /// Waits until `predicate` holds for the events, for at most `timeout`.
        func waitFor(
            timeout: Duration = .seconds(10),
            _ predicate: @Sendable ([String]) -> Bool
        ) async -> Bool {
            let deadline = ContinuousClock.now.advanced(by: timeout)
            while ContinuousClock.now < deadline {
                if predicate(events) { return true }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return predicate(events)
        }
    }

    static func start(
        _ behavior: Behavior,
        at listen: Endpoint = .tcp(host: "127.0.0.1", port: 0)
    ) async throws -> Running {
        let log = ConnectionLog()
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // Room for a burst of hundreds of connects, as real servers have (redis and nginx ask for 511): with
            // NIO's default of 128 the kernel falls back to SYN cookies and drops, and a test of the relay
            // would be testing the kernel's overflow handling instead.
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(BehaviorHandler(behavior, log: log))
                }
            }
        let channel: any Channel
        switch listen {
        case .tcp(let host, let port):
            channel = try await bootstrap.bind(host: host, port: port).get()
        case .unix(let path):
            channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        case .udp:
            throw TestProcessError("a stream server cannot listen on \(listen)")
        }
        return Running(channel: channel, log: log)
    }

    /// A listener that never accepts, with a backlog of one: once its queue is full, connects to it hang.
    static func startBlackHole() async throws -> (listener: any Channel, fillers: [any Channel]) {
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.backlog, value: 1)
            .serverChannelOption(ChannelOptions.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        var fillers: [any Channel] = []
        // The accept queue holds backlog + 1 connections; later SYNs are dropped, so those connects hang.
        for _ in 0..<2 {
            if let filler = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(500))
                .connect(to: listener.localAddress!).get()
            {
                fillers.append(filler)
            }
        }
        return (listener, fillers)
    }
}

private final class BehaviorHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let behavior: TestServer.Behavior
    private let log: TestServer.ConnectionLog
    private var count = 0
    private var slowTimer: RepeatedTask?

    init(_ behavior: TestServer.Behavior, log: TestServer.ConnectionLog) {
        self.behavior = behavior
        self.log = log
    }

    func channelActive(context: ChannelHandlerContext) {
        log.note("open")
        switch behavior {
        case .speakFirst(let bytes):
            let done = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(bytes), promise: done)
            done.futureResult.assumeIsolated().whenSuccess {
                self.log.note("sent")
                context.close(mode: .output, promise: nil)
            }
        case .greetThenEcho(let greeting):
            context.writeAndFlush(wrapOutboundOut(greeting), promise: nil)
        case .slowReader(let interval):
            // One 64 KiB read per tick: about 64 MB/s at a 1 ms tick, far below what a sender can push.
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
            try? context.channel.syncOptions?.setOption(ChannelOptions.maxMessagesPerRead, value: 1)
            try? context.channel.syncOptions?.setOption(
                ChannelOptions.recvAllocator,
                value: FixedSizeRecvByteBufferAllocator(capacity: 65536)
            )
            let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            slowTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                loopBoundContext.value.read()
            }
        default:
            break
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        count += buffer.readableBytes
        log.count(buffer.readableBytes)
        switch behavior {
        case .echo, .greetThenEcho:
            context.write(wrapOutboundOut(buffer), promise: nil)
        case .resetOnData:
            log.note("reset")
            RelayHandler.armReset(context.channel)
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed else { return }
        log.note("eof:\(count)")
        switch behavior {
        case .echo, .greetThenEcho:
            let flushed = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: flushed)
            flushed.futureResult.assumeIsolated().whenSuccess { context.close(mode: .output, promise: nil) }
        case .countThenReply:
            let reply = ByteBuffer(string: "received \(count)")
            context.writeAndFlush(wrapOutboundOut(reply)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError {
            log.note(RelayHandler.isReset(errno: error.errnoCode) ? "peer-reset" : "error:\(error.errnoCode)")
        } else {
            log.note("error:\(error)")
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        slowTimer?.cancel()
        log.note("closed")
        context.fireChannelInactive()
    }
}
