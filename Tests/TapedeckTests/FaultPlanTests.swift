import Foundation
import Testing

@testable import Tapedeck

/// Fault files and toxics in Toxiproxy's JSON: what reads, what is refused and how it says so.
@Suite struct FaultPlanTests {
    @Test func readsTheIssuesExamplesWithPlacementBesideTheType() throws {
        let plan = try FaultPlan.parse(
            Data(
                """
                - {type: reset_peer, stream: downstream, session: 1, exchange: 2, offset: 100}
                - {type: reset_peer, stream: downstream, match: "GET", count: 2, name: twice}
                - {type: latency, route: db, attributes: {latency: 50, jitter: 5}, toxicity: 0.5}
                """.utf8
            ),
            json: false
        )
        #expect(plan.toxics.count == 3)
        let first = plan.toxics[0].toxic
        #expect(first.kind == .resetPeer && first.name == "reset_peer_downstream")
        #expect(first.placement == ToxicPlacement(session: 1, exchange: 2, offset: 100))
        #expect(plan.toxics[1].toxic.placement.match == Array("GET".utf8))
        #expect(plan.toxics[1].toxic.placement.count == 2)
        #expect(plan.toxics[2].route == "db")
        #expect(plan.toxics[2].toxic.attributes.latency == 50 && plan.toxics[2].toxic.attributes.jitter == 5)
        #expect(plan.toxics[2].toxic.toxicity == 0.5)
    }

    @Test func encodesAsToxiproxyDoesAndReadsItBack() throws {
        var attributes = ToxicAttributes()
        attributes.latency = 100
        let toxic = Toxic(kind: .latency, attributes: attributes, placement: ToxicPlacement(exchange: 3))
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(toxic)) as! [String: Any]
        #expect(json["name"] as? String == "latency_downstream")
        #expect(json["type"] as? String == "latency")
        #expect(json["stream"] as? String == "downstream")
        #expect(json["toxicity"] as? Double == 1)
        let encodedAttributes = json["attributes"] as! [String: Any]
        #expect(encodedAttributes["latency"] as? Int == 100)
        #expect(encodedAttributes["jitter"] as? Int == 0)
        #expect(encodedAttributes["exchange"] as? Int == 3)
        #expect(try JSONDecoder().decode(Toxic.self, from: JSONEncoder().encode(toxic)) == toxic)
    }

    @Test(arguments: [
        ("- {type: latncy}", "unknown toxic type 'latncy'"),
        ("- {type: latency, attributes: {latncy: 5}}", "no field 'latncy'"),
        ("- {type: latency, stream: sideways}", "unknown stream 'sideways'"),
        ("- {type: latency, attributes: {latency: -1}}", "must not be negative"),
        ("- {type: reset_peer, count: 0}", "'count' must be at least 1"),
        ("- {type: reset_peer, exchange: 0}", "'exchange' counts from 1"),
        ("- {type: reset_peer, match_regex: '('}", "not a regular expression"),
        ("- {type: latency, toxicity: 2}", "toxicity is a share from 0 to 1"),
        ("- {type: latency}\n- {type: latency}", "named twice"),
    ])
    func refusesWhatIsWrongInOneLine(file: String, message: String) throws {
        let error = try #require(throws: TapedeckError.self) {
            try FaultPlan.parse(Data(file.utf8), json: false, named: "f.yaml")
        }
        #expect(error.message.contains(message), "\(error.message)")
        #expect(error.message.contains("f.yaml"))
        #expect(!error.message.contains("\n"))
    }

    @Test func aRouteRefusesToxicsOfTheOtherTransportAndRepeatedNames() throws {
        let stream = RouteFaults(route: "tcp")
        #expect(throws: RouteFaults.ChangeError.self) { try stream.add(Toxic(kind: .loss)) }
        try stream.add(Toxic(kind: .latency))
        #expect(throws: RouteFaults.ChangeError.exists("latency_downstream")) { try stream.add(Toxic(kind: .latency)) }
        let datagrams = RouteFaults(route: "udp", isDatagram: true)
        #expect(throws: RouteFaults.ChangeError.self) { try datagrams.add(Toxic(kind: .bandwidth)) }
        try datagrams.add(Toxic(kind: .loss))
    }

    @Test func aPlanNamingNoRouteGoesOnEveryRouteItFits() throws {
        let registry = FaultRegistry(seed: 1)
        let routes = [
            Route(name: "web", upstream: try Endpoint(parsing: "127.0.0.1:80")),
            Route(name: "dns", upstream: try Endpoint(parsing: "udp:127.0.0.1:53")),
        ]
        try registry.apply(
            FaultPlan.parse(
                Data("- {type: latency}\n- {type: loss, attributes: {probability: 0.5}}".utf8),
                json: false
            ),
            to: routes
        )
        #expect(registry.faults(for: routes[0]).toxics.map(\.kind) == [.latency])
        #expect(registry.faults(for: routes[1]).toxics.map(\.kind) == [.latency, .loss])
        let error = try #require(throws: TapedeckError.self) {
            try FaultRegistry().apply(
                FaultPlan.parse(Data("- {type: latency, route: nope}".utf8), json: false),
                to: routes
            )
        }
        #expect(error.message.contains("names route 'nope'"))
    }
}
