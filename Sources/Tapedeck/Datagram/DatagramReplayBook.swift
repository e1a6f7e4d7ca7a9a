import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// A UDP route's recorded flows, indexed for replay, and what live flows have used of them so far.
///
/// Shared by the route's listeners on every event loop; one lock guards what changes. Client datagrams are found
/// by their normalized bytes (``RecordedFlow/Exchange/key``); on a DNS route, queries are found by their question
/// too, whatever their transaction id.
final class DatagramReplayBook: Sendable {
    /// One exchange of one recorded flow.
    struct ExchangeReference: Sendable, Hashable {
        /// The flow's index in ``flows``.
        var flow: Int
        /// The exchange's index in the flow.
        var exchange: Int
    }

    /// A recorded answer to a DNS question.
    struct DNSAnswer: Sendable {
        /// The flow it was recorded in.
        var flow: Int
        /// That flow's session.
        var sessionID: Int64
        /// The upstream's reply, with the recorded transaction id; nil when the upstream never answered.
        var reply: [UInt8]?
        /// Where the reply spells the question's name, to be rewritten in the live query's letter case.
        var nameRange: Range<Int>?
        /// How long after the query it came.
        var delay: Int64

        /// The reply made fit for a live query (see ``DNSQuestion/answer(_:fittedTo:)``), written straight into a
        /// buffer: the hot path of DNS replay parses nothing it parsed when the tape was loaded.
        func fitted(
            to query: [UInt8],
            nameRange liveNameRange: Range<Int>,
            allocator: ByteBufferAllocator
        ) -> ByteBuffer? {
            guard let reply, reply.count >= 2, query.count >= 2 else { return nil }
            var buffer = allocator.buffer(capacity: reply.count)
            buffer.writeBytes(reply)
            buffer.setBytes(query[0..<2], at: 0)
            if let nameRange, nameRange == liveNameRange, nameRange.upperBound <= query.count {
                buffer.setBytes(query[nameRange], at: nameRange.lowerBound)
            }
            return buffer
        }
    }

    private struct State {
        /// Flows a live flow has been answered from.
        var used: [Bool]
        /// Live flows following each recorded flow now.
        var claims: [Int]
        /// The next recorded answer of each DNS question, by the question's index in ``dnsAnswers``.
        var dnsCursor: [Int]
    }

    /// The route's name.
    let route: String
    /// The recorded flows, in recording order.
    let flows: [RecordedFlow]
    /// The rules live client datagrams are normalized with.
    let rules: CompiledRules
    /// Whether queries are answered by question (a DNS route).
    let isDNS: Bool
    /// Each key's first exchange in every flow that has it, flows in recording order.
    private let firstExchanges: [Data: [ExchangeReference]]
    /// Each DNS question's recorded answers, in recording order.
    private let dnsAnswers: [[DNSAnswer]]
    /// Where each DNS question's answers are in ``dnsAnswers``.
    private let dnsQuestions: [DNSQuestion.Key: Int]
    private let state: NIOLockedValueBox<State>

    init(route: String, flows: [RecordedFlow], rules: CompiledRules, isDNS: Bool) {
        self.route = route
        self.flows = flows
        self.rules = rules
        self.isDNS = isDNS
        var firstExchanges: [Data: [ExchangeReference]] = [:]
        for (flowIndex, flow) in flows.enumerated() {
            var seen = Set<Data>()
            for (exchangeIndex, exchange) in flow.exchanges.enumerated() where seen.insert(exchange.key).inserted {
                firstExchanges[exchange.key, default: []].append(
                    ExchangeReference(flow: flowIndex, exchange: exchangeIndex)
                )
            }
        }
        self.firstExchanges = firstExchanges
        let answers = isDNS ? Self.indexAnswers(flows) : [:]
        var dnsAnswers: [[DNSAnswer]] = []
        var dnsQuestions: [DNSQuestion.Key: Int] = [:]
        for (key, recorded) in answers {
            dnsQuestions[key] = dnsAnswers.count
            dnsAnswers.append(recorded)
        }
        self.dnsAnswers = dnsAnswers
        self.dnsQuestions = dnsQuestions
        state = NIOLockedValueBox(
            State(
                used: [Bool](repeating: false, count: flows.count),
                claims: [Int](repeating: 0, count: flows.count),
                dnsCursor: [Int](repeating: 0, count: dnsAnswers.count)
            )
        )
    }

