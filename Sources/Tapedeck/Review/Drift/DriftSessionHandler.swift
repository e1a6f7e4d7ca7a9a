import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Re-issues one recorded session over a live upstream connection, exchange by exchange, and judges each answer
/// (see ``DriftAnswer``): the handler at the end of a drift check's upstream pipeline.
///
/// It lives on its channel's event loop, as its timers do; the promise it was given carries the outcome away. It
/// stops at the first difference: what follows a changed answer would be compared against a conversation the
/// upstream is no longer having; for a new recording of the session it goes on to the end, reporting the first.
final class DriftSessionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How long an answer that differs, or ran long, may stay silent before it is judged complete.
    static let quietTime = TimeAmount.milliseconds(200)
    /// Answers up to this size, both sides together, are read whole when a difference is judged volatile or not.
    static let wholeAnswerLimit = 128 << 10

    private let plan: DriftPlan
    private let rules: CompiledRules
    private let timeout: TimeAmount
    private let promise: EventLoopPromise<DriftLiveSession>
    /// Go on to the end of the conversation after the first difference, for a new recording of it.
    private let continueAfterChange: Bool
    private var live: DriftLiveSession
    private let start = NIODeadline.now()
    private var context: ChannelHandlerContext?
    /// The exchange being re-issued, from 0.
    private var index = 0
    private var answer: DriftAnswer?
    private var deadline: Scheduled<Void>?
    private var quiet: Scheduled<Void>?
    /// How the live upstream ended, once it has.
    private var liveEnding: DriftPlan.UpstreamEnding?
    /// All exchanges are done; waiting for the upstream to end as recorded.
    private var awaitingEnding = false
    private var finished = false
    /// The connection was made: a connect that failed is the caller's to report, not this handler's.
    private var connected = false
    /// This side shut down its write half, as the recorded client did.
    private var outputShut = false

    init(
        plan: DriftPlan,
        rules: CompiledRules,
        timeout: TimeAmount,
        upstream: String,
        continueAfterChange: Bool = false,
        promise: EventLoopPromise<DriftLiveSession>
    ) {
        self.continueAfterChange = continueAfterChange
        self.plan = plan
        self.rules = rules
        self.timeout = timeout
        self.promise = promise
        live = DriftLiveSession(
            result: .unchanged(session: plan.sessionID, route: plan.route),
            startedAt: WallClock.nowNanoseconds(),
            upstream: upstream
        )
    }

    private var now: Int64 { (NIODeadline.now() - start).nanoseconds }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        connected = true
        begin(exchange: 0)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let bytes = Data(buffer.readableBytesView)
        guard !finished, !bytes.isEmpty else { return }
        live.append(.upstreamToClient, .data, bytes, at: now)
        if answer != nil {
            // In place: a copy would share the answer's bytes, and every read would copy them whole.
            act(answer!.receive(bytes))
        } else if awaitingEnding, plan.upstreamEnding != nil {
            // The recording's upstream ended here; this one says more.
            changedEnding(
                recorded: "the upstream closed",
                live: "the upstream sent \"\(RecordedConversation.excerpt(bytes, at: 0))\""
            )
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            upstreamEnded(.closed, kind: .halfClose)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard connected else { return context.fireChannelInactive() }
        // With the output shut, the upstream's end of its stream closes the whole connection, unseen as a
        // half-close: a recorder notes the half-close then the close, and so does this.
        upstreamEnded(.closed, kind: outputShut ? .halfClose : .close)
        if !finished { finish() }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, error.errnoCode == ECONNREFUSED, plan.isDatagram, !finished {
            // An ICMP port unreachable, as a connected UDP socket hears it.
            fail("the upstream refused a datagram (ICMP port unreachable) in exchange \(index + 1)")
        } else if let error = error as? IOError, RelayHandler.isReset(errno: error.errnoCode) {
            upstreamEnded(.reset, kind: .reset)
        } else if case NIOSSLError.uncleanShutdown = error {
            // The upstream closed its connection without TLS's close_notify, as many do (nginx after the client's):
            // a close, as the recording noted it.
            upstreamEnded(.closed, kind: outputShut ? .halfClose : .close)
        } else if error is NIOSSLError || error is BoringSSLError {
            fail("TLS with the upstream failed: \(TLSFailure.describe(error))")
        } else if !finished {
            fail("\(SocketErrorText.describe(error)) in exchange \(index + 1)")
        }
    }

    // MARK: - The conversation

    private func begin(exchange next: Int) {
        guard !finished, let context else { return }
        index = next
        guard index < plan.exchanges.count else { return end() }
        let exchange = plan.exchanges[index]
        if !exchange.clientParts.isEmpty {
            let client = exchange.client
            if let liveEnding {
                return changedEnding(
                    recorded: "the client sent \(client.count) more bytes",
                    live: liveEnding == .reset ? "the upstream had reset the connection" : "the upstream had closed"
                )
            }
            if plan.isDatagram {
                // One write per recorded datagram: on a connected UDP socket each write is one datagram.
                for part in exchange.clientParts {
                    context.write(wrapOutboundOut(ByteBuffer(data: part)), promise: nil)
                    live.append(.clientToUpstream, .data, part, at: now)
                }
                context.flush()
            } else {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(data: client)), promise: nil)
                live.append(.clientToUpstream, .data, client, at: now)
            }
        }
        if exchange.clientEndsBeforeAnswer, !plan.isDatagram {
            context.close(mode: .output, promise: nil)
            outputShut = true
            live.append(.clientToUpstream, .halfClose, at: now)
        }
        let current = DriftAnswer(recorded: exchange.upstream, rules: rules)
        answer = current
        if current.start() == .done(.matches) { return settle(.matches) }
        if liveEnding != nil { return act(current.upstreamEnded()) }
        let due = index
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            guard !finished, index == due, let answer else { return }
            act(answer.timedOut())
        }
    }

    private func act(_ next: DriftAnswer.Next) {
        switch next {
        case .keepReading:
            break
        case .awaitQuiet:
            quiet?.cancel()
            let due = index
            quiet = context?.eventLoop.assumeIsolated().scheduleTask(in: Self.quietTime) { [self] in
                guard !finished, index == due, let answer else { return }
                act(answer.quietElapsed())
            }
        case .done(let verdict):
            settle(verdict)
        }
    }

    private func settle(_ verdict: DriftAnswer.Verdict) {
        deadline?.cancel()
        quiet?.cancel()
        guard let answer else { return }
        self.answer = nil
        switch verdict {
        case .matches:
            begin(exchange: index + 1)
        case .silent:
            fail(
                "no answer in exchange \(index + 1) within \(Self.text(timeout)) (the recording's was "
                    + "\(answer.recorded.count) bytes)"
            )
        case .differs(let offset):
            changedAnswer(answer, at: offset)
        }
    }

    /// Every exchange matched: the session ends as the recording did.
    private func end() {
        if plan.isDatagram { return finish() }
        // An upstream that ended long after the last bytes (an idle timeout) is not waited for: the re-issue ends
        // as a client would, and how the upstream would have ended is not compared.
        let expected = plan.upstreamEndingDelay > timeout.nanoseconds ? nil : plan.upstreamEnding
        guard let recorded = expected else {
            // The client ended the recording (or it was cut off there): so does the re-issue.
            guard plan.clientEnding == .halfClose, liveEnding == nil else {
                live.append(.clientToUpstream, plan.clientEnding == .reset ? .reset : .close, at: now)
                return finish()
            }
            // A half-close lets the upstream finish as it likes: its ending goes on the new tape, bounded in time,
            // and judges nothing.
            context?.close(mode: .output, promise: nil)
            outputShut = true
            live.append(.clientToUpstream, .halfClose, at: now)
            awaitingEnding = true
            deadline = context?.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in finish() }
            return
        }
        if let liveEnding {
            guard liveEnding == recorded else {
                return changedEnding(recorded: "the upstream \(recorded.text)", live: "the upstream \(liveEnding.text)")
            }
            return finish()
        }
        awaitingEnding = true
        deadline = context?.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            guard !finished else { return }
            changedEnding(
                recorded: "the upstream \(recorded.text)",
                live: "the upstream was still open after \(Self.text(timeout))"
            )
        }
    }

    private func upstreamEnded(_ ending: DriftPlan.UpstreamEnding, kind: EventKind) {
        guard !finished, liveEnding == nil else { return }
        liveEnding = ending
        live.append(.upstreamToClient, kind, at: now)
        if ending == .reset { live.outcome = .resetByUpstream }
        if let answer {
            if ending == .reset, plan.upstreamEnding != .reset {
                return fail("the upstream reset the connection in exchange \(index + 1)")
            }
            act(answer.upstreamEnded())
        } else if awaitingEnding {
            deadline?.cancel()
            if plan.upstreamEnding == nil || ending == plan.upstreamEnding {
                finish()
            } else {
                changedEnding(
                    recorded: "the upstream \(plan.upstreamEnding?.text ?? "stayed open")",
                    live: "the upstream \(ending.text)"
                )
            }
        }
    }

    // MARK: - Verdicts

    private func changedAnswer(_ answer: DriftAnswer, at offset: Int) {
        // Only the first difference is reported; later ones, when the conversation goes on, are on the new tape.
        guard live.result.status == .unchanged else { return continueOrFinish() }
        let recorded = answer.normalizedRecorded
        let received = answer.normalizedReceived
        var result = live.result
        result.status = .changed
        result.exchange = index + 1
        result.direction = Direction.upstreamToClient.rawValue
        result.offset = answer.rawRecordedOffset(offset)
        result.recorded = RecordedConversation.excerpt(recorded, at: offset)
        result.live = RecordedConversation.excerpt(received, at: offset)
        // The hint reads a window around the difference, as replay's mismatch does, so a long answer costs no more;
        // a short answer is read whole.
        let whole = recorded.count + received.count <= Self.wholeAnswerLimit
        let from = whole ? 0 : max(0, offset - 256)
        let hint = Self.volatileHint(
            recorded: whole ? recorded : Self.window(recorded, from: from, to: offset + 256),
            live: whole ? received : Self.window(received, from: from, to: offset + 256),
            differingAt: offset - from
        )
        result.volatile = hint != nil
        result.hint = hint?.description
        live.result = result
        continueOrFinish()
    }

    /// After a changed answer: the next exchange, when the whole live conversation is wanted, else the end.
    private func continueOrFinish() {
        guard continueAfterChange else { return finish() }
        begin(exchange: index + 1)
    }

    private func changedEnding(recorded: String, live text: String) {
        guard live.result.status == .unchanged else { return finish() }
        var result = live.result
        result.status = .changed
        result.exchange = max(1, min(index + 1, plan.exchanges.count))
        result.direction = "end"
        result.recorded = recorded
        result.live = text
        live.result = result
        finish()
    }

    private func fail(_ reason: String) {
        // Past a reported difference, the conversation went on only for the new tape: it ends here as it is.
        guard live.result.status == .unchanged else { return finish() }
        var result = live.result
        result.status = .failed
        result.exchange = max(1, min(index + 1, plan.exchanges.count))
        result.reason = reason
        live.result = result
        finish()
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        deadline?.cancel()
        quiet?.cancel()
        answer = nil
        if !plan.isDatagram, liveEnding == .closed, live.events.last?.kind == .halfClose {
            // Closing the connection after the upstream's half-close, as a recorder notes it.
            live.append(.upstreamToClient, .close, at: now)
        }
        live.durationNanoseconds = now
        if plan.clientEnding == .reset, live.result.status == .unchanged, let channel = context?.channel {
            RelayHandler.armReset(channel)
        }
        context?.close(promise: nil)
        promise.succeed(live)
    }

    /// The hint for a difference that looks volatile: the differing bytes form a token of a known shape (a
    /// timestamp, an id, a digest) and the rule the hint proposes makes the two windows equal. A length prefix
    /// that changed with the value after it looks like a number, but is no volatile value: the rule leaves the
    /// value's difference standing.
    static func volatileHint(recorded: Data, live: Data, differingAt offset: Int) -> MismatchHint? {
        guard let hint = MismatchHint(expected: recorded, actual: live, differingAt: offset),
            hint.kind != MismatchHint.tlsKind,
            let rule = try? Rule(.volatile, pattern: hint.pattern),
            let rules = try? CompiledRules([rule], direction: .upstreamToClient)
        else { return nil }
        let same =
            StreamNormalizer.normalize(recorded, rules: rules).bytes
            == StreamNormalizer.normalize(live, rules: rules).bytes
        return same ? hint : nil
    }

    // MARK: - Text

    private static func window(_ bytes: Data, from: Int, to: Int) -> Data {
        let lower = bytes.startIndex + min(from, bytes.count)
        let upper = bytes.startIndex + min(max(to, from), bytes.count)
        return Data(bytes[lower..<upper])
    }

    /// A time as `--timeout` takes it: `5s`, `500ms`.
    private static func text(_ amount: TimeAmount) -> String {
        DurationText.format(.nanoseconds(amount.nanoseconds))
    }
}

extension DriftPlan.UpstreamEnding {
    /// How a sentence says it: "the upstream closed".
    var text: String {
        switch self {
        case .closed: "closed"
        case .reset: "reset the connection"
        }
    }
}
