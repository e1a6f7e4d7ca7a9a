import NIOCore
import Testing

@testable import Tapedeck

/// The toxics of a UDP route on one flow, without sockets: what each datagram becomes, when it is sent, and what
/// fired.
@Suite(.timeLimit(.minutes(3)))
struct DatagramFaultStateMachineTests {
    /// A flow's fault stage fed datagrams of text at times in milliseconds, collecting what it sends each way.
    struct Flow {
        var stage: DatagramFaultStateMachine
        var sent: [ToxicStream: [String]] = [:]

        init(_ faults: RouteFaults, session: Int? = nil) {
            stage = DatagramFaultStateMachine(
                faults: faults,
                session: session ?? faults.nextSessionOrdinal(),
                client: "udp:127.0.0.1:5000"
            )
        }

        static func time(_ milliseconds: Int) -> NIODeadline {
            .uptimeNanoseconds(1_000_000_000_000 + UInt64(milliseconds) * 1_000_000)
        }

        /// Feeds `text` `stream`'s way at `milliseconds`; returns what was sent at once.
        @discardableResult
        mutating func feed(_ text: String, _ stream: ToxicStream = .upstream, at milliseconds: Int = 0) -> [String] {
            var now: [String] = []
            if stage.isActive() {
                stage.receive(ByteBuffer(string: text), stream: stream, now: Self.time(milliseconds)) {
                    now.append(String(buffer: $0))
                }
            } else {
                now.append(text)
            }
            sent[stream, default: []] += now
            return now
        }

        /// Sends what is due `stream`'s way at `milliseconds`; returns it.
        @discardableResult
        mutating func due(_ stream: ToxicStream = .upstream, at milliseconds: Int) -> [String] {
            var now: [String] = []
            stage.takeDue(stream, now: Self.time(milliseconds)) { now.append(String(buffer: $0)) }
            sent[stream, default: []] += now
            return now
        }

        /// The milliseconds from the base time to the next datagram due `stream`'s way.
        func nextDue(_ stream: ToxicStream = .upstream) -> Int? {
            stage.nextDeadline(stream).map { Int(($0 - Self.time(0)).nanoseconds / 1_000_000) }
        }
    }

    static func faults(_ toxics: Toxic..., seed: UInt64 = 7) throws -> RouteFaults {
        let faults = RouteFaults(route: "udp", isDatagram: true, seed: seed)
        for toxic in toxics { try faults.add(toxic) }
        return faults
    }

    static func chance(
        _ kind: ToxicKind,
        _ probability: Double,
        correlation: Double = 0,
        stream: ToxicStream = .upstream,
        toxicity: Double = 1,
        placement: ToxicPlacement = ToxicPlacement()
    ) -> Toxic {
        var attributes = ToxicAttributes()
        attributes.probability = probability
        attributes.correlation = correlation
        return Toxic(kind: kind, stream: stream, toxicity: toxicity, attributes: attributes, placement: placement)
    }

    static func latency(_ milliseconds: Int, jitter: Int = 0, stream: ToxicStream = .upstream) -> Toxic {
        var attributes = ToxicAttributes()
        attributes.latency = milliseconds
        attributes.jitter = jitter
        return Toxic(kind: .latency, stream: stream, attributes: attributes)
    }

    static let texts = (0..<200).map { "d\($0)" }

    /// Which of ``texts`` a loss toxic lets through on a flow of order `session`, with `seed`.
    static func survivors(seed: UInt64, session: Int = 1, probability: Double = 0.5) throws -> [String] {
        var flow = Flow(try faults(chance(.loss, probability), seed: seed), session: session)
        for text in texts { flow.feed(text) }
        return flow.sent[.upstream] ?? []
    }
}

// MARK: - No toxics

extension DatagramFaultStateMachineTests {
    @Test func aRouteWithoutToxicsIsInactiveUntilOneIsAdded() throws {
        let faults = try Self.faults()
        var flow = Flow(faults)
        let before = flow.stage.isActive()
        #expect(!before)
        try faults.add(Self.chance(.loss, 1))
        let with = flow.stage.isActive()
        #expect(with)
        #expect(flow.feed("x").isEmpty)
        try faults.remove("loss_upstream")
        let after = flow.stage.isActive()
        #expect(!after)
        #expect(flow.feed("y") == ["y"])
    }

