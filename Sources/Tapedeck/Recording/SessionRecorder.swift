import Foundation
import NIOCore

/// Records one session: both of its connections report here, on their shared event loop.
///
/// It numbers events, stamps them with the monotonic time since the session began, counts bytes, and decides
/// the session's outcome once both connections are over. It never touches the disk: every event goes to the
/// tape writer's queue, and payloads are handed over as the very buffers NIO read into, without a copy.
final class SessionRecorder {
    /// A route's redact rules, for each direction, and the ids its rules have in the tape.
    struct Redaction: Sendable {
        var client: CompiledRules
        var upstream: CompiledRules
        var ruleIDs: [Int64]
    }

    private let key: UInt64
    private let writer: TapeWriter
    private let started = NIODeadline.now()
    private var seq: Int64 = 0
    private var clientBytes: Int64 = 0
    private var upstreamBytes: Int64 = 0
    private var clientEnded = false
    private var upstreamEnded = false
    private var firstReset: Direction?
    private var connectFailure: SessionOutcome?
    private var interrupted = false
    private var upstreamAddress: String
    private var finished = false
    /// Each direction's redactor, when the route has redact rules for it.
    private var clientRedactor: RecordingRedactor?
    private var upstreamRedactor: RecordingRedactor?
    private let ruleIDs: [Int64]
    /// On a route without TLS: watches the first bytes for a client starting TLS, which can then only be
    /// recorded as ciphertext.
    private var undecryptedTLS:
        (recognizer: TLSStartRecognizer, notice: @Sendable (TLSStartRecognizer.Upgrade) -> Void)?
    /// A TLS handshake failed: the session's outcome says so.
    private var tlsFailed = false
    /// The session is a UDP flow: one event per datagram, and never a probe, even with no bytes.
    private var isFlow = false
    /// Datagrams of the flow dropped because a socket could not take them.
    private var droppedDatagrams: Int64 = 0
    /// The flow's redact rules, applied to each datagram on its own.
    private var datagramRules: (client: CompiledRules?, upstream: CompiledRules?)

    init(
        key: UInt64,
        start: TapeWriter.SessionStart,
        writer: TapeWriter,
        redaction: Redaction? = nil
    ) {
        self.key = key
        self.writer = writer
        ruleIDs = redaction?.ruleIDs ?? []
        if let redaction {
            if !redaction.client.isEmpty { clientRedactor = RecordingRedactor(rules: redaction.client) }
            if !redaction.upstream.isEmpty { upstreamRedactor = RecordingRedactor(rules: redaction.upstream) }
        }
        self.upstreamAddress = start.upstreamAddress
        writer.submit(.sessionStarted(start))
    }

    /// Whether the tape writer can take more bytes now; relays hold reads while it cannot.
    var budget: RecordingBudget { writer.budget }

    func recordData(_ buffer: ByteBuffer, from direction: Direction) {
        if undecryptedTLS != nil { watchTLS(buffer, from: direction) }
        let count = buffer.readableBytes
        switch direction {
        case .clientToUpstream: clientBytes += Int64(count)
        case .upstreamToClient: upstreamBytes += Int64(count)
        }
        guard !finished else { return }
        switch direction {
        case .clientToUpstream where clientRedactor != nil:
            redact(clientRedactor!.feed(event(buffer)), direction)
        case .upstreamToClient where upstreamRedactor != nil:
            redact(upstreamRedactor!.feed(event(buffer)), direction)
        default:
            append(direction, .data, buffer)
        }
    }

    // MARK: Datagrams

    /// Makes this session a UDP flow: each datagram is one event, redacted on its own, since a datagram is a whole
    /// message that no span crosses.
    func beginFlow() {
        isFlow = true
        datagramRules = (clientRedactor?.rules, upstreamRedactor?.rules)
        clientRedactor = nil
        upstreamRedactor = nil
    }

    /// One datagram, as one event.
    func recordDatagram(_ datagram: ByteBuffer, from direction: Direction) {
        let count = datagram.readableBytes
        switch direction {
        case .clientToUpstream: clientBytes += Int64(count)
        case .upstreamToClient: upstreamBytes += Int64(count)
        }
        guard !finished else { return }
        // A datagram read into a large receive buffer pins all of it; the tape needs only its bytes.
        let payload = DatagramSocket.compacted(datagram)
        let rules = direction == .clientToUpstream ? datagramRules.client : datagramRules.upstream
        guard let rules else { return append(direction, .data, payload) }
        var redactor = RecordingRedactor(rules: rules)
        redact(redactor.feed(event(payload)) + redactor.finish(), direction)
    }

    /// The upstream's host refused a datagram (ICMP port unreachable), seen as a refused read or write.
    func recordRefused(reason: String) {
        append(.upstreamToClient, .refused, ByteBuffer(string: reason))
    }

    /// Datagrams were dropped because a socket could not take them; the session row keeps the count.
    func countDropped(_ count: Int = 1) {
        droppedDatagrams += Int64(count)
    }

    /// The flow ended: it stayed idle for the route's timeout, or the relay shut down.
    func endFlow() {
        clientEnded = true
        upstreamEnded = true
        finishIfOver()
    }

    /// A data event for a redactor: its number and time are taken now, whenever it is written.
    private func event(_ buffer: ByteBuffer) -> RecordingRedactor.Event {
        defer { seq += 1 }
        return RecordingRedactor.Event(seq: seq, offset: offsetNow(), payload: buffer)
    }

