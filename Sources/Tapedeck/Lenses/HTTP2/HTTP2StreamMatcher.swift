import Foundation
import NIOHPACK

/// Follows one live HTTP/2 stream through the recorded ones: matches its request on the header key, then on the
/// body as it comes, and says which recorded response parts are due.
///
/// A channel-free state machine, fed by ``HTTP2StreamReplayHandler``. The stream follows the earliest recorded
/// stream with the same key whose body begins with what the live client sent so far; when the live body leaves
/// it, another that agrees with every byte (and whose parts already sent were the same) takes over; when none is
/// left, the stream mismatched. A response part is due once the live request has reached the point at which the
/// upstream sent it: as many body bytes, and the end of the request if the recorded one had ended.
struct HTTP2StreamMatcher {
    /// What the handler must do next.
    enum Action: Equatable {
        /// Send this recorded part.
        case send(HTTP2RecordedStream.ResponsePart)
        /// The live request left the tape: answer with an error and report it.
        case mismatch(Mismatch)
    }

    /// Why a live stream left the tape, with what to show: the closest recorded request and the live one.
    struct Mismatch: Equatable, Sendable {
        var reason: String
        var closestSessionID: Int64?
        /// Where the live request first differed, in its body (0 for headers).
        var offset: Int
        var expected: Data
        var actual: Data
    }

    /// Where the stream is.
    enum Phase: Equatable {
        /// No request headers yet.
        case awaitingHeaders
        /// Following recorded stream `index` of the book.
        case following(Int)
        /// The whole recorded response went out: what the client still sends is not compared.
        case served(Int)
        /// The request matched nothing.
        case mismatched
        /// The stream closed before recorded stream `index` was served whole (the client cancelled): no mismatch,
        /// and the recorded stream stays unserved.
        case abandoned(Int)
    }

    private let book: HTTP2ReplayBook
    private(set) var phase = Phase.awaitingHeaders
    private var key: HTTP2RequestKey?
    private var candidates: [Int] = []
    private var body: [UInt8] = []
    private var ended = false
    /// Parts of the followed response sent so far.
    private var sent = 0

    init(book: HTTP2ReplayBook) {
        self.book = book
    }

    /// The excerpt length of a mismatch's body bytes.
    static let excerptLength = 48

    /// The session of the recorded stream followed or served, if any.
    var sessionID: Int64? {
        switch phase {
        case .following(let index), .served(let index), .abandoned(let index): return book.streams[index].sessionID
        case .awaitingHeaders, .mismatched: return nil
        }
    }

    /// Whether a recorded response head went out (an error must then come as trailers, not as a head).
    private(set) var hasSentHead = false

    /// The request's header block arrived (the first one; later ones are trailers).
    mutating func receiveHeaders(_ headers: HPACKHeaders, endStream: Bool) -> [Action] {
        guard case .awaitingHeaders = phase else {
            // Trailers: they end the request; their content is not compared.
            return endStream ? receiveEnd() : []
        }
        let key = HTTP2RequestKey(headers)
        self.key = key
        candidates = book.candidates(for: key)
        ended = endStream
        guard !candidates.isEmpty else {
            phase = .mismatched
            let closest = book.closest(to: key)
            return [
                .mismatch(
                    Mismatch(
                        reason: "an HTTP/2 request the tape never saw: \(key.line)",
                        closestSessionID: closest.map { book.streams[$0].sessionID },
                        offset: 0,
                        expected: Data((closest.map { book.streams[$0].key.description } ?? "").utf8),
                        actual: Data(key.description.utf8)
                    )
                )
            ]
        }
        return advance()
    }

    /// Body bytes arrived.
    mutating func receiveData(_ bytes: some Collection<UInt8>, endStream: Bool) -> [Action] {
        guard case .following = phase else { return [] }
        body.append(contentsOf: bytes)
        if endStream { ended = true }
        return advance()
    }

    /// The client ended its side without more bytes (an empty DATA frame or trailers with END_STREAM).
    mutating func receiveEnd() -> [Action] {
        guard case .following = phase else { return [] }
        ended = true
        return advance()
    }

    /// The stream closed (the client reset it, or the connection went). Gives the claim back, or counts the
    /// recorded stream as served when it was served whole, or when the recorded client reset it too.
    mutating func closed() {
        guard case .following(let index) = phase else { return }
        if book.streams[index].requestReset, sent == book.streams[index].response.count {
            book.finish(index)
            phase = .served(index)
        } else {
            book.release(index)
            phase = .abandoned(index)
        }
    }

    /// Follows a candidate that agrees with the request so far, and returns the parts now due.
    private mutating func advance() -> [Action] {
        let current: Int?
        if case .following(let index) = phase { current = index } else { current = nil }
        let body = self.body
        let ended = self.ended
        let sentParts = current.map { Array(book.streams[$0].response.prefix(sent)) } ?? []
        let accepts = { (recorded: HTTP2RecordedStream) -> Bool in
            recorded.requestBody.starts(with: body)
                && (!ended || (recorded.requestEnded && recorded.requestBody.count == body.count))
                && recorded.response.count >= sentParts.count
                && zip(recorded.response, sentParts).allSatisfy { $0.sameContent(as: $1) }
        }
        guard let chosen = book.choose(among: candidates, current: current, where: accepts) else {
            phase = .mismatched
            if let again = candidates.first(where: { accepts(book.streams[$0]) }) {
                // The tape has it, but every recording of it was served already.
                let recorded = book.streams[again]
                return [
                    .mismatch(
                        Mismatch(
                            reason: "an HTTP/2 request made more often than recorded (replay with --repeat to "
                                + "serve recorded ones again): \(key?.line ?? "?")",
                            closestSessionID: recorded.sessionID,
                            offset: 0,
                            expected: Data(recorded.requestBody.prefix(Self.excerptLength)),
                            actual: Data(body.prefix(Self.excerptLength))
                        )
                    )
                ]
            }
            return [.mismatch(divergence(from: current ?? candidates[0]))]
        }
        phase = .following(chosen)
        let recorded = book.streams[chosen]
        var actions: [Action] = []
        while sent < recorded.response.count {
            let part = recorded.response[sent]
            guard part.afterRequestBytes <= body.count, !part.afterRequestEnd || ended else { break }
            actions.append(.send(part))
            sent += 1
            if case .headers = part.content { hasSentHead = true }
        }
        if sent == recorded.response.count, recorded.responseEnded {
            book.finish(chosen)
            phase = .served(chosen)
        }
        return actions
    }

    /// How the live request left recorded stream `index`, the one it followed (or the first candidate).
    private func divergence(from index: Int) -> Mismatch {
        let recorded = book.streams[index]
        let same = zip(recorded.requestBody, body).prefix { $0 == $1 }.count
        let context = min(same, 16)
        let reason: String
        if same < min(recorded.requestBody.count, body.count) || body.count > recorded.requestBody.count {
            reason = "an HTTP/2 request body no recorded one began with: \(key?.line ?? "?")"
        } else if ended {
            reason = "an HTTP/2 request body that ended before every recorded one: \(key?.line ?? "?")"
        } else {
            reason = "an HTTP/2 request answered differently when recorded: \(key?.line ?? "?")"
        }
        return Mismatch(
            reason: reason,
            closestSessionID: recorded.sessionID,
            offset: same,
            expected: Data(recorded.requestBody.dropFirst(same - context).prefix(context + Self.excerptLength)),
            actual: Data(body.dropFirst(same - context).prefix(context + Self.excerptLength))
        )
    }
}
