import Foundation
import NIOConcurrencyHelpers

/// What the web inspector's API answers, read from the tape: one method per endpoint, synchronous and free of
/// HTTP, so that tests call them directly and the router runs them off the event loops.
///
/// It holds the tape open for reading for as long as it serves. A tape being recorded is read through SQLite's
/// write-ahead log, so sessions appear as the recorder commits them.
final class TapeInspector: Sendable {
    let source: InspectorSource
    let tape: Tape
    /// The sessions the last content search matched, with what it searched and the tape's state then: paging
    /// through the results of one search reads the tape once.
    private let lastSearch = NIOLockedValueBox<(key: SearchKey, ids: Set<Int64>)?>(nil)

    private struct SearchKey: Hashable {
        var search: SessionListParameters.ContentSearch
        var sessions: Int
        var lastSession: Int64?
    }

    /// Opens `source`'s tape.
    ///
    /// - Throws: ``TapedeckError`` when the tape cannot be read.
    init(source: InspectorSource) throws {
        self.source = source
        tape = try Tape(readingAt: source.tapePath)
    }

    /// Closes the tape.
    func close() {
        try? tape.close()
    }

    // MARK: The tape

    func info() throws -> InspectorJSON.Info {
        let overview = try tape.overview()
        let report = source.report()
        return InspectorJSON.Info(
            tape: (source.tapePath as NSString).lastPathComponent,
            mode: source.mode,
            live: source.live,
            format: overview.format,
            version: tapedeckVersion,
            sessions: overview.sessions,
            lastSession: Nullable(overview.lastSession),
            routes: try tape.sessionRouteNames(),
            labels: overview.labels,
            outcomes: overview.outcomes,
            report: report != nil,
            mismatches: report?.mismatches.count ?? 0
        )
    }

    func sessions(_ parameters: SessionListParameters) throws -> InspectorJSON.SessionPage {
        var query = parameters.query
        if let search = parameters.search { query.ids = try sessionsMatching(search) }
        let total = try tape.countSessions(matching: query)
        var summaries: [SessionSummary] = []
        try tape.forEachSession(matching: query) { summaries.append($0) }
        let tls = try tape.tlsRecords(sessionIDs: summaries.map(\.id))
        let listens = try listenAddresses()
        return InspectorJSON.SessionPage(
            total: total,
            offset: query.offset,
            limit: query.limit ?? SessionListParameters.defaultLimit,
            sessions: summaries.map { summary in
                InspectorJSON.Session(
                    summary: summary,
                    transport: InspectorJSON.Session.transport(
                        client: summary.client,
                        listen: listens[RouteKey(run: summary.run, route: summary.route)]
                    ),
                    tls: tls[summary.id]
                )
            }
        )
    }

    /// The ids of the sessions with an event whose payload holds or matches `search`: `tapedeck grep`'s search.
    private func sessionsMatching(_ search: SessionListParameters.ContentSearch) throws -> Set<Int64> {
        let (count, last) = try tape.sessionCount()
        let key = SearchKey(search: search, sessions: count, lastSession: last)
        if let cached = lastSearch.withLockedValue({ $0 }), cached.key == key { return cached.ids }
        let searcher: TapeSearch
        do {
            searcher = try TapeSearch(search.regex ? .regex(search.pattern) : .bytes(escaped: search.pattern))
        } catch let error as TapedeckError {
            throw ControlError(.badRequest, error.message)
        }
        var ids = Set<Int64>()
        do {
            try searcher.forEachMatch(in: tape) { ids.insert($0.sessionID) }
        } catch let error as TapedeckError where error.code == .invalidArgument {
            // A regular expression that ran out of time on a payload.
            throw ControlError(.badRequest, error.message)
        }
        lastSearch.withLockedValue { $0 = (key, ids) }
        return ids
    }

    private struct RouteKey: Hashable {
        var run: Int64
        var route: String
    }

    /// Where each run's routes listened.
    private func listenAddresses() throws -> [RouteKey: String] {
        var listens: [RouteKey: String] = [:]
        for route in try tape.routes() { listens[RouteKey(run: route.runID, route: route.name)] = route.listen }
        return listens
    }

    func session(_ id: Int64) throws -> InspectorJSON.Session {
        let summary = try summary(of: id)
        let route = try tape.routes().last { $0.runID == summary.run && $0.name == summary.route }
        let marker = try SpanMarker(tape: tape, sessions: [id])
        let counts = try marker.counts(ofSession: summary)
        return InspectorJSON.Session(
            summary: summary,
            transport: InspectorJSON.Session.transport(client: summary.client, listen: route?.listen),
            tls: try tape.tlsRecords(sessionIDs: [id])[id],
            detail: InspectorJSON.Session.Detail(
                listen: route?.listen,
                protocolName: route?.protocolName,
                redactedSpans: counts.redacted,
                volatileSpans: counts.volatile,
                exports: [
                    "pcapng": "/api/sessions/\(id)/export.pcapng",
                    "jsonl": "/api/sessions/\(id)/export.jsonl",
                ]
            )
        )
    }

    private func summary(of id: Int64) throws -> SessionSummary {
        var query = SessionQuery(id: id)
        query.includeProbes = true
        var found: SessionSummary?
        try tape.forEachSession(matching: query) { found = $0 }
        guard let found else { throw ControlError(.notFound, "no session \(id) in the tape") }
        return found
    }

    // MARK: Events

    /// The most events one page may hold, and the most payload bytes one event may carry.
    static let maximumEvents = 5000
    static let maximumPreview = 1 << 20

