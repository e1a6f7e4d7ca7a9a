import Foundation
import Testing

@testable import Tapedeck

/// The drift check without sockets: the plan built from a session's events, the answer judged as its bytes arrive
/// in any chunking, and the hint offered for a difference that looks volatile.
@Suite(.timeLimit(.minutes(1)))
struct DriftStateMachineTests {
    // MARK: Helpers

    typealias Step = (Direction, EventKind, String)

    static func client(_ text: String) -> Step { (.clientToUpstream, .data, text) }
    static func upstream(_ text: String) -> Step { (.upstreamToClient, .data, text) }
    static func client(_ kind: EventKind) -> Step { (.clientToUpstream, kind, "") }
    static func upstream(_ kind: EventKind) -> Step { (.upstreamToClient, kind, "") }

    /// The plan of one session given as steps, recorded 1 ms apart. A data step with empty text has an empty
    /// payload; other steps but a failed connect have none.
    static func plan(_ steps: [Step]) -> DriftPlan {
        let events = steps.enumerated().map { index, step in
            EventRecord(
                sessionID: 7,
                seq: Int64(index),
                offsetNanoseconds: Int64(index) * 1_000_000,
                direction: step.0,
                kind: step.1,
                payload: step.1 == .data || step.1 == .connectFailed ? Data(step.2.utf8) : nil
            )
        }
        return DriftPlan(sessionID: 7, route: "default", events: events)
    }

    /// An exchange as the plan makes it; `parts` are the client's reads, one read of `client` unless given.
    static func exchange(
        _ client: String,
        _ upstream: String,
        parts: [String]? = nil,
        endsBeforeAnswer: Bool = false
    ) -> DriftPlan.Exchange {
        precondition(parts.map { $0.joined() == client } ?? true, "the reads of an exchange make up its client bytes")
        return DriftPlan.Exchange(
            clientParts: (parts ?? (client.isEmpty ? [] : [client])).map { Data($0.utf8) },
            upstream: Data(upstream.utf8),
            clientEndsBeforeAnswer: endsBeforeAnswer
        )
    }

    static func noRules() throws -> CompiledRules {
        try CompiledRules([], direction: .upstreamToClient)
    }

