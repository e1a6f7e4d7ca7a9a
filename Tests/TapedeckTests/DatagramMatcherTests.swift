import Foundation
import Testing

@testable import Tapedeck

/// Choosing the recorded exchange for a live datagram, without sockets.
struct DatagramMatcherTests {
    private func flow(_ id: Int64, _ steps: [(Direction, String)]) -> [EventRecord] {
        steps.enumerated().map { index, step in
            EventRecord(
                sessionID: id,
                seq: Int64(index),
                offsetNanoseconds: Int64(index) * 1_000,
                direction: step.0,
                kind: .data,
                payload: Data(step.1.utf8)
            )
        }
    }

    private func book(_ flows: [[EventRecord]], rules: [Rule] = [], dns: Bool = false) throws -> DatagramReplayBook {
        let compiled = try CompiledRules(rules, direction: .clientToUpstream)
        return DatagramReplayBook(
            route: "r",
            flows: flows.map { RecordedFlow(sessionID: $0[0].sessionID, events: $0, rules: compiled) },
            rules: compiled,
            isDNS: dns
        )
    }

    private func replies(_ outcome: DatagramMatcher.Outcome) -> [String]? {
        guard case .answer(let exchange, _, let echoes) = outcome else { return nil }
        return exchange.replies.map {
            String(decoding: DatagramMatcher.applying(echoes, to: $0.payload ?? Data()), as: UTF8.self)
        }
    }

    @Test func concurrentFlowsWithTheSameStartFollowTheirOwnRecording() throws {
        let book = try book([
            flow(
                1,
                [
                    (.clientToUpstream, "hi"), (.upstreamToClient, "a1"), (.clientToUpstream, "next"),
                    (.upstreamToClient, "a2"),
                ]
            ),
            flow(
                2,
                [
                    (.clientToUpstream, "hi"), (.upstreamToClient, "b1"), (.clientToUpstream, "next"),
                    (.upstreamToClient, "b2"),
                ]
            ),
        ])
        var one = DatagramMatcher(book: book)
        var two = DatagramMatcher(book: book)
        #expect(replies(one.match(Data("hi".utf8))) == ["a1"])
        // The first recorded flow is claimed: the second live flow gets the other one.
        #expect(replies(two.match(Data("hi".utf8))) == ["b1"])
        #expect(replies(two.match(Data("next".utf8))) == ["b2"])
        #expect(replies(one.match(Data("next".utf8))) == ["a2"])
        #expect(book.unusedSessionIDs.isEmpty)
    }

    @Test func datagramsTheUpstreamPushedFollowTheDatagramBeforeThem() throws {
        let book = try book([
            flow(
                1,
                [
                    (.clientToUpstream, "subscribe"), (.upstreamToClient, "ok"), (.upstreamToClient, "update 1"),
                    (.upstreamToClient, "update 2"), (.clientToUpstream, "bye"),
                ]
            )
        ])
        var live = DatagramMatcher(book: book)
        #expect(replies(live.match(Data("subscribe".utf8))) == ["ok", "update 1", "update 2"])
        #expect(replies(live.match(Data("bye".utf8))) == [])
        guard case .answer(let exchange, _, _) = live.match(Data("subscribe".utf8)) else {
            Issue.record("expected an answer")
            return
        }
        // Each reply keeps its recorded delay after the datagram it followed, for --pace recorded.
        #expect(exchange.replies.map(\.delay) == [1_000, 2_000, 3_000])
    }

    @Test func narrowsToTheFlowWhoseNextDatagramMatches() throws {
        let book = try book([
            flow(
                1,
                [
                    (.clientToUpstream, "hi"), (.upstreamToClient, "x"), (.clientToUpstream, "left"),
                    (.upstreamToClient, "L"),
                ]
            ),
            flow(
                2,
                [
                    (.clientToUpstream, "hi"), (.upstreamToClient, "y"), (.clientToUpstream, "right"),
                    (.upstreamToClient, "R"),
                ]
            ),
        ])
        var live = DatagramMatcher(book: book)
        _ = live.match(Data("hi".utf8))
        #expect(replies(live.match(Data("right".utf8))) == ["R"])
        #expect(live.currentSessionID == 2)
        // A retransmission is answered again.
        #expect(replies(live.match(Data("right".utf8))) == ["R"])
    }