    func events(of id: Int64, after: Int64, limit: Int, preview: Int) throws -> InspectorJSON.EventPage {
        let summary = try summary(of: id)
        var offsets = try tape.streamOffsets(inSession: id, through: after)
        let marker = try SpanMarker(tape: tape, sessions: [id])
        // One more than asked tells whether another page follows.
        let records = try tape.events(inSession: id, after: after, limit: limit + 1)
        var events: [InspectorJSON.Event] = []
        for record in records.prefix(limit) {
            let size = record.payload?.count ?? 0
            let streamOffset = offsets[record.direction] ?? 0
            if record.kind == .data { offsets[record.direction] = streamOffset + Int64(size) }
            events.append(
                InspectorJSON.Event(
                    seq: record.seq,
                    offsetNanoseconds: record.offsetNanoseconds,
                    direction: record.direction.rawValue,
                    kind: record.kind.rawValue,
                    size: size,
                    streamOffset: streamOffset,
                    payload: record.payload.map { Data($0.prefix(preview)) },
                    truncated: size > preview,
                    marks: marker.marks(of: record, route: summary.route)
                )
            )
        }
        return InspectorJSON.EventPage(
            session: id,
            total: summary.events,
            next: Nullable(records.count > limit ? events.last?.seq : nil),
            events: events
        )
    }

    func payload(of id: Int64, seq: Int64) throws -> Data {
        _ = try summary(of: id)
        guard let event = try tape.event(inSession: id, seq: seq) else {
            throw ControlError(.notFound, "session \(id) has no event \(seq)")
        }
        return event.payload ?? Data()
    }

    func stream(of id: Int64, direction: Direction, limit: Int) throws -> InspectorJSON.Stream {
        let summary = try summary(of: id)
        let marker = try SpanMarker(tape: tape, sessions: [id])
        var payload = Data()
        var total = 0
        var boundaries: [Int] = []
        var marks: [SpanMark] = []
        try tape.forEachEvent(inSession: id) { event in
            guard event.kind == .data, event.direction == direction, let bytes = event.payload else { return }
            if total < limit {
                boundaries.append(total)
                payload.append(bytes.prefix(limit - total))
                for var mark in marker.marks(of: event, route: summary.route) where total + mark.start < limit {
                    mark.start += total
                    marks.append(mark)
                }
            }
            total += bytes.count
        }
        return InspectorJSON.Stream(
            session: id,
            direction: direction.rawValue,
            total: total,
            payload: payload,
            truncated: total > payload.count,
            boundaries: boundaries,
            marks: marks
        )
    }

    /// Writes session `id` in `format` to a new file of its own (mode 0600), already unlinked, and returns its
    /// handle positioned at the start: the download is streamed from it and leaves nothing behind.
    func export(_ id: Int64, format: TapeExporter.Format) throws -> FileHandle {
        _ = try summary(of: id)
        var template = Array((NSTemporaryDirectory() + "/tapedeck-export-XXXXXX").utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            throw ControlError(.failed, "cannot export session \(id): \(String(cString: strerror(errno)))")
        }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        unlink(path)
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        let output = OutputBuffer(descriptor: descriptor, name: "the export of session \(id)")
        try TapeExporter.export(tape, sessions: [id], format: format, to: output)
        try output.finish()
        lseek(descriptor, 0, SEEK_SET)
        return handle
    }

    // MARK: The report

    func mismatches() -> InspectorJSON.Mismatches {
        guard let report = source.report() else { return InspectorJSON.Mismatches(report: false, mismatches: []) }
        return InspectorJSON.Mismatches(
            report: true,
            summary: report.summary,
            mismatches: report.mismatches.enumerated().map {
                InspectorJSON.Mismatch(index: $0.offset + 1, mismatch: $0.element)
            }
        )
    }

    func mismatch(_ index: Int) throws -> MismatchDiagnosis {
        guard let report = source.report() else { throw ControlError(.notFound, "there is no replay report") }
        guard report.mismatches.indices.contains(index - 1) else {
            throw ControlError(.notFound, "no mismatch \(index): the report has \(report.mismatches.count)")
        }
        let mismatch = report.mismatches[index - 1]
        let compared = try mismatch.closestSession.flatMap(comparedStream(ofSession:))
        return MismatchDiagnosis(index: index, mismatch: mismatch, compared: compared)
    }

    /// Session `id`'s client stream as replay compares it, built as replay builds it: the route's rules with the
    /// recording listener's address, and the recorder's placeholders.
    private func comparedStream(ofSession id: Int64) throws -> MismatchDiagnosis.ComparedStream? {
        guard let record = try tape.session(id: id) else { return nil }
        var events: [EventRecord] = []
        try tape.forEachEvent(inSession: id) { events.append($0) }
        let listen = try tape.routes().first { $0.id == record.routeID }.flatMap { try? Endpoint(parsing: $0.listen) }
        var rules = ReplayScript.Rules(
            client: try CompiledRules(
                try tape.rules(ofRoute: record.route),
                direction: .clientToUpstream,
                listen: listen.flatMap(ListenAddressText.init)
            )
        )
        for redaction in try tape.redactions(ofSessions: [id])[id] ?? [] {
            rules.clientRedactions[redaction.seq, default: []].append(
                redaction.start..<(redaction.start + redaction.length)
            )
        }
        let script = ReplayScript(sessionID: id, events: events, rules: rules)
        let clientReads = events.filter { $0.kind == .data && $0.direction == .clientToUpstream }
        return MismatchDiagnosis.ComparedStream(script, clientEvents: clientReads.map(\.seq))
    }
}