    /// The route's rule for an HTTP `Date` header: its value may change.
    static func dateRules() throws -> CompiledRules {
        try CompiledRules([try Rule(.volatile, pattern: #"Date: ([^\r]+)"#)], direction: .upstreamToClient)
    }

    /// Feeds `live` to a fresh answer for `recorded`, cut at `cuts` (ascending, inside the bytes), and returns the
    /// answer and what each chunk made it say.
    static func feed(
        _ recorded: String,
        _ live: String,
        cuts: [Int],
        rules: CompiledRules
    ) -> (answer: DriftAnswer, steps: [DriftAnswer.Next]) {
        var answer = DriftAnswer(recorded: Data(recorded.utf8), rules: rules)
        let bytes = Data(live.utf8)
        var steps: [DriftAnswer.Next] = []
        var start = 0
        for end in cuts + [bytes.count] {
            steps.append(answer.receive(Data(bytes[(bytes.startIndex + start)..<(bytes.startIndex + end)])))
            start = end
        }
        return (answer, steps)
    }

    /// Every place `live` can be cut at: each one alone makes two non-empty chunks, all of them one byte a chunk.
    static func twoChunkCuts(_ live: String) -> [Int] { Array(1..<live.utf8.count) }

    // MARK: The plan

    @Test func aRequestReplySessionMakesOneExchangePerReplyWithSplitReadsJoined() {
        let plan = Self.plan([
            Self.client("PING\r\n"),
            Self.upstream("+PONG\r\n"),
            Self.client("GET "),
            Self.client("k\r\n"),
            Self.upstream("$5\r\nhello\r\n"),
            Self.client(.halfClose),
            Self.upstream(.halfClose),
            Self.upstream(.close),
        ])
        #expect(plan.sessionID == 7 && plan.route == "default")
        #expect(
            plan.exchanges == [
                Self.exchange("PING\r\n", "+PONG\r\n"),
                Self.exchange("GET k\r\n", "$5\r\nhello\r\n", parts: ["GET ", "k\r\n"]),
            ]
        )
        #expect(plan.clientEnding == .halfClose)
        // The upstream ended after the client did: nothing a re-issue expects of it.
        #expect(plan.upstreamEnding == nil)
        #expect(!plan.connectFailed)
    }

    @Test func aGreetingStartsAnExchangeWithNoClientBytes() {
        let plan = Self.plan([
            Self.upstream("220 ready\r\n"),
            Self.client("QUIT\r\n"),
            Self.upstream("221 bye\r\n"),
            Self.client(.close),
        ])
        #expect(plan.exchanges == [Self.exchange("", "220 ready\r\n"), Self.exchange("QUIT\r\n", "221 bye\r\n")])
        #expect(plan.exchanges.first?.client.isEmpty == true)
        #expect(plan.clientEnding == .close)
        #expect(plan.upstreamEnding == nil)
    }

    @Test func aClientThatShutsItsWriteHalfBeforeTheAnswerIsPlannedSo() {
        let plan = Self.plan([
            Self.client("GET / HTTP/1.0\r\n\r\n"),
            Self.client(.halfClose),
            Self.upstream("HTTP/1.0 200 OK\r\n\r\nhi"),
            Self.upstream(.close),
        ])
        #expect(
            plan.exchanges == [
                Self.exchange("GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\nhi", endsBeforeAnswer: true)
            ]
        )
        #expect(plan.clientEnding == .halfClose)
        #expect(plan.upstreamEnding == nil)
    }

    @Test func aClientThatEndsBeforeAnAnswerThatNeverCameHasNothingToReadEarly() {
        let plan = Self.plan([Self.client("FIRE\r\n"), Self.client(.close)])
        #expect(plan.exchanges == [Self.exchange("FIRE\r\n", "")])
        #expect(plan.clientEnding == .close)
    }

    @Test func anUpstreamThatClosesBeforeTheClientIsExpectedToCloseAgain() {
        let plan = Self.plan([
            Self.client("QUIT\r\n"),
            Self.upstream("+OK\r\n"),
            Self.upstream(.close),
            Self.client(.close),
        ])
        #expect(plan.exchanges == [Self.exchange("QUIT\r\n", "+OK\r\n")])
        #expect(plan.upstreamEnding == .closed)
        #expect(plan.clientEnding == .close)
        // One millisecond after the reply, as `plan` spaces the steps.
        #expect(plan.upstreamEndingDelay == 1_000_000)
    }

    /// An upstream that closes a minute after its last reply (an idle timeout) is planned with that delay, which
    /// the re-issue compares with its timeout rather than wait for.
    @Test func anIdleTimeoutIsPlannedWithItsDelay() {
        let events = [
            EventRecord(
                sessionID: 1,
                seq: 0,
                offsetNanoseconds: 0,
                direction: .clientToUpstream,
                kind: .data,
                payload: Data("GET / HTTP/1.1\r\n\r\n".utf8)
            ),
            EventRecord(
                sessionID: 1,
                seq: 1,
                offsetNanoseconds: 2_000_000,
                direction: .upstreamToClient,
                kind: .data,
                payload: Data("HTTP/1.1 204 No Content\r\n\r\n".utf8)
            ),
            EventRecord(
                sessionID: 1,
                seq: 2,
                offsetNanoseconds: 62_002_000_000,
                direction: .upstreamToClient,
                kind: .close,
                payload: nil
            ),
        ]
        let plan = DriftPlan(sessionID: 1, route: "default", events: events)
        #expect(plan.upstreamEnding == .closed)
        #expect(plan.upstreamEndingDelay == 62_000_000_000)
    }

    @Test func anUpstreamHalfCloseThenCloseIsOneClosedEnding() {
        let plan = Self.plan([
            Self.client("QUIT\r\n"),
            Self.upstream("+OK\r\n"),
            Self.upstream(.halfClose),
            Self.upstream(.close),
        ])
        #expect(plan.upstreamEnding == .closed)
        #expect(plan.clientEnding == nil)
    }

    @Test func anUpstreamResetBeforeTheClientIsExpectedAgain() {
        let plan = Self.plan([
            Self.client("QUIT\r\n"),
            Self.upstream("+OK\r\n"),
            Self.upstream(.reset),
            Self.client(.close),
        ])
        #expect(plan.exchanges == [Self.exchange("QUIT\r\n", "+OK\r\n")])
        #expect(plan.upstreamEnding == .reset)
    }

    @Test func aFailedConnectHasNoExchanges() {
        let plan = Self.plan([(.upstreamToClient, .connectFailed, "connection refused")])
        #expect(plan.connectFailed)
        #expect(plan.exchanges.isEmpty)
        #expect(plan.clientEnding == nil && plan.upstreamEnding == nil)
    }

    @Test func emptyPayloadsAreIgnored() {
        #expect(Self.plan([Self.client(""), Self.upstream("")]).exchanges.isEmpty)
        // An empty read between two client reads does not cut the exchange, nor does an empty answer.
        let plan = Self.plan([
            Self.client("A"),
            Self.upstream(""),
            Self.client(""),
            Self.client("B"),
            Self.upstream("x"),
        ])
        #expect(plan.exchanges == [Self.exchange("AB", "x", parts: ["A", "B"])])
    }

    // MARK: The answer, without rules

    static let reply = "+OK\r\n$5\r\nhello\r\n"

    @Test func anEmptyRecordedAnswerIsCompleteAtOnce() throws {
        let answer = DriftAnswer(recorded: Data(), rules: try Self.noRules())
        #expect(answer.start() == .done(.matches))
        #expect(answer.timedOut() == .done(.matches))
        #expect(DriftAnswer(recorded: Data(), rules: try Self.dateRules()).start() == .done(.matches))
        #expect(DriftAnswer(recorded: Data(Self.reply.utf8), rules: try Self.noRules()).start() == .keepReading)
    }

    @Test func theSameAnswerMatchesExactlyAtItsLastByteInAnyChunking() throws {
        let rules = try Self.noRules()
        #expect(Self.reply.utf8.count == 16)
        for cut in Self.twoChunkCuts(Self.reply) {
            let (answer, steps) = Self.feed(Self.reply, Self.reply, cuts: [cut], rules: rules)
            let expected: [DriftAnswer.Next] = [.keepReading, .done(.matches)]
            #expect(steps == expected, "cut at \(cut)")
            #expect(answer.received == Data(Self.reply.utf8))
        }
        let (_, steps) = Self.feed(Self.reply, Self.reply, cuts: Self.twoChunkCuts(Self.reply), rules: rules)
        let expected: [DriftAnswer.Next] = Array(repeating: .keepReading, count: 15) + [.done(.matches)]
        #expect(steps == expected)
    }

    @Test func aDifferentAnswerOfTheSameLengthWaitsForQuietThenDiffers() throws {
        let rules = try Self.noRules()
        let live = "+OK\r\n$5\r\nhallo\r\n"
        for cut in Self.twoChunkCuts(live) {
            let (answer, steps) = Self.feed(Self.reply, live, cuts: [cut], rules: rules)
            // Raw bytes that already differ wait for quiet, before the answer may be complete.
            let first: DriftAnswer.Next = cut <= 10 ? .keepReading : .awaitQuiet
            #expect(steps == [first, .awaitQuiet], "cut at \(cut)")
            #expect(answer.quietElapsed() == .done(.differs(offset: 10)), "cut at \(cut)")
            #expect(answer.upstreamEnded() == .done(.differs(offset: 10)), "cut at \(cut)")
            #expect(answer.timedOut() == .done(.differs(offset: 10)), "cut at \(cut)")
        }
        let (answer, steps) = Self.feed(Self.reply, live, cuts: Self.twoChunkCuts(live), rules: rules)
        let expected: [DriftAnswer.Next] =
            Array(repeating: .keepReading, count: 10) + Array(repeating: .awaitQuiet, count: 6)
        #expect(steps == expected)
        #expect(answer.quietElapsed() == .done(.differs(offset: 10)))
    }

    @Test func aLongerAnswerDiffersAtTheRecordedLength() throws {
        let rules = try Self.noRules()
        let live = Self.reply + "EXTRA"
        for cut in Self.twoChunkCuts(live) {
            let (answer, steps) = Self.feed(Self.reply, live, cuts: [cut], rules: rules)
            if cut == 16 {
                // The first chunk is the recorded answer whole: complete and matched; what follows is not read.
                #expect(steps.first == .done(.matches))
                continue
            }
            let first: DriftAnswer.Next = cut < 16 ? .keepReading : .awaitQuiet
            #expect(steps == [first, .awaitQuiet], "cut at \(cut)")
            #expect(answer.quietElapsed() == .done(.differs(offset: 16)), "cut at \(cut)")
        }
    }

    @Test func aStrictStartOfTheAnswerWaitsUntilTheTimeRunsOut() throws {
        let rules = try Self.noRules()
        let live = "+OK\r\n$5\r\nh"
        #expect(live.utf8.count == 10)
        for cut in Self.twoChunkCuts(live) {
            let (answer, steps) = Self.feed(Self.reply, live, cuts: [cut], rules: rules)
            let expected: [DriftAnswer.Next] = [.keepReading, .keepReading]
            #expect(steps == expected, "cut at \(cut)")
            #expect(answer.timedOut() == .done(.differs(offset: 10)), "cut at \(cut)")
            #expect(answer.upstreamEnded() == .done(.differs(offset: 10)), "cut at \(cut)")
        }
    }

    @Test func nothingAtAllIsSilenceWhenTheTimeRunsOut() throws {
        let answer = DriftAnswer(recorded: Data(Self.reply.utf8), rules: try Self.noRules())
        #expect(answer.timedOut() == .done(.silent))
        // An upstream that ends without a word said something else than the recording: it differs at once.
        #expect(answer.upstreamEnded() == .done(.differs(offset: 0)))
    }

    // MARK: The answer, with a volatile rule

    static let datedReply = DriftStateMachineTests.datedAnswer("Mon, 01 Dec 2025 10:00:00 GMT")
    /// Where a live date's first byte differs from the recorded one's ("Mon" against "Tue").
    static let dateDiffers = 23

    static func datedAnswer(_ date: String) -> String {
        "HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Length: 2\r\n\r\nok"
    }

    @Test func aDateOfTheSameLengthMatchesAtTheLastByteInAnyChunking() throws {
        let rules = try Self.dateRules()
        let live = Self.datedAnswer("Tue, 02 Dec 2025 11:22:33 GMT")
        #expect(live.utf8.count == Self.datedReply.utf8.count)
        #expect(MismatchHint.firstDifference(Data(Self.datedReply.utf8), Data(live.utf8)) == Self.dateDiffers)
        for cut in Self.twoChunkCuts(live) {
            let (_, steps) = Self.feed(Self.datedReply, live, cuts: [cut], rules: rules)
            let first: DriftAnswer.Next = cut <= Self.dateDiffers ? .keepReading : .awaitQuiet
            #expect(steps == [first, .done(.matches)], "cut at \(cut)")
        }
        let (_, steps) = Self.feed(Self.datedReply, live, cuts: Self.twoChunkCuts(live), rules: rules)
        #expect(steps.last == .done(.matches))
        #expect(!steps.dropLast().contains(.done(.matches)))
    }

    @Test func aShorterDateMatchesOnceTheUpstreamIsQuiet() throws {
        let rules = try Self.dateRules()
        let live = Self.datedAnswer("Tue, 2 Dec 2025 11:22:33 GMT")
        #expect(live.utf8.count == Self.datedReply.utf8.count - 1)
        for cut in Self.twoChunkCuts(live) {
            let (answer, steps) = Self.feed(Self.datedReply, live, cuts: [cut], rules: rules)
            let first: DriftAnswer.Next = cut <= Self.dateDiffers ? .keepReading : .awaitQuiet
            #expect(steps == [first, .awaitQuiet], "cut at \(cut)")
            #expect(answer.quietElapsed() == .done(.matches), "cut at \(cut)")
        }
    }

    @Test func aLongerDateMatchesAtItsLastByte() throws {
        let rules = try Self.dateRules()
        let live = Self.datedAnswer("Tuesday, 02 Dec 2025 11:22:33 GMT")
        #expect(live.utf8.count == Self.datedReply.utf8.count + 4)
        for cut in Self.twoChunkCuts(live) {
            let (answer, steps) = Self.feed(Self.datedReply, live, cuts: [cut], rules: rules)
            let first: DriftAnswer.Next = cut <= Self.dateDiffers ? .keepReading : .awaitQuiet
            #expect(steps == [first, .done(.matches)], "cut at \(cut)")
            #expect(answer.quietElapsed() == .done(.matches), "cut at \(cut)")
        }
    }

    // MARK: The hint

    @Test func aChangedHTTPDateGetsAHint() throws {
        let recorded = Data("Date: Mon, 01 Dec 2025 10:00:00 GMT\r\n\r\nbody".utf8)
        let live = Data("Date: Mon, 01 Dec 2025 10:05:00 GMT\r\n\r\nbody".utf8)
        let offset = try #require(MismatchHint.firstDifference(recorded, live))
        #expect(offset == 27)
        let hint = try #require(DriftSessionHandler.volatileHint(recorded: recorded, live: live, differingAt: offset))
        #expect(hint.kind == "an HTTP date")
        #expect(hint.preset == .timestamps)
        #expect(hint.pattern == "[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")
    }

    @Test func aLengthPrefixThatChangedWithItsValueGetsNoHint() throws {
        let recorded = Data("$4\r\nbeta\r\n".utf8)
        let live = Data("$5\r\nBETA2\r\n".utf8)
        // The prefix alone looks like a number; the rule it would propose leaves the value's difference standing.
        #expect(MismatchHint(expected: recorded, actual: live, differingAt: 1)?.kind == "a number")
        #expect(DriftSessionHandler.volatileHint(recorded: recorded, live: live, differingAt: 1) == nil)
    }
}
