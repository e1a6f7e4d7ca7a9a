import Foundation

/// Reads the text form of a tape (``TapeTextWriter``) back into content records, streaming: a session's events are
/// handed on one by one, so a text tape of any size is read in bounded memory.
///
/// The text may have been edited by hand: every line is checked, and the first that does not read is one error
/// naming the file, the line and what was expected.
public struct TapeTextReader {
    private let name: String
    private var lineNumber = 0
    private var block: Block = .none
    /// The session whose events are being read, with its times and how many of its events have been read.
    private var session: (id: Int64, times: [Int64], events: Int)?
    private var event: PendingEvent?

    private enum Block {
        case none
        case run(RunRecord)
        case route(RouteRecord)
        case rule(RuleRow)
        case session(SessionRecord, tls: SessionTLSRecord?, fieldsDone: Bool)
    }

    private struct PendingEvent {
        var record: EventRecord
        var size: Int?
        var redactions: [RedactionRecord] = []
        var line: Int
    }

    private init(name: String) {
        self.name = name
    }

    /// Reads the text tape at `path` (`-` for standard input) and calls `body` with each record, in order.
    ///
    /// - Throws: ``TapedeckError`` naming the file and line of the first line that does not read; what `body`
    ///   throws.
    public static func read(fileAt path: String, _ body: (TapeContentRecord) throws -> Void) throws {
        let handle: FileHandle
        if path == "-" {
            handle = .standardInput
        } else {
            guard let opened = FileHandle(forReadingAtPath: path) else {
                throw TapedeckError(.invalidArgument, "cannot read '\(path)': no such file or not readable")
            }
            handle = opened
        }
        defer { if path != "-" { try? handle.close() } }
        var reader = TapeTextReader(name: path == "-" ? "standard input" : path)
        var sawHeader = false
        // The part of a line that a chunk ended in, until the next chunk ends it.
        var carry: [UInt8] = []
        while true {
            let chunk = try handle.read(upToCount: 1 << 16) ?? Data()
            if chunk.isEmpty { break }
            try chunk.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
                var start = 0
                while let newline = bytes[start...].firstIndex(of: 0x0A) {
                    let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<newline])
                    // Hex lines are nearly all of a binary payload's text: read from the bytes, no String made.
                    if carry.isEmpty, sawHeader, reader.takeHexLine(piece) {
                        start = newline + 1
                        continue
                    }
                    let line: String
                    if carry.isEmpty {
                        line = String(decoding: piece, as: UTF8.self)
                    } else {
                        carry.append(contentsOf: piece)
                        line = String(decoding: carry, as: UTF8.self)
                        carry.removeAll(keepingCapacity: true)
                    }
                    try reader.take(line, sawHeader: &sawHeader, body)
                    start = newline + 1
                }
                carry.append(contentsOf: bytes[start...])
            }
        }
        if !carry.isEmpty { try reader.take(String(decoding: carry, as: UTF8.self), sawHeader: &sawHeader, body) }
        guard sawHeader else {
            throw reader.error("not a text tape: it does not begin with '\(TapeTextWriter.header)'")
        }
        try reader.endBlock(body)
    }

    private mutating func take(
        _ rawLine: String,
        sawHeader: inout Bool,
        _ body: (TapeContentRecord) throws -> Void
    ) throws {
        lineNumber += 1
        let line = rawLine.hasSuffix("\r") ? String(rawLine.dropLast()) : rawLine
        if line.utf8.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) || line.utf8.first == UInt8(ascii: "#") { return }
        guard sawHeader else {
            guard line == TapeTextWriter.header else {
                throw error("not a text tape: it does not begin with '\(TapeTextWriter.header)'")
            }
            sawHeader = true
            return
        }
        if line.hasPrefix("    ") {
            try payloadLine(line.dropFirst(4))
        } else if line.hasPrefix("  ") {
            try field(line.dropFirst(2), body)
        } else {
            try endBlock(body)
            try startBlock(line)
        }
    }

    // MARK: Blocks

    private mutating func startBlock(_ line: String) throws {
        let words = line.split(separator: " ")
        guard words.count == 2, let id = Int64(words[1]) else {
            throw error("expected 'run N', 'route N', 'rule N' or 'session N', found '\(line)'")
        }
        switch words[0] {
        case "run":
            block = .run(RunRecord(id: id, startedAt: 0, endedAt: nil, toolVersion: "", mode: "", label: nil))
        case "route":
            block = .route(RouteRecord(id: id, runID: 0, name: "", listen: "", upstream: ""))
        case "rule":
            block = .rule(
                RuleRow(
                    id: id,
                    runID: 0,
                    route: "",
                    position: 0,
                    kind: "",
                    pattern: "",
                    scope: "",
                    secret: nil,
                    preset: nil
                )
            )
        case "session":
            block = .session(
                SessionRecord(
                    id: id,
                    runID: 0,
                    routeID: 0,
                    route: "",
                    clientAddress: "",
                    upstreamAddress: "",
                    startedAt: 0,
                    endedAt: nil,
                    durationNanoseconds: nil,
                    outcome: .incomplete,
                    clientBytes: 0,
                    upstreamBytes: 0,
                    eventCount: 0
                ),
                tls: nil,
                fieldsDone: false
            )
            session = (id, [], 0)
        default:
            throw error("expected 'run N', 'route N', 'rule N' or 'session N', found '\(line)'")
        }
    }

    private mutating func endBlock(_ body: (TapeContentRecord) throws -> Void) throws {
        switch block {
        case .none: break
        case .run(let run): try body(.run(run))
        case .route(let route): try body(.route(route))
        case .rule(let rule): try body(.rule(rule))
        case .session(let record, let tls, let fieldsDone):
            if !fieldsDone { try body(.session(record, tls: tls)) }
            try flushEvent(body)
            if let session, session.events != session.times.count {
                throw error("session \(session.id) has \(session.events) events but \(session.times.count) times")
            }
        }
        block = .none
        session = nil
    }

    // MARK: Fields

    private mutating func field(_ text: Substring, _ body: (TapeContentRecord) throws -> Void) throws {
        let (name, value) = Self.split(text)
        switch block {
        case .none:
            throw error("'\(name)' is outside any run, route, rule or session")
        case .run(var run):
            switch name {
            case "mode": run.mode = try string(value)
            case "version": run.toolVersion = try string(value)
            case "started": run.startedAt = try time(value)
            case "ended": run.endedAt = try time(value)
            case "label": run.label = try string(value)
            default: throw unknown(name, "run")
            }
            block = .run(run)
        case .route(var route):
            switch name {
            case "run": route.runID = try integer(value)
            case "name": route.name = try string(value)
            case "listen": route.listen = try string(value)
            case "upstream": route.upstream = try string(value)
            case "protocol": route.protocolName = try string(value)
            case "dns": route.dns = true
            default: throw unknown(name, "route")
            }
            block = .route(route)
        case .rule(var rule):
            switch name {
            case "run": rule.runID = try integer(value)
            case "route": rule.route = try string(value)
            case "position": rule.position = try integer(value)
            case "kind": rule.kind = try string(value)
            case "scope": rule.scope = try string(value)
            case "pattern": rule.pattern = try string(value)
            case "secret": rule.secret = try string(value)
            case "preset": rule.preset = try string(value)
            default: throw unknown(name, "rule")
            }
            block = .rule(rule)
        case .session(var record, var tls, let fieldsDone):
            if name == "times" || name == "event" {
                if !fieldsDone { try body(.session(record, tls: tls)) }
                block = .session(record, tls: tls, fieldsDone: true)
                if name == "times" {
                    try times(value)
                } else {
                    try flushEvent(body)
                    try startEvent(value)
                }
                return
            }
            guard !fieldsDone else { throw error("'\(name)' comes after the session's events") }
            switch name {
            case "run": record.runID = try integer(value)
            case "route":
                let (id, rest) = Self.split(value)
                guard let routeID = Int64(id) else { throw error("expected 'route ID \"NAME\"'") }
                record.routeID = routeID
                record.route = try string(rest)
            case "client": record.clientAddress = try string(value)
            case "upstream": record.upstreamAddress = try string(value)
            case "started": record.startedAt = try time(value)
            case "ended": record.endedAt = try time(value)
            case "duration": record.durationNanoseconds = try integer(value)
            case "outcome":
                guard let outcome = SessionOutcome(rawValue: String(value)) else {
                    throw error("unknown outcome '\(value)'")
                }
                record.outcome = outcome
            case "bytes":
                let (client, upstream) = Self.split(value)
                record.clientBytes = try integer(Substring(client))
                record.upstreamBytes = try integer(upstream)
            case "events": record.eventCount = try integer(value)
            case "dropped": record.droppedDatagrams = try integer(value)
            case "tls":
                do {
                    var decoded = try JSONDecoder().decode(SessionTLSRecord.self, from: Data(value.utf8))
                    decoded.sessionID = record.id ?? 0
                    tls = decoded
                } catch {
                    throw self.error("the tls line is not a TLS record in JSON")
                }
            default: throw unknown(name, "session")
            }
            block = .session(record, tls: tls, fieldsDone: false)
        }
    }

    private mutating func times(_ value: Substring) throws {
        for word in value.split(separator: " ") {
            guard let offset = Int64(word) else { throw error("expected nanoseconds on a times line, found '\(word)'") }
            session?.times.append(offset)
        }
    }

    // MARK: Events

    private mutating func startEvent(_ value: Substring) throws {
        guard let session else { throw error("an event outside a session") }
        let words = value.split(separator: " ")
        guard (3...4).contains(words.count), let seq = Int64(words[0]) else {
            throw error("expected 'event SEQ client|upstream KIND [SIZE]'")
        }
        let direction: Direction
        switch words[1] {
        case "client": direction = .clientToUpstream
        case "upstream": direction = .upstreamToClient
        default: throw error("expected client or upstream, found '\(words[1])'")
        }
        guard let kind = EventKind(rawValue: String(words[2])) else { throw error("unknown event kind '\(words[2])'") }
        var size: Int?
        if words.count == 4 {
            guard let value = Int(words[3]), value >= 0 else { throw error("invalid size '\(words[3])'") }
            size = value
        }
        guard session.events < session.times.count else {
            throw error("event \(seq) has no time: the session's times lines list \(session.times.count)")
        }
        event = PendingEvent(
            record: EventRecord(
                sessionID: session.id,
                seq: seq,
                offsetNanoseconds: session.times[session.events],
                direction: direction,
                kind: kind,
                payload: size.map { _ in Data() }
            ),
            size: size,
            line: lineNumber
        )
        self.session?.events += 1
    }

    /// A well-formed `    : OFFSET  HEX` line that continues the pending event's payload, read straight from its
    /// bytes; false for any other line, which the general path then reads (and reports, when it does not read).
    private mutating func takeHexLine(_ line: UnsafeRawBufferPointer) -> Bool {
        guard line.count > 6, line[4] == UInt8(ascii: ":"), line[5] == 0x20, line[0...3].allSatisfy({ $0 == 0x20 }),
            line[line.count - 1] != 0x0D, event?.size != nil, event?.record.payload != nil
        else { return false }
        let appended = TapeTextSyntax.appendHexLine(
            UnsafeRawBufferPointer(rebasing: line[6...]),
            to: &event!.record.payload!
        )
        if appended { lineNumber += 1 }
        return appended
    }

    private mutating func payloadLine(_ text: Substring) throws {
        // The event is changed in place: a copy would share its payload, and every append would copy it whole.
        guard let sized = event.map({ $0.size != nil }) else { throw error("payload or redaction outside an event") }
        let held = event?.record.payload?.count ?? 0
        if text.hasPrefix("|") || text.hasPrefix(":"), !sized {
            throw error("payload lines under an event without a size")
        }
        if text.hasPrefix("| ") || text == "|" {
            guard let bytes = TapeTextSyntax.textLineBytes(text.dropFirst(2)) else {
                throw error("invalid escape in a text line (use \\\\ \\r \\n \\t or \\xNN)")
            }
            event!.record.payload?.append(contentsOf: bytes)
        } else if text.hasPrefix(": ") {
            guard let (offset, bytes) = TapeTextSyntax.hexLineBytes(text.dropFirst(2)) else {
                throw error("expected ': OFFSET  HEX BYTES' on a hex line")
            }
            guard offset == held else {
                throw error("hex line at offset \(String(offset, radix: 16)) follows \(held) bytes")
            }
            event!.record.payload?.append(contentsOf: bytes)
        } else if text.hasPrefix("redact ") {
            let words = text.split(separator: " ")
            guard words.count == 5, words[3] == "rule", let start = Int(words[1]), let length = Int(words[2]),
                let rule = Int64(words[4])
            else { throw error("expected 'redact START LENGTH rule ID'") }
            let (session, seq) = (event!.record.sessionID, event!.record.seq)
            event!.redactions.append(
                RedactionRecord(sessionID: session, seq: seq, start: start, length: length, ruleID: rule)
            )
        } else {
            throw error("expected '| text', ': hex' or 'redact …' under an event")
        }
    }

    private mutating func flushEvent(_ body: (TapeContentRecord) throws -> Void) throws {
        guard let pending = event else { return }
        event = nil
        let count = pending.record.payload?.count
        guard count == pending.size else {
            throw TapedeckError(
                .invalidArgument,
                "\(name):\(pending.line): event \(pending.record.seq) says \(pending.size ?? 0) bytes, its lines hold \(count ?? 0)"
            )
        }
        try body(.event(pending.record, redactions: pending.redactions))
    }

    // MARK: Values

    private static func split(_ text: Substring) -> (String, Substring) {
        guard let space = text.firstIndex(of: " ") else { return (String(text), "") }
        return (String(text[..<space]), text[text.index(after: space)...])
    }

    private func string(_ value: Substring) throws -> String {
        guard let (string, rest) = TapeTextSyntax.unquoted(value), rest.isEmpty else {
            throw error("expected a quoted string, found '\(value)'")
        }
        return string
    }

    private func integer(_ value: Substring) throws -> Int64 {
        guard let number = Int64(value) else { throw error("expected a whole number, found '\(value)'") }
        return number
    }

    private func time(_ value: Substring) throws -> Int64 {
        do {
            return try TimestampText.parse(String(value))
        } catch let failure as TapedeckError {
            throw error(failure.message)
        }
    }

    private func unknown(_ name: String, _ block: String) -> TapedeckError {
        error("unknown \(block) field '\(name)'")
    }

    private func error(_ message: String) -> TapedeckError {
        TapedeckError(.invalidArgument, "\(name):\(lineNumber): \(message)")
    }
}
