import Foundation

/// Reads one recorded session through its protocol lens, event by event, for `--decode`: each data event gives
/// the messages it completes, in the order they were sent.
///
/// ```swift
/// if var decoder = try SessionDecoder(tape: tape, sessionID: id) {
///     try tape.forEachEvent(inSession: id) { event in
///         for message in decoder.messages(of: event) { print(message.summary) }
///     }
/// }
/// ```
public struct SessionDecoder: Sendable {
    /// The lens the session is read through.
    public let lens: ProtocolLens
    private var decoder: any MessageDecoder

    /// A decoder for a session known to speak `lens`; nil for a lens that has no decoder (`raw`, `auto`).
    public init?(lens: ProtocolLens) {
        guard let decoder = Self.makeDecoder(lens) else { return nil }
        self.lens = lens
        self.decoder = decoder
    }

    /// A decoder for session `sessionID` of `tape`, through the lens its route was recorded with or, unless one
    /// was named, the one its first bytes call for; nil when it has none.
    ///
    /// - Throws: ``TapedeckError`` if the tape cannot be read.
    public init?(tape: Tape, sessionID: Int64) throws {
        guard let route = try tape.routeName(ofSession: sessionID) else { return nil }
        let named = try tape.recordedTransport(ofRoute: route)?.lens ?? .auto
        var lens = named
        if named == .auto {
            guard let opening = try tape.sessionOpening(sessionID, length: LensRecognizer.openingLength),
                let recognized = LensRecognizer.recognize(client: opening.client, upstream: opening.upstream)
            else { return nil }
            lens = recognized
        }
        self.init(lens: lens)
    }

    /// The lens of each session of `tape` that has one: read once, before going through events (a tape cannot be
    /// read while it is being read).
    ///
    /// - Throws: ``TapedeckError`` if the tape cannot be read.
    public static func lenses(in tape: Tape) throws -> [Int64: ProtocolLens] {
        var lenses: [Int64: ProtocolLens] = [:]
        for route in Set(try tape.routes().map(\.name)) {
            let named = try tape.recordedTransport(ofRoute: route)?.lens ?? .auto
            for opening in try tape.identifiedSessionOpenings(ofRoute: route, length: LensRecognizer.openingLength) {
                let lens =
                    named == .auto
                    ? LensRecognizer.recognize(client: opening.client, upstream: opening.upstream) : named
                if let lens, lens != .raw { lenses[opening.id] = lens }
            }
        }
        return lenses
    }

    /// The messages an event completes; none for events that are not data.
    public mutating func messages(of event: EventRecord) -> [DecodedMessage] {
        guard event.kind == .data, let payload = event.payload, !payload.isEmpty else { return [] }
        return event.direction == .clientToUpstream ? decoder.client(payload) : decoder.upstream(payload)
    }

    private static func makeDecoder(_ lens: ProtocolLens) -> (any MessageDecoder)? {
        switch lens {
        case .mysql: return MySQLMessageDecoder()
        case .websocket: return WebSocketMessageDecoder()
        case .http2: return HTTP2MessageDecoder()
        case .auto, .raw: return nil
        }
    }
}

/// Reads both directions of one session into messages, fed each side's bytes in the order they were recorded:
/// what each protocol lens provides for `--decode`.
protocol MessageDecoder: Sendable {
    /// The client's next bytes: the messages they complete.
    mutating func client(_ bytes: Data) -> [DecodedMessage]
    /// The upstream's next bytes: the messages they complete.
    mutating func upstream(_ bytes: Data) -> [DecodedMessage]
}