    /// Writes redacted events, and where their placeholders are.
    private func redact(_ events: [RecordingRedactor.Event], _ direction: Direction) {
        for event in events {
            writer.budget.reserve(RecordingBudget.cost(of: event.payload))
            writer.submit(
                .event(
                    key: key,
                    seq: event.seq,
                    offset: event.offset,
                    direction: direction,
                    kind: .data,
                    payload: event.payload
                )
            )
            for redaction in event.redactions where ruleIDs.indices.contains(redaction.rule) {
                writer.submit(
                    .redaction(
                        key: key,
                        seq: event.seq,
                        start: redaction.start,
                        length: redaction.length,
                        ruleID: ruleIDs[redaction.rule]
                    )
                )
            }
        }
    }

    /// A direction's stream ended (or the session did): what its redactor held is written now.
    private func finishRedacting(_ direction: Direction) {
        switch direction {
        case .clientToUpstream:
            if let events = clientRedactor?.finish() { redact(events, direction) }
        case .upstreamToClient:
            if let events = upstreamRedactor?.finish() { redact(events, direction) }
        }
    }

    /// Watches a route without TLS for a client that starts TLS (see ``recordData(_:from:)``).
    func watchForUndecryptedTLS(_ notice: @escaping @Sendable (TLSStartRecognizer.Upgrade) -> Void) {
        undecryptedTLS = (TLSStartRecognizer(), notice)
    }

    private func watchTLS(_ buffer: ByteBuffer, from direction: Direction) {
        guard var recognizer = undecryptedTLS?.recognizer, let notice = undecryptedTLS?.notice else { return }
        let bytes = Data(buffer.readableBytesView)
        let decision = direction == .clientToUpstream ? recognizer.client(bytes) : recognizer.upstream(bytes)
        switch decision {
        case .undecided:
            undecryptedTLS = (recognizer, notice)
        case .plaintext:
            undecryptedTLS = nil
        case .tls(let upgrade, let clientOffset, let upstreamOffset):
            undecryptedTLS = nil
            recordTLS(
                SessionTLSRecord(
                    sessionID: 0,
                    mode: .undecrypted,
                    upgrade: upgrade.rawValue,
                    clientOffset: Int64(clientOffset),
                    upstreamOffset: Int64(upstreamOffset)
                )
            )
            notice(upgrade)
        }
    }

    /// How the session spoke TLS.
    func recordTLS(_ record: SessionTLSRecord) {
        guard !finished else { return }
        writer.submit(.tls(key: key, record))
    }

    /// A TLS handshake failed; the session ends with outcome `tls_failed`.
    func markTLSFailed() {
        tlsFailed = true
    }

    /// A toxic acted on `direction`'s stream: noted with its description, where it happened.
    func recordFault(_ description: String, on direction: Direction) {
        append(direction, .fault, ByteBuffer(string: description))
    }

    /// The sender shut down its write half.
    func recordHalfClose(from direction: Direction) {
        finishRedacting(direction)
        append(direction, .halfClose, nil)
    }

    /// The upstream connection is up; remember the address actually connected to.
    func upstreamConnected(to address: String) {
        upstreamAddress = address
    }

    /// A side's connection is over. `byPeer` is false when the relay closed it because the other side ended, in
    /// which case it is not an event of its own.
    func recordEnd(of direction: Direction, reset: Bool, byPeer: Bool) {
        finishRedacting(direction)
        if byPeer {
            append(direction, reset ? .reset : .close, nil)
            if reset, firstReset == nil { firstReset = direction }
        }
        switch direction {
        case .clientToUpstream: clientEnded = true
        case .upstreamToClient: upstreamEnded = true
        }
        finishIfOver()
    }

    /// Shutdown cut the session off before it ended by itself.
    func markInterrupted() {
        interrupted = true
    }

    func recordConnectFailed(reason: String, outcome: SessionOutcome) {
        append(.upstreamToClient, .connectFailed, ByteBuffer(string: reason))
        connectFailure = outcome
        upstreamEnded = true
        finishIfOver()
    }

    private func append(_ direction: Direction, _ kind: EventKind, _ payload: ByteBuffer?) {
        guard !finished else { return }
        // The writer gives back exactly this once the payload is committed (or discarded after a failure).
        if let payload { writer.budget.reserve(RecordingBudget.cost(of: payload)) }
        writer.submit(
            .event(key: key, seq: seq, offset: offsetNow(), direction: direction, kind: kind, payload: payload)
        )
        seq += 1
    }

    private func offsetNow() -> Int64 {
        Int64(NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds)
    }

    private func finishIfOver() {
        guard clientEnded, upstreamEnded, !finished else { return }
        finishRedacting(.clientToUpstream)
        finishRedacting(.upstreamToClient)
        finished = true
        let outcome: SessionOutcome
        if let connectFailure {
            outcome = connectFailure
        } else if tlsFailed {
            outcome = .tlsFailed
        } else if interrupted {
            outcome = .interrupted
        } else if !isFlow, clientBytes == 0, upstreamBytes == 0, firstReset != .upstreamToClient {
            // Opened and closed without a byte either way: a readiness probe (`nc -z`, a health check).
            outcome = .probe
        } else if let firstReset {
            outcome = firstReset == .clientToUpstream ? .resetByClient : .resetByUpstream
        } else {
            outcome = .closed
        }
        writer.submit(
            .sessionEnded(
                TapeWriter.SessionEnd(
                    key: key,
                    outcome: outcome,
                    upstreamAddress: upstreamAddress,
                    endedAt: WallClock.nowNanoseconds(),
                    duration: offsetNow(),
                    clientBytes: clientBytes,
                    upstreamBytes: upstreamBytes,
                    eventCount: seq,
                    droppedDatagrams: droppedDatagrams
                )
            )
        )
    }
}