    @Test func streamToxicsAreNeverOnAUDPRouteAndDatagramOnesAreRefusedOnAStream() throws {
        let faults = try Self.faults()
        #expect(throws: RouteFaults.ChangeError.self) { try faults.add(Toxic(kind: .resetPeer)) }
        let stream = RouteFaults(route: "tcp")
        #expect(throws: RouteFaults.ChangeError.self) { try stream.add(Self.chance(.loss, 1)) }
    }
}

// MARK: - Loss

extension DatagramFaultStateMachineTests {
    @Test func lossWithProbabilityOneDropsEveryDatagramItsWayAndFiresForEach() throws {
        let faults = try Self.faults(Self.chance(.loss, 1))
        var flow = Flow(faults)
        for index in 0..<5 { flow.feed("up\(index)", .upstream, at: index) }
        for index in 0..<3 { flow.feed("down\(index)", .downstream, at: index) }
        #expect(flow.sent[.upstream] == [])
        #expect(flow.sent[.downstream] == ["down0", "down1", "down2"])
        let firings = flow.stage.takeFirings()
        #expect(firings.count == 5)
        #expect(firings.map(\.isFirstInFlow) == [true, false, false, false, false])
        #expect(firings.map(\.fired.exchange) == [1, 2, 3, 4, 5])
        #expect(firings.allSatisfy { $0.fired.route == "udp" && $0.fired.toxic == "loss_upstream" })
        #expect(firings.allSatisfy { $0.fired.type == "loss" && $0.fired.stream == "upstream" })
        #expect(firings.allSatisfy { $0.fired.session == 1 && $0.fired.client == "udp:127.0.0.1:5000" })
        #expect(faults.log.total == 5)
        let none = flow.stage.takeFirings()
        #expect(none.isEmpty)
    }

    @Test func lossWithProbabilityZeroDropsNothingAndFiresNothing() throws {
        let faults = try Self.faults(Self.chance(.loss, 0), Self.chance(.loss, 0, correlation: 1).named("other"))
        var flow = Flow(faults)
        for text in Self.texts { flow.feed(text) }
        #expect(flow.sent[.upstream] == Self.texts)
        #expect(faults.log.total == 0)
    }

    @Test func lossDropsAboutItsProbabilityAndTheSameSeedDropsTheSameDatagrams() throws {
        let first = try Self.survivors(seed: 7)
        #expect((70...130).contains(first.count), "\(first.count) of 200 passed")
        #expect(try Self.survivors(seed: 7) == first)
        #expect(try Self.survivors(seed: 8) != first)
        // Another flow of the same route draws its own.
        #expect(try Self.survivors(seed: 7, session: 2) != first)
    }

    @Test func correlationMakesLossesComeInBurstsAndKeepsTheirShare() throws {
        func bursts(correlation: Double) throws -> (share: Double, meanBurst: Double) {
            var flow = Flow(try Self.faults(Self.chance(.loss, 0.3, correlation: correlation)))
            var lost: [Bool] = []
            for index in 0..<20_000 { lost.append(flow.feed("\(index)").isEmpty) }
            var runs: [Int] = []
            var run = 0
            for isLost in lost {
                if isLost {
                    run += 1
                } else if run > 0 {
                    runs.append(run)
                    run = 0
                }
            }
            let share = Double(lost.filter { $0 }.count) / Double(lost.count)
            return (share, Double(runs.reduce(0, +)) / Double(max(runs.count, 1)))
        }
        let independent = try bursts(correlation: 0)
        let correlated = try bursts(correlation: 0.8)
        #expect(abs(independent.share - 0.3) < 0.03, "\(independent)")
        #expect(abs(correlated.share - 0.3) < 0.05, "\(correlated)")
        // Independent runs average 1 / (1 - 0.3) ≈ 1.4; with 0.8, 1 / (1 - (0.8 + 0.2 × 0.3)) ≈ 7.
        #expect(independent.meanBurst < 1.7, "\(independent)")
        #expect(correlated.meanBurst > 4, "\(correlated)")
    }

