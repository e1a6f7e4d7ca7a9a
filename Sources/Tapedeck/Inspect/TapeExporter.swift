import Foundation

/// Exports sessions for other tools: pcapng for Wireshark and tshark, JSON lines for scripts.
public enum TapeExporter {
    /// The export formats.
    public enum Format: String, Sendable, CaseIterable {
        /// One TCP stream per session, with synthesized IP and TCP headers; one UDP packet per datagram of a UDP
        /// flow.
        case pcapng
        /// One JSON object per event, payloads in base64.
        case jsonl
        /// The whole tape as reviewable text (``TapeTextWriter``), which `tapedeck import` reads back.
        case text
    }

    /// Writes `sessions` (all when empty) of `tape` to `output` in `format`, streaming.
    ///
    /// - Parameter decode: JSON lines only: each data event also carries the protocol messages it completes,
    ///   read through its session's lens (see ``SessionDecoder``).
    public static func export(
        _ tape: Tape,
        sessions: [Int64],
        format: Format,
        decode: Bool = false,
        to output: OutputBuffer
    ) throws {
        var ids = sessions
        if ids.isEmpty {
            try tape.forEachSession(matching: SessionQuery()) { ids.append($0.id) }
        }
        switch format {
        case .text:
            guard sessions.isEmpty else {
                throw TapedeckError(.invalidArgument, "the text form holds the whole tape: export it without --session")
            }
            try TapeTextWriter.write(tape, to: output)
        case .jsonl:
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            for id in ids {
                var decoder = decode ? try SessionDecoder(tape: tape, sessionID: id) : nil
                try tape.forEachEvent(inSession: id) { event in
                    var line = EventLine(event)
                    if let messages = decoder?.messages(of: event), !messages.isEmpty { line.decoded = messages }
                    output.write(bytes: try encoder.encode(line))
                    output.write("\n")
                }
            }
        case .pcapng:
            let writer = PcapngWriter(output: output)
            for id in ids {
                var summary: SessionSummary?
                try tape.forEachSession(matching: SessionQuery(id: id)) { summary = $0 }
                guard let summary else {
                    throw TapedeckError(.invalidArgument, "tape '\(tape.path)' has no session \(id)")
                }
                try exportSession(summary, from: tape, to: writer)
            }
        }
        output.flush()
    }

    private static func exportSession(_ session: SessionSummary, from tape: Tape, to writer: PcapngWriter) throws {
        if session.client.hasPrefix(Endpoint.udpPrefix) { return try exportFlow(session, from: tape, to: writer) }
        var now = session.startedAt
        var synthesizer = TCPSynthesizer(
            client: peer(session.client, fallback: [127, 0, 0, 1], port: UInt16(40_000 + session.id % 20_000)),
            server: peer(session.upstream, fallback: [127, 0, 0, 2], port: 9),
            sessionID: session.id
        ) { packet in writer.writePacket(packet, timestamp: now) }
        var handshakeDone = false
        try tape.forEachEvent(inSession: session.id) { event in
            // A tape may hold any start and offset: a packet time beyond 64 bits is pinned to the last one.
            let (time, overflow) = session.startedAt.addingReportingOverflow(event.offsetNanoseconds)
            now = overflow ? (event.offsetNanoseconds > 0 ? .max : .min) : time
            let side: TCPSynthesizer.Side = event.direction == .clientToUpstream ? .client : .server
            if event.kind == .connectFailed {
                synthesizer.refused()
                return
            }
            if !handshakeDone {
                handshakeDone = true
                synthesizer.handshake()
            }
            switch event.kind {
            case .data: synthesizer.data(from: side, event.payload ?? Data())
            case .halfClose, .close: synthesizer.finish(from: side)
            case .reset: synthesizer.abort(from: side)
            case .connectFailed, .refused, .fault: break
            }
        }
        if !handshakeDone {
            synthesizer.handshake()
        }
        switch session.outcome {
        case .closed: synthesizer.closeRemaining()
        case .interrupted: synthesizer.abort(from: .server)
        default: break
        }
    }

    /// A UDP flow: each datagram one UDP packet between the recorded client and upstream addresses, at its time.
    private static func exportFlow(_ session: SessionSummary, from tape: Tape, to writer: PcapngWriter) throws {
        var synthesizer = UDPSynthesizer(
            client: peer(session.client, fallback: [127, 0, 0, 1], port: UInt16(40_000 + session.id % 20_000)),
            server: peer(session.upstream, fallback: [127, 0, 0, 2], port: 9)
        ) { packet, timestamp in writer.writePacket(packet, timestamp: timestamp) }
        try tape.forEachEvent(inSession: session.id) { event in
            guard event.kind == .data else { return }
            let (time, overflow) = session.startedAt.addingReportingOverflow(event.offsetNanoseconds)
            let now = overflow ? (event.offsetNanoseconds > 0 ? .max : .min) : time
            synthesizer.datagram(
                from: event.direction == .clientToUpstream ? .client : .server,
                event.payload ?? Data(),
                at: now
            )
        }
    }

    /// The address and port of `text`, or a stand-in for a Unix socket or host name (pcapng has only IP).
    static func peer(_ text: String, fallback: [UInt8], port fallbackPort: UInt16) -> TCPSynthesizer.Peer {
        guard let endpoint = try? Endpoint(parsing: text), let host = endpoint.host, let port = endpoint.port else {
            return .init(address: fallback, port: fallbackPort)
        }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return .init(address: withUnsafeBytes(of: v4) { Array($0) }, port: UInt16(port))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return .init(address: withUnsafeBytes(of: v6) { Array($0) }, port: UInt16(port))
        }
        return .init(address: fallback, port: UInt16(port))
    }
}

/// One event as a JSON line; field names are stable.
public struct EventLine: Encodable {
    /// The session's id.
    public var session: Int64
    /// The event's number within the session, from 1.
    public var seq: Int64
    /// Nanoseconds since the session was accepted.
    public var offset_ns: Int64
    /// `client_to_upstream` or `upstream_to_client`.
    public var direction: String
    /// `data`, `half_close`, `close`, `reset` or `connect_failed`.
    public var kind: String
    /// Payload bytes.
    public var size: Int
    /// The payload, base64; absent for events without one.
    public var payload: String?
    /// The spans of the payload the tape's rules cover (see ``SpanMarker``); absent when not asked for.
    public var marks: [SpanMark]?
    /// The protocol messages the event completes, read through its session's lens; absent when not asked for
    /// (`--decode`) or when it completes none.
    public var decoded: [DecodedMessage]?

    /// The JSON form of `event`.
    public init(_ event: EventRecord) {
        session = event.sessionID
        seq = event.seq
        offset_ns = event.offsetNanoseconds
        direction = event.direction.rawValue
        kind = event.kind.rawValue
        size = event.payload?.count ?? 0
        payload = event.payload?.base64EncodedString()
    }
}
