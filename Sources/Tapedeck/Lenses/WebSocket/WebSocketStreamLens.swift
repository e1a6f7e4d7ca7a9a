import Foundation

/// The WebSocket lens: a client's connection as replay compares and answers it, whatever fresh values the client
/// put in (RFC 6455).
///
/// - The opening handshake is compared with its random `Sec-WebSocket-Key` replaced by a fixed token
///   (``WebSocketUpgradeRequest``), and the recorded `Sec-WebSocket-Accept` is rewritten to answer the live key
///   (``WebSocketAcceptRewriter``).
/// - Client frames are compared unmasked, message by message, however they were fragmented; pings leave the match
///   and replay answers them with a pong; pongs leave it too; a close is compared on its code and reason
///   (``WebSocketClientStream``).
/// - The upstream's frames go out as recorded.
///
/// A connection whose first request is not a WebSocket upgrade (plain HTTP on the same route) passes verbatim from
/// its first byte to its last, exactly as without the lens.
///
/// ```swift
/// var lens = WebSocketStreamLens()
/// let output = lens.feed(clientBytes)
/// matcher.receive(output.canonical)
/// let forTheClient = lens.rewriteUpstream(recordedUpstreamBytes)
/// ```
struct WebSocketStreamLens: StreamLens {
    /// Where the client's side of the connection is.
    private enum Phase: Sendable, Hashable {
        /// Waiting for the end of the first request head.
        case head
        /// After an upgrade request: frames.
        case frames
        /// Not a WebSocket connection, or the head never ended: every byte passes.
        case passingThrough
    }

    private var phase = Phase.head
    /// The first request head so far.
    private var head: [UInt8] = []
    private var frames: WebSocketClientStream
    private var upstream = WebSocketAcceptRewriter()

    /// A lens for one client connection.
    ///
    /// - Parameter maximumMessage: The longest message followed; a longer one (or a frame announcing one) makes
    ///   the rest of the connection pass verbatim.
    init(maximumMessage: Int = 16 * 1024 * 1024) {
        frames = WebSocketClientStream(maximumMessage: maximumMessage)
    }

    /// A request head not ended yet, a frame not whole yet, or the frames of a message whose last has not come.
    var isHolding: Bool {
        switch phase {
        case .head: !head.isEmpty
        case .frames: frames.isHolding
        case .passingThrough: false
        }
    }

    /// Nothing of the client's is held, replaced or answered any more, and the recorded accept value (if there was
    /// one to rewrite) is behind.
    var isPassingThrough: Bool {
        let clientPasses = phase == .passingThrough || (phase == .frames && frames.hasGivenUp)
        return clientPasses && (upstream.accept == nil || upstream.isDone)
    }

    /// The client's next bytes: the first request head is held until it ends (unless its first bytes cannot begin a
    /// GET), then compared without its key if it is an upgrade; after it, frames (see ``WebSocketClientStream``).
    mutating func feed(_ chunk: Data) -> LensOutput {
        switch phase {
        case .passingThrough:
            return .verbatim(chunk)
        case .frames:
            return frames.feed(chunk)
        case .head:
            let searchFrom = max(0, head.count - 3)
            head += chunk
            guard WebSocketUpgradeRequest.mayBeginHandshake(head) else { return passThrough() }
            guard let end = WebSocketUpgradeRequest.headLength(in: head, searchFrom: searchFrom) else {
                return head.count > WebSocketUpgradeRequest.maximumHeadLength ? passThrough() : LensOutput()
            }
            guard end <= WebSocketUpgradeRequest.maximumHeadLength,
                let request = WebSocketUpgradeRequest(head: head[..<end])
            else { return passThrough() }
            phase = .frames
            upstream.accept = request.accept
            var output = LensOutput(pieces: [.replaced(rawCount: end, canonical: Data(request.canonical))])
            let rest = frames.feed(head[end...])
            head = []
            output.pieces += rest.pieces
            output.replies += rest.replies
            return output
        }
    }

    /// The client ended: a head cut short passes as it is, and so does a frame or message cut short.
    mutating func flush() -> LensOutput {
        switch phase {
        case .head: passThrough()
        case .frames: frames.flush()
        case .passingThrough: LensOutput()
        }
    }

    /// The recorded upstream bytes with the response head's `Sec-WebSocket-Accept` answering the live key; the
    /// upstream's frames as recorded.
    /// Until the recorded handshake response's accept value has been replaced by the live one.
    var isRewritingUpstream: Bool { upstream.accept != nil && !upstream.isDone }

    mutating func rewriteUpstream(_ bytes: Data) -> Data {
        // No live key, no accept value to put in: plain HTTP, or a handshake not complete yet.
        guard upstream.accept != nil else { return bytes }
        return upstream.rewrite(bytes)
    }

    /// Not a handshake (or one too long to follow): what is held passes, and so does everything after it.
    private mutating func passThrough() -> LensOutput {
        phase = .passingThrough
        defer { head = [] }
        return .verbatim(Data(head))
    }
}