    @Test func fullCorrelationRepeatsTheFirstDatagramsFate() throws {
        for seed in UInt64(0)..<20 {
            var flow = Flow(try Self.faults(Self.chance(.loss, 0.5, correlation: 1), seed: seed))
            for text in Self.texts.prefix(20) { flow.feed(text) }
            let passed = flow.sent[.upstream]?.count ?? 0
            #expect(passed == 0 || passed == 20, "seed \(seed): \(passed)")
        }
    }

    @Test func toxicityIsDrawnPerFlowFromTheSeed() throws {
        let faults = try Self.faults(Self.chance(.loss, 1, toxicity: 0.5))
        var faulted: [Bool] = []
        for session in 1...100 {
            var flow = Flow(faults, session: session)
            faulted.append(flow.feed("x").isEmpty)
        }
        #expect((25...75).contains(faulted.filter { $0 }.count))
        let again = try Self.faults(Self.chance(.loss, 1, toxicity: 0.5))
        let repeated = (1...100).map { session in
            var flow = Flow(again, session: session)
            return flow.feed("x").isEmpty
        }
        #expect(repeated == faulted)
        var never = Flow(try Self.faults(Self.chance(.loss, 1, toxicity: 0)))
        #expect(never.feed("x") == ["x"])
    }
}

// MARK: - Duplicate, reorder, latency

extension DatagramFaultStateMachineTests {
    @Test func duplicateWithProbabilityOneSendsEachDatagramTwiceInOrder() throws {
        let faults = try Self.faults(Self.chance(.duplicate, 1, stream: .downstream))
        var flow = Flow(faults)
        #expect(flow.feed("q1") == ["q1"])
        #expect(flow.feed("a", .downstream) == ["a", "a"])
        #expect(flow.feed("b", .downstream) == ["b", "b"])
        #expect(faults.log.total == 2)
    }

    @Test func duplicateAboutItsProbability() throws {
        var flow = Flow(try Self.faults(Self.chance(.duplicate, 0.25)))
        for text in Self.texts { flow.feed(text) }
        #expect((225...275).contains(flow.sent[.upstream]?.count ?? 0), "\(flow.sent[.upstream]?.count ?? 0)")
    }

    @Test func reorderLetsTheNextDatagramOvertakeTheHeldOne() throws {
        let faults = try Self.faults(Self.chance(.reorder, 1))
        var flow = Flow(faults)
        #expect(flow.feed("1", at: 0) == [])
        #expect(flow.feed("2", at: 1) == ["2", "1"])
        #expect(flow.feed("3", at: 2) == [])
        #expect(flow.feed("4", at: 3) == ["4", "3"])
        #expect(flow.sent[.upstream] == ["2", "1", "4", "3"])
        // Only the held datagrams are firings: the overtaking ones pass as they are.
        #expect(faults.log.total == 2)
    }

    @Test func aHeldDatagramGoesAfterItsBoundWhenNoNextComes() throws {
        var flow = Flow(try Self.faults(Self.chance(.reorder, 1)))
        #expect(flow.feed("1", at: 0) == [])
        #expect(flow.nextDue() == 10)
        #expect(flow.due(at: 9) == [])
        #expect(flow.due(at: 10) == ["1"])
        #expect(flow.nextDue() == nil)
    }

    @Test func latencyDelaysEachDatagramAndKeepsTheirOrder() throws {
        let faults = try Self.faults(Self.latency(50, stream: .downstream))
        var flow = Flow(faults)
        #expect(flow.feed("q", .upstream, at: 0) == ["q"])
        #expect(flow.feed("a", .downstream, at: 0) == [])
        #expect(flow.feed("b", .downstream, at: 0) == [])
        #expect(flow.feed("c", .downstream, at: 5) == [])
        #expect(flow.nextDue(.downstream) == 50)
        #expect(flow.due(.downstream, at: 49) == [])
        #expect(flow.due(.downstream, at: 50) == ["a", "b"])
        #expect(flow.nextDue(.downstream) == 55)
        #expect(flow.due(.downstream, at: 60) == ["c"])
        #expect(flow.nextDue(.downstream) == nil)
        #expect(faults.log.total == 3)
    }

