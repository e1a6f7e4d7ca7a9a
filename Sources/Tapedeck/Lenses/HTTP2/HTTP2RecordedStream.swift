import Foundation
import NIOHPACK

/// One HTTP/2 stream of a recorded session, decoded: what the client asked and what the upstream answered, in the
/// order it answered, each part marked with how far the client's request had come when the upstream sent it.
///
/// Replay matches a live stream on the request and plays the response parts as the live request reaches the same
/// points, so a bidirectional or server-streaming call is answered in the recorded causal order.
struct HTTP2RecordedStream: Sendable {
    /// One part of the upstream's answer on the stream.
    struct ResponsePart: Sendable, Hashable {
        /// What the part is.
        enum Content: Sendable, Hashable {
            /// A header block: the response head, an informational (1xx) head, or trailers.
            case headers(HPACKHeaders)
            /// Body bytes (DATA frames joined).
            case data([UInt8])
            /// The upstream reset the stream with this error code.
            case reset(UInt32)
        }

        var content: Content
        /// The upstream ended the stream with this part (END_STREAM).
        var endStream: Bool
        /// How many request body bytes the client had sent on the stream when the upstream sent this part.
        var afterRequestBytes: Int
        /// Whether the client had ended its side of the stream by then.
        var afterRequestEnd: Bool
        /// When the upstream sent it, since the session started.
        var offsetNanoseconds: Int64

        /// Whether two parts say the same to a client, wherever in the request they came.
        func sameContent(as other: ResponsePart) -> Bool {
            content == other.content && endStream == other.endStream
        }
    }

    /// The recorded session.
    var sessionID: Int64
    /// The stream's id on the recorded connection.
    var streamID: UInt32
    /// Where the stream's first HEADERS frame starts in the recorded client's byte stream.
    var clientOffset: Int
    /// The request's header block, pseudo-headers first, as the client sent it.
    var requestHeaders: HPACKHeaders
    /// The request body: the stream's DATA frames joined, padding removed.
    var requestBody: [UInt8] = []
    /// Trailers the client sent after the body, if any.
    var requestTrailers: HPACKHeaders?
    /// The client ended its side (END_STREAM).
    var requestEnded = false
    /// The client reset the stream (a cancelled call, a deadline).
    var requestReset = false
    /// The upstream's answer, in order.
    var response: [ResponsePart] = []

    /// The upstream ended the stream (END_STREAM or a reset).
    var responseEnded: Bool {
        response.last.map { $0.endStream || { if case .reset = $0.content { return true } else { return false } }($0) }
            ?? false
    }

    /// The request's canonical key (see ``HTTP2RequestKey``).
    var key: HTTP2RequestKey { HTTP2RequestKey(requestHeaders) }
}