    /// Pairs every recorded query with the reply that carried its transaction id, in recording order.
    private static func indexAnswers(_ flows: [RecordedFlow]) -> [DNSQuestion.Key: [DNSAnswer]] {
        var answers: [DNSQuestion.Key: [DNSAnswer]] = [:]
        for (flowIndex, flow) in flows.enumerated() {
            for (exchangeIndex, exchange) in flow.exchanges.enumerated() {
                let query = [UInt8](exchange.request)
                guard let question = DNSQuestion(message: query) else { continue }
                // A resolver may have several queries in flight on one socket: the reply is the first later
                // datagram of the flow with the query's id and question, not merely the next datagram.
                var found: DNSAnswer?
                search: for later in flow.exchanges[exchangeIndex...] {
                    for reply in later.replies {
                        guard let payload = reply.payload.map({ [UInt8]($0) }),
                            payload.count >= DNSQuestion.headerLength,
                            payload.prefix(2).elementsEqual(query.prefix(2)), payload[2] & 0x80 != 0,
                            let answered = DNSQuestion(message: payload), answered.key == question.key
                        else { continue }
                        // The delay after the datagram it followed: the query's own, unless the reply came later.
                        found = DNSAnswer(
                            flow: flowIndex,
                            sessionID: flow.sessionID,
                            reply: payload,
                            nameRange: answered.nameRange,
                            delay: reply.delay
                        )
                        break search
                    }
                }
                answers[question.key, default: []].append(
                    found ?? DNSAnswer(flow: flowIndex, sessionID: flow.sessionID, reply: nil, nameRange: nil, delay: 0)
                )
            }
        }
        return answers
    }

    // MARK: Finding exchanges

    /// Each recorded flow's first exchange whose client datagram normalizes to `key`, in recording order.
    func firstExchanges(withKey key: Data) -> [ExchangeReference] {
        firstExchanges[key] ?? []
    }

    /// The exchange a reference names.
    func exchange(_ reference: ExchangeReference) -> RecordedFlow.Exchange {
        flows[reference.flow].exchanges[reference.exchange]
    }

    /// Picks the exchange to answer from among `references` (all for the same datagram): the live flow's own
    /// recorded flow when it is among them, else the earliest flow no live flow follows and none was answered
    /// from, else the earliest no live flow follows, else the earliest. Moves the live flow's claim to it.
    ///
    /// - Parameter current: The recorded flow the live flow followed so far, if any.
    func choose(among references: [ExchangeReference], current: Int?) -> ExchangeReference {
        state.withLockedValue { state in
            let chosen =
                references.first { $0.flow == current }
                ?? references.first { state.claims[$0.flow] == 0 && !state.used[$0.flow] }
                ?? references.first { state.claims[$0.flow] == 0 }
                ?? references[0]
            if chosen.flow != current {
                if let current { state.claims[current] -= 1 }
                state.claims[chosen.flow] += 1
            }
            state.used[chosen.flow] = true
            return chosen
        }
    }

    /// A live flow that followed recorded flow `flow` ended.
    func release(_ flow: Int) {
        state.withLockedValue { $0.claims[flow] -= 1 }
    }

    /// The next recorded answer to a DNS question: the recorded answers in order, the last one again once they
    /// run out; nil when the tape never saw the question.
    func nextAnswer(to question: DNSQuestion.Key) -> DNSAnswer? {
        // One hash, outside the lock; the lock only moves the question's cursor.
        guard let index = dnsQuestions[question] else { return nil }
        let answers = dnsAnswers[index]
        let answer = state.withLockedValue { state in
            let position = state.dnsCursor[index]
            state.dnsCursor[index] = position + 1
            let answer = answers[min(position, answers.count - 1)]
            state.used[answer.flow] = true
            return answer
        }
        return answer
    }

    // MARK: Diagnostics and the report

    /// The recorded client datagram most like `datagram` (the longest common prefix, then the closest length),
    /// and its session, for a mismatch's diagnostic. Looks at a bounded number of datagrams.
    func closest(to datagram: Data) -> (sessionID: Int64, request: Data)? {
        var best: (sessionID: Int64, request: Data, prefix: Int, lengthGap: Int)?
        var looked = 0
        for flow in flows {
            for exchange in flow.exchanges {
                looked += 1
                guard looked <= 100_000 else { break }
                let prefix = zip(exchange.request, datagram).prefix { $0 == $1 }.count
                let gap = abs(exchange.request.count - datagram.count)
                if best == nil || prefix > best!.prefix || (prefix == best!.prefix && gap < best!.lengthGap) {
                    best = (flow.sessionID, exchange.request, prefix, gap)
                }
            }
        }
        return best.map { ($0.sessionID, $0.request) }
    }

    /// The closest recorded DNS question to `question`, for a mismatch's diagnostic: same name first, then same
    /// type, then any.
    func closestQuestion(to question: DNSQuestion.Key) -> (key: DNSQuestion.Key, sessionID: Int64)? {
        let keys = dnsQuestions.keys.sorted { ($0.name, $0.type) < ($1.name, $1.type) }
        let name = question.name
        let chosen =
            keys.first { $0.name == name } ?? keys.first { $0.type == question.type } ?? keys.first
        guard let chosen, let index = dnsQuestions[chosen], let flow = dnsAnswers[index].first?.flow else { return nil }
        return (chosen, flows[flow].sessionID)
    }

    /// Recorded flows no live flow was answered from.
    var unusedSessionIDs: [Int64] {
        state.withLockedValue { state in
            flows.indices.filter { !state.used[$0] }.map { flows[$0].sessionID }
        }
    }
}