    @Test func jitterKeepsEachDelayWithinItsBounds() throws {
        var flow = Flow(try Self.faults(Self.latency(20, jitter: 5)))
        var delays = Set<Int>()
        for index in 0..<100 {
            let start = index * 100
            #expect(flow.feed("\(index)", at: start) == [])
            let due = try #require(flow.nextDue())
            delays.insert(due - start)
            #expect(flow.due(at: due) == ["\(index)"])
        }
        #expect(delays.isSubset(of: Set(15...25)), "\(delays.sorted())")
        #expect(delays.count > 5)
    }

    @Test func aDatagramNoToxicDelaysDoesNotWaitBehindDelayedOnesOfTheOtherWay() throws {
        var flow = Flow(try Self.faults(Self.latency(50, stream: .downstream)))
        #expect(flow.feed("a", .downstream, at: 0) == [])
        #expect(flow.feed("q", .upstream, at: 1) == ["q"])
    }

    @Test func removingLatencyLetsNewDatagramsGoWhileTheDelayedOnesKeepTheirTime() throws {
        let faults = try Self.faults(Self.latency(50))
        var flow = Flow(faults)
        #expect(flow.feed("slow", at: 0) == [])
        try faults.remove("latency_upstream")
        let holding = flow.stage.isActive()
        #expect(holding)
        #expect(flow.feed("fast", at: 1) == ["fast"])
        #expect(flow.due(at: 50) == ["slow"])
        let after = flow.stage.isActive()
        #expect(!after)
    }

    @Test func toxicsActInTheOrderTheyWereAdded() throws {
        // Duplicated, then each copy delayed.
        var flow = Flow(try Self.faults(Self.chance(.duplicate, 1), Self.latency(10)))
        #expect(flow.feed("x", at: 0) == [])
        #expect(flow.due(at: 10) == ["x", "x"])
    }
}

// MARK: - Down, placement and count

extension DatagramFaultStateMachineTests {
    @Test func aRouteDownDropsEverythingAndItsToxicFiresOncePerFlow() throws {
        let faults = try Self.faults(Toxic(kind: .down))
        var flow = Flow(faults)
        #expect(flow.feed("a") == [])
        #expect(flow.feed("b", .downstream) == [])
        let firings = flow.stage.takeFirings()
        #expect(firings.map(\.fired.type) == ["down"])
        try faults.remove("down_downstream")
        #expect(flow.feed("c") == ["c"])
        faults.setEnabled(false)
        #expect(flow.feed("d") == [])
        #expect(faults.log.total == 1)
    }

    @Test func countFiresThatManyTimesThenTheToxicIsGone() throws {
        let faults = try Self.faults(Self.chance(.loss, 1, placement: ToxicPlacement(count: 2)))
        var flow = Flow(faults)
        #expect(flow.feed("1") == [])
        #expect(flow.feed("2") == [])
        #expect(flow.feed("3") == ["3"])
        #expect(faults.toxics.isEmpty)
        #expect(faults.log.fired.map(\.exchange) == [1, 2])
        // A count is the route's, not the flow's.
        let shared = try Self.faults(Self.chance(.loss, 1, placement: ToxicPlacement(count: 2)))
        var first = Flow(shared)
        var second = Flow(shared)
        #expect(first.feed("1") == [])
        #expect(second.feed("1") == [])
        #expect(first.feed("2") == ["2"])
    }

    @Test func sessionPinsAToxicToTheNthFlow() throws {
        let faults = try Self.faults(Self.chance(.loss, 1, placement: ToxicPlacement(session: 2)))
        var first = Flow(faults)
        var second = Flow(faults)
        var third = Flow(faults)
        #expect(first.feed("x") == ["x"])
        #expect(second.feed("x") == [])
        #expect(third.feed("x") == ["x"])
        #expect(faults.log.fired.map(\.session) == [2])
    }

