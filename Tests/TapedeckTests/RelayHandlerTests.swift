import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import Tapedeck

/// The relay handler on embedded channels: no sockets, every event under the test's control.
struct RelayHandlerTests {
    /// Counts `read()` calls that reach the head of the pipeline, which is what asks the socket for bytes.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    /// Records close requests and swallows them: `EmbeddedChannel` has no half-closed state of its own.
    final class CloseRecorder: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var modes: [CloseMode] = []
        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            modes.append(mode)
            promise?.succeed()
        }
    }

    struct Pair {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let upstream: EmbeddedChannel
        let clientReads = ReadCounter()
        let upstreamCloses = CloseRecorder()

        init(recorder: SessionRecorder? = nil) throws {
            let (clientRelay, upstreamRelay) = RelayHandler.matchedPair(lingerTimeout: .seconds(1), recorder: recorder)
            client = EmbeddedChannel(loop: loop)
            upstream = EmbeddedChannel(loop: loop)
            try client.pipeline.syncOperations.addHandlers(clientReads, clientRelay)
            try upstream.pipeline.syncOperations.addHandlers(upstreamCloses, upstreamRelay)
            client.connect(to: try .init(ipAddress: "127.0.0.1", port: 1), promise: nil)
            upstream.connect(to: try .init(ipAddress: "127.0.0.1", port: 2), promise: nil)
        }
    }

    @Test func bytesReadOnOneSideAreWrittenOnTheOtherInOrder() throws {
        let pair = try Pair()
        try pair.client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        try pair.client.writeInbound(ByteBuffer(string: "\r\n"))
        pair.client.pipeline.fireChannelReadComplete()
        #expect(try pair.upstream.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        #expect(try pair.upstream.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "\r\n"))
        try pair.upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\n"))
        pair.upstream.pipeline.fireChannelReadComplete()
        #expect(try pair.client.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "HTTP/1.1 200 OK\r\n"))
    }

    @Test func readsPauseWhileThePartnerIsNotWritableAndResumeAfter() throws {
        let pair = try Pair()
        pair.client.read()
        #expect(pair.clientReads.reads == 1)

        pair.upstream.isWritable = false
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        pair.client.read()
        #expect(pair.clientReads.reads == 1, "a read must wait while the upstream cannot take more")

        pair.upstream.isWritable = true
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        #expect(pair.clientReads.reads == 2, "the held read is issued once the upstream drains")
    }

    @Test func aReadResumedBecauseThePartnerDrainedStillWaitsForTheTape() async throws {
        let directory = try TemporaryDirectory()
        let route = Route(upstream: .tcp(host: "127.0.0.1", port: 9))
        let recorder = try Recorder(
            tape: try Tape(recordingAt: directory.path("budget.tape")),
            routes: [route],
            maximumPendingBytes: 1024
        )
        let session = recorder.beginSession(route: route, clientAddress: "127.0.0.1:1")
        let pair = try Pair(recorder: session)
        pair.upstream.isWritable = false
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        pair.client.read()
        #expect(pair.clientReads.reads == 0, "held: the upstream cannot take more")

        session.budget.reserve(4096)
        pair.upstream.isWritable = true
        pair.upstream.pipeline.fireChannelWritabilityChanged()
        #expect(pair.clientReads.reads == 0, "the upstream drained, but the tape is still over its budget")

        session.budget.release(4096)
        pair.loop.run()
        #expect(pair.clientReads.reads == 1, "the held read goes once the tape has room too")
        try await recorder.finish()
    }

    @Test func endOfInputBecomesAWriteShutdownAfterQueuedBytes() throws {
        let pair = try Pair()
        try pair.client.writeInbound(ByteBuffer(string: "last words"))
        pair.client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        pair.loop.run()
        #expect(try pair.upstream.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "last words"))
        #expect(pair.upstreamCloses.modes == [.output], "a half-close must shut only the output")
        #expect(pair.client.isActive)
    }

    @Test func aResetOnOneSideClosesTheOther() throws {
        let pair = try Pair()
        pair.client.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read"))
        pair.loop.run()
        #expect(!pair.client.isActive)
        #expect(pair.upstreamCloses.modes == [.all], "the partner is closed (with SO_LINGER 0 on a real socket)")
    }
}

/// The recording budget holds reads while the tape writer is behind, and releases them when it catches up.
struct RecordingBackpressureTests {
    @Test func readsWaitWhileTheTapeWriterIsBehind() async throws {
        let directory = try TemporaryDirectory()
        let route = Route(upstream: .tcp(host: "127.0.0.1", port: 9))
        let recorder = try Recorder(
            tape: try Tape(recordingAt: directory.path("budget.tape")),
            routes: [route],
            maximumPendingBytes: 1 << 20
        )
        let session = recorder.beginSession(route: route, clientAddress: "127.0.0.1:1")
        let loop = EmbeddedEventLoop()
        let (clientRelay, upstreamRelay) = RelayHandler.matchedPair(lingerTimeout: .seconds(1), recorder: session)
        let reads = RelayHandlerTests.ReadCounter()
        let client = EmbeddedChannel(loop: loop)
        let upstream = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandlers(reads, clientRelay)
        try upstream.pipeline.syncOperations.addHandler(upstreamRelay)
        client.connect(to: try .init(ipAddress: "127.0.0.1", port: 1), promise: nil)
        upstream.connect(to: try .init(ipAddress: "127.0.0.1", port: 2), promise: nil)

        // The writer is behind: more than the budget is waiting for the disk.
        session.budget.reserve(2 << 20)
        client.read()
        #expect(reads.reads == 0, "no read while the tape is behind")

        // The writer catches up below the low mark: the held read goes out.
        session.budget.release(2 << 20)
        loop.run()
        #expect(reads.reads == 1)
        try await recorder.finish()
    }
}