    @Test func aDatagramNeverRecordedIsAMismatchWithTheClosestOne() throws {
        let book = try book([flow(1, [(.clientToUpstream, "GET counter"), (.upstreamToClient, "1")])])
        var live = DatagramMatcher(book: book)
        guard case .mismatch = live.match(Data("GET countex".utf8)) else {
            Issue.record("expected a mismatch")
            return
        }
        let closest = try #require(book.closest(to: Data("GET countex".utf8)))
        #expect(closest.sessionID == 1)
        #expect(closest.request == Data("GET counter".utf8))
        #expect(book.unusedSessionIDs == [1])
    }

    @Test func volatileSpansMatchAndTheirLiveValuesAreEchoed() throws {
        let rules = [try Rule(.volatile, pattern: #"id=([0-9a-f]{8})"#)]
        let book = try book(
            [flow(1, [(.clientToUpstream, "ping id=0000abcd"), (.upstreamToClient, "pong id=0000abcd")])],
            rules: rules
        )
        var live = DatagramMatcher(book: book)
        #expect(replies(live.match(Data("ping id=1234beef".utf8))) == ["pong id=1234beef"])
    }

    @Test func repeatedDNSQuestionsGetTheRecordedAnswersInOrderThenTheLastAgain() throws {
        func query(id: UInt16, name: String) -> [UInt8] {
            var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
            for label in name.split(separator: ".") {
                bytes.append(UInt8(label.utf8.count))
                bytes.append(contentsOf: label.utf8)
            }
            bytes += [0, 0, 1, 0, 1]
            return bytes
        }
        func answer(to query: [UInt8], ttl: UInt8) -> [UInt8] {
            var bytes = query
            bytes[2] = 0x81
            bytes[3] = 0x80
            bytes[7] = 1
            bytes += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, ttl, 0, 4, 192, 0, 2, 1]
            return bytes
        }
        let first = query(id: 1, name: "www.example.test")
        let second = query(id: 2, name: "www.example.test")
        let events: [[EventRecord]] = [first, second].enumerated().map { index, query in
            [
                EventRecord(
                    sessionID: Int64(index + 1),
                    seq: 0,
                    offsetNanoseconds: 0,
                    direction: .clientToUpstream,
                    kind: .data,
                    payload: Data(query)
                ),
                EventRecord(
                    sessionID: Int64(index + 1),
                    seq: 1,
                    offsetNanoseconds: 5,
                    direction: .upstreamToClient,
                    kind: .data,
                    payload: Data(answer(to: query, ttl: UInt8(10 * (index + 1))))
                ),
            ]
        }
        let book = try book(events, dns: true)
        let key = try #require(DNSQuestion(message: first)).key
        #expect(book.nextAnswer(to: key).flatMap(\.reply).map { $0[$0.count - 7] } == 10)
        #expect(book.nextAnswer(to: key).flatMap(\.reply).map { $0[$0.count - 7] } == 20)
        #expect(book.nextAnswer(to: key).flatMap(\.reply).map { $0[$0.count - 7] } == 20)
        let other = try #require(DNSQuestion(message: query(id: 3, name: "nope.example.test"))).key
        #expect(book.nextAnswer(to: other) == nil)
        #expect(book.closestQuestion(to: other)?.key == key)

        // The live query's id and letter case go into the answer.
        let live = query(id: 0xBEEF, name: "WwW.ExAmple.test")
        let fitted = try #require(DNSQuestion.answer(answer(to: first, ttl: 10), fittedTo: live))
        #expect(fitted[0] == 0xBE && fitted[1] == 0xEF)
        #expect(DNSQuestion(message: fitted)?.name == "WwW.ExAmple.test.")
        let failure = try #require(DNSQuestion.serverFailure(answering: live))
        #expect(failure[0] == 0xBE && failure[3] & 0x0F == 2 && failure[2] & 0x80 != 0)
        #expect(DNSQuestion(message: failure)?.key == DNSQuestion(message: live)?.key)
    }
}