    @Test func exchangePinsToTheNthClientDatagramAndTheRepliesAfterIt() throws {
        let faults = try Self.faults(
            Self.chance(.loss, 1, stream: .downstream, placement: ToxicPlacement(exchange: 2)),
            Self.chance(.loss, 1, stream: .upstream, placement: ToxicPlacement(exchange: 3))
        )
        var flow = Flow(faults)
        #expect(flow.feed("early", .downstream) == ["early"])
        #expect(flow.feed("q1") == ["q1"])
        #expect(flow.feed("a1", .downstream) == ["a1"])
        #expect(flow.feed("q2") == ["q2"])
        #expect(flow.feed("a2", .downstream) == [])
        #expect(flow.feed("a2'", .downstream) == [])
        #expect(flow.feed("q3") == [])
        #expect(flow.feed("a3", .downstream) == ["a3"])
        #expect(
            faults.log.fired.map { "\($0.toxic)@\($0.exchange)" } == [
                "loss_downstream@2", "loss_downstream@2", "loss_upstream@3",
            ]
        )
    }

    @Test func matchActsOnTheExchangesWhoseClientDatagramHoldsTheBytes() throws {
        let faults = try Self.faults(
            Self.chance(.loss, 1, stream: .downstream, placement: ToxicPlacement(match: Array("GET".utf8)))
        )
        var flow = Flow(faults)
        #expect(flow.feed("x", .downstream) == ["x"])
        #expect(flow.feed("GET /a") == ["GET /a"])
        #expect(flow.feed("reply a", .downstream) == [])
        #expect(flow.feed("PUT /b") == ["PUT /b"])
        #expect(flow.feed("reply b", .downstream) == ["reply b"])
        #expect(flow.feed("then GET /c") == ["then GET /c"])
        #expect(flow.feed("reply c", .downstream) == [])
        #expect(faults.log.fired.map(\.exchange) == [1, 3])
    }

    @Test func matchRegexActsOnTheExchangesItMatches() throws {
        let faults = try Self.faults(
            Self.chance(.loss, 1, stream: .upstream, placement: ToxicPlacement(matchRegex: "^q[0-9]+$"))
        )
        var flow = Flow(faults)
        #expect(flow.feed("q12") == [])
        #expect(flow.feed("q") == ["q"])
        #expect(flow.feed("\u{00FF}q1") == ["\u{00FF}q1"])
    }

    @Test func offsetSparesTheDatagramsBeforeTheByte() throws {
        let faults = try Self.faults(
            Self.chance(.loss, 1, stream: .downstream, placement: ToxicPlacement(offset: 10)),
            Self.chance(.loss, 1, stream: .upstream, placement: ToxicPlacement(exchange: 1, offset: 4)).named("x")
        )
        var flow = Flow(faults)
        // Upstream, in exchange 1 only: its single datagram holds bytes 0 to 4.
        #expect(flow.feed("12345") == [])
        // Downstream, in the flow's stream: bytes 0-3 and 4-7 pass, 8-11 holds byte 10.
        #expect(flow.feed("aaaa", .downstream) == ["aaaa"])
        #expect(flow.feed("bbbb", .downstream) == ["bbbb"])
        #expect(flow.feed("cccc", .downstream) == [])
        #expect(flow.feed("dddd", .downstream) == [])
        #expect(faults.log.fired.map(\.offset) == [0, 8, 12])
        #expect(flow.feed("6789") == ["6789"])
    }

    @Test func recordedSessionPinsToTheFlowServedFromIt() throws {
        let faults = try Self.faults(Self.chance(.loss, 1, placement: ToxicPlacement(recordedSession: 4)))
        var flow = Flow(faults)
        #expect(flow.feed("a") == ["a"])
        flow.stage.recordedSession = 4
        #expect(flow.feed("b") == [])
        #expect(faults.log.fired.first?.recordedSession == 4)
    }
}

extension Toxic {
    /// This toxic under another name.
    func named(_ name: String) -> Toxic {
        var copy = self
        copy.name = name
        return copy
    }
}

// MARK: - Limits

extension DatagramFaultStateMachineTests {
    @Test func aFlowHoldsABoundedNumberOfDelayedDatagramsAndDropsTheRest() throws {
        var flow = Flow(try Self.faults(Self.latency(1_000)))
        let limit = DatagramTimeline.limit.count
        for index in 0..<(limit + 5) { flow.feed("\(index)", at: 0) }
        let dropped = flow.stage.takeOverflow()
        #expect(dropped == 5)
        #expect(flow.due(at: 1_000).count == limit)
        let none = flow.stage.takeOverflow()
        #expect(none == 0)
    }
}
