import Foundation

/// A piece of a client's stream as a lens hands it to the matcher: bytes kept as they are, or a message replaced
/// by its canonical form (fresh values removed or normalized).
enum LensPiece: Sendable, Hashable {
    /// Client bytes compared as sent.
    case verbatim(Data)
    /// `rawCount` bytes of the client's stream, compared on `canonical` instead.
    case replaced(rawCount: Int, canonical: Data)
}

/// What a lens makes of the client bytes it was fed: the pieces the matcher compares, and what replay answers
/// the client itself (a WebSocket pong) rather than from the tape.
struct LensOutput: Sendable, Hashable {
    var pieces: [LensPiece] = []
    var replies: [Data] = []

    /// The bytes the matcher compares: the pieces joined.
    var canonical: Data {
        if pieces.count == 1, case .verbatim(let bytes) = pieces[0] { return bytes }
        var joined = Data()
        for piece in pieces {
            switch piece {
            case .verbatim(let bytes): joined.append(bytes)
            case .replaced(_, let canonical): joined.append(canonical)
            }
        }
        return joined
    }

    static func verbatim(_ bytes: Data) -> LensOutput {
        LensOutput(pieces: bytes.isEmpty ? [] : [.verbatim(bytes)])
    }
}

/// A protocol lens over one client connection's byte stream, for replay: a channel-free state machine that turns
/// what the client sends into the canonical stream the matcher compares, and the recorded upstream bytes into
/// what this live client must get.
///
/// A recorded client stream goes through a fresh lens of the same kind (``canonicalize(_:)``), so a live client
/// and a recorded one that differ only in fresh values give the same canonical bytes. Whatever a lens does not
/// recognize it passes on verbatim: a lens never makes a stream mismatch that would have matched without it.
protocol StreamLens: Sendable {
    /// The client's next bytes, as they arrive: the pieces that are final. Bytes of a message not yet complete
    /// are held (``isHolding``) until it is.
    mutating func feed(_ chunk: Data) -> LensOutput

    /// Bytes are held, waiting for the rest of a message.
    var isHolding: Bool { get }

    /// The client went quiet or ended: release what is held, as it is.
    mutating func flush() -> LensOutput

    /// Recorded upstream bytes about to be sent to the live client: rewritten for it where the recorded ones
    /// answered the recorded client's fresh values (a WebSocket accept key).
    mutating func rewriteUpstream(_ bytes: Data) -> Data

    /// ``rewriteUpstream(_:)`` may still change what it is given: replay hands recorded sends to it only then, and
    /// otherwise writes them as they are, without a copy.
    var isRewritingUpstream: Bool { get }

    /// Nothing more will be held, replaced or rewritten: the rest of the stream passes verbatim, and replay can
    /// stop feeding the lens.
    var isPassingThrough: Bool { get }
}

extension StreamLens {
    func rewriteUpstream(_ bytes: Data) -> Data { bytes }

    var isRewritingUpstream: Bool { false }

    /// A whole recorded client stream through this lens: the canonical bytes, with where each replaced message
    /// was in the raw stream and where its canonical form is, so that positions in the raw stream (the points at
    /// which the upstream answered) move to where they land in the canonical one.
    func canonicalize(_ raw: Data) -> StreamNormalizer.Whole {
        var lens = self
        var output = lens.feed(raw)
        let rest = lens.flush()
        output.pieces += rest.pieces
        guard output.pieces.contains(where: { if case .replaced = $0 { return true } else { return false } }) else {
            return StreamNormalizer.Whole(bytes: raw, replacements: [])
        }
        var bytes = Data()
        bytes.reserveCapacity(raw.count)
        var replacements: [StreamNormalizer.Replacement] = []
        var rawPosition = 0
        for piece in output.pieces {
            switch piece {
            case .verbatim(let verbatim):
                bytes.append(verbatim)
                rawPosition += verbatim.count
            case .replaced(let rawCount, let canonical):
                let start = bytes.count
                bytes.append(canonical)
                replacements.append(
                    StreamNormalizer.Replacement(
                        raw: rawPosition..<(rawPosition + rawCount),
                        normalized: start..<bytes.count,
                        meaning: .lens
                    )
                )
                rawPosition += rawCount
            }
        }
        return StreamNormalizer.Whole(bytes: bytes, replacements: replacements)
    }
}
