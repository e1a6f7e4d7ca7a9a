import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2

/// Serves one live HTTP/2 stream from the tape: feeds the request's frames to an ``HTTP2StreamMatcher`` and writes
/// the recorded response parts it says are due, as frame payloads that NIOHTTP2 encodes with the live connection's
/// HPACK state and stream id.
///
/// A request the tape never saw is answered at once, so that the client reports it rather than waits: a gRPC call
/// gets status UNIMPLEMENTED (12) with a message that names replay, any other request a reset stream
/// (INTERNAL_ERROR).
final class HTTP2StreamReplayHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// The gRPC status a mismatched call ends with: UNIMPLEMENTED, which clients report by name and never retry.
    static let mismatchStatus = "12"

    private var matcher: HTTP2StreamMatcher
    private let connection: NIOLoopBound<HTTP2ConnectionReplay>
    private var isGRPC = false
    private var wrote = false

    init(book: HTTP2ReplayBook, connection: NIOLoopBound<HTTP2ConnectionReplay>) {
        matcher = HTTP2StreamMatcher(book: book)
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            if case .awaitingHeaders = matcher.phase {
                isGRPC = headers.headers.first(name: "content-type")?.hasPrefix("application/grpc") ?? false
            }
            run(matcher.receiveHeaders(headers.headers, endStream: headers.endStream), context: context)
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else { return }
            run(matcher.receiveData(buffer.readableBytesView, endStream: data.endStream), context: context)
        default:
            // PRIORITY, WINDOW_UPDATE and RST_STREAM of the stream are NIOHTTP2's business.
            return
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if wrote {
            wrote = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        matcher.closed()
        if case .served = matcher.phase, let session = matcher.sessionID {
            connection.value.served(session: session)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A stream error (the client reset it, a protocol error) ends this stream only.
        context.close(promise: nil)
    }

    private func run(_ actions: [HTTP2StreamMatcher.Action], context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .send(let part):
                write(part, context: context)
            case .mismatch(let mismatch):
                connection.value.mismatched(mismatch)
                refuse(context: context)
            }
        }
        if case .served = matcher.phase, let session = matcher.sessionID {
            connection.value.served(session: session)
        }
    }

    private func write(_ part: HTTP2RecordedStream.ResponsePart, context: ChannelHandlerContext) {
        wrote = true
        switch part.content {
        case .headers(let headers):
            context.write(wrapOutboundOut(.headers(.init(headers: headers, endStream: part.endStream))), promise: nil)
        case .data(let bytes):
            let buffer = context.channel.allocator.buffer(bytes: bytes)
            context.write(
                wrapOutboundOut(.data(.init(data: .byteBuffer(buffer), endStream: part.endStream))),
                promise: nil
            )
        case .reset(let code):
            context.write(wrapOutboundOut(.rstStream(HTTP2ErrorCode(networkCode: Int(code)))), promise: nil)
        }
    }

    /// Answers a request the tape cannot serve, so that the client fails at once and says why.
    private func refuse(context: ChannelHandlerContext) {
        wrote = true
        guard isGRPC else {
            context.write(wrapOutboundOut(.rstStream(.internalError)), promise: nil)
            return
        }
        var trailers: HPACKHeaders = [
            "grpc-status": Self.mismatchStatus,
            "grpc-message": "tapedeck replay: no recorded call matches this one (see the replay's mismatches)",
        ]
        if !matcher.hasSentHead {
            trailers = [":status": "200", "content-type": "application/grpc"] + trailers
        }
        context.write(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
    }
}

extension HPACKHeaders {
    /// Both header lists, one after the other.
    fileprivate static func + (lhs: HPACKHeaders, rhs: HPACKHeaders) -> HPACKHeaders {
        var joined = lhs
        joined.add(contentsOf: rhs)
        return joined
    }
}
