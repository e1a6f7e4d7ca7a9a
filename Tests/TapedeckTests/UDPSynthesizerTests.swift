import Foundation
import Testing

@testable import Tapedeck

/// Datagrams turned into UDP packets a capture would show: right lengths and checksums, both directions, both
/// families, and a pcapng of DNS that tshark dissects.
struct UDPSynthesizerTests {
    static let client = TCPSynthesizer.Peer(address: [192, 0, 2, 10], port: 40_000)
    static let resolver = TCPSynthesizer.Peer(address: [192, 0, 2, 53], port: 53)
    static let client6 = TCPSynthesizer.Peer(
        address: [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [10],
        port: 40_001
    )
    static let resolver6 = TCPSynthesizer.Peer(
        address: [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [53],
        port: 53
    )

    /// The packets a synthesizer emits for `datagrams`, with their timestamps.
    static func packets(
        client: TCPSynthesizer.Peer,
        server: TCPSynthesizer.Peer,
        _ datagrams: [(TCPSynthesizer.Side, [UInt8])]
    ) -> [(packet: [UInt8], timestamp: Int64)] {
        var packets: [(packet: [UInt8], timestamp: Int64)] = []
        var synthesizer = UDPSynthesizer(client: client, server: server) { packets.append(($0, $1)) }
        for (index, (side, payload)) in datagrams.enumerated() {
            synthesizer.datagram(from: side, payload, at: 1_800_000_000_000_000_000 + Int64(index) * 1_000_000)
        }
        return packets
    }

    static func uint16(_ bytes: [UInt8], at offset: Int) -> Int { Int(bytes[offset]) << 8 | Int(bytes[offset + 1]) }

    /// Whether the UDP checksum of `packet` verifies: the sum over pseudo-header and datagram, checksum included,
    /// is all ones.
    static func udpChecksumVerifies(_ packet: [UInt8]) -> Bool {
        let isIPv6 = packet[0] >> 4 == 6
        let headerLength = isIPv6 ? 40 : 20
        let udp = Array(packet[headerLength...])
        let addresses = isIPv6 ? Array(packet[8..<40]) : Array(packet[12..<20])
        var pseudo = addresses
        if isIPv6 {
            pseudo.appendBigEndian(UInt32(udp.count))
            pseudo += [0, 0, 0, 17]
        } else {
            pseudo += [0, 17]
            pseudo.appendBigEndian(UInt16(udp.count))
        }
        return TCPSynthesizer.checksum(pseudo + udp) == 0
    }

    @Test func anIPv4DatagramHasRightLengthsAndChecksumsInBothDirections() throws {
        let packets = Self.packets(
            client: Self.client,
            server: Self.resolver,
            [(.client, DNSMessageTests.query), (.server, DNSMessageTests.negativeResponse), (.client, [1, 2, 3])]
        )
        try #require(packets.count == 3)
        let query = packets[0].packet
        #expect(query.count == 20 + 8 + DNSMessageTests.query.count)
        #expect(query[0] == 0x45)
        #expect(Self.uint16(query, at: 2) == query.count, "total length")
        #expect(query[9] == 17, "protocol: UDP")
        #expect(TCPSynthesizer.checksum(Array(query[..<20])) == 0, "IPv4 header checksum")
        #expect(Array(query[12..<20]) == Self.client.address + Self.resolver.address)
        #expect(Self.uint16(query, at: 20) == 40_000)
        #expect(Self.uint16(query, at: 22) == 53)
        #expect(Self.uint16(query, at: 24) == 8 + DNSMessageTests.query.count, "UDP length")
        #expect(Array(query[28...]) == DNSMessageTests.query)
        #expect(Self.udpChecksumVerifies(query))

        let response = packets[1].packet
        #expect(Array(response[12..<20]) == Self.resolver.address + Self.client.address)
        #expect(Self.uint16(response, at: 20) == 53)
        #expect(Self.uint16(response, at: 22) == 40_000)
        #expect(Self.udpChecksumVerifies(response))
        #expect(Self.uint16(response, at: 4) != Self.uint16(query, at: 4), "each packet its own identification")
        #expect(Self.udpChecksumVerifies(packets[2].packet), "an odd length is padded for the sum")
        #expect(packets.map(\.timestamp) == [0, 1, 2].map { 1_800_000_000_000_000_000 + $0 * 1_000_000 })
    }

    @Test func anIPv6DatagramAndAMixedPairUseIPv6() throws {
        let packets = Self.packets(client: Self.client6, server: Self.resolver6, [(.client, [9, 8, 7, 6, 5])])
        let packet = try #require(packets.first?.packet)
        #expect(packet.count == 40 + 8 + 5)
        #expect(packet[0] >> 4 == 6)
        #expect(Self.uint16(packet, at: 4) == 8 + 5, "payload length")
        #expect(packet[6] == 17, "next header: UDP")
        #expect(Array(packet[8..<24]) == Self.client6.address)
        #expect(Self.udpChecksumVerifies(packet))

        // A v4 client and a v6 upstream: one family, the v4 address mapped.
        let mixed = try #require(Self.packets(client: Self.client, server: Self.resolver6, [(.server, [1])]).first)
        #expect(mixed.packet[0] >> 4 == 6)
        #expect(Array(mixed.packet[24..<40]) == [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + Self.client.address)
        #expect(Self.udpChecksumVerifies(mixed.packet))
    }

    @Test func aSumOfZeroIsSentAsAllOnes() throws {
        // Find the two payload bytes that make the one's-complement sum all ones, so the checksum would be zero.
        let probe = try #require(Self.packets(client: Self.client, server: Self.resolver, [(.client, [0, 0])]).first)
        let sum = Self.uint16(probe.packet, at: 26)
        let packet = try #require(
            Self.packets(client: Self.client, server: Self.resolver, [(.client, [UInt8(sum >> 8), UInt8(sum & 0xFF)])])
                .first?.packet
        )
        #expect(Self.uint16(packet, at: 26) == 0xFFFF)
        #expect(Self.udpChecksumVerifies(packet))
    }

    @Test func theLargestDatagramsFitAndLargerOnesAreCut() throws {
        var packets: [[UInt8]] = []
        var v4 = UDPSynthesizer(client: Self.client, server: Self.resolver) { packet, _ in packets.append(packet) }
        #expect(v4.datagram(from: .client, [UInt8](repeating: 1, count: 65_507), at: 0) == 65_507)
        #expect(v4.datagram(from: .server, [UInt8](repeating: 1, count: 70_000), at: 0) == 65_507)
        #expect(packets.map(\.count) == [65_535, 65_535])
        #expect(packets.allSatisfy { Self.uint16($0, at: 2) == 65_535 && Self.uint16($0, at: 24) == 65_515 })
        #expect(packets.allSatisfy(Self.udpChecksumVerifies))

        packets = []
        var v6 = UDPSynthesizer(client: Self.client6, server: Self.resolver6) { packet, _ in packets.append(packet) }
        #expect(v6.maximumPayload == 65_527)
        #expect(v6.datagram(from: .client, [UInt8](repeating: 2, count: 65_528), at: 0) == 65_527)
        #expect(packets.map(\.count) == [40 + 65_535])
        #expect(packets.allSatisfy { Self.uint16($0, at: 4) == 65_535 && Self.uint16($0, at: 44) == 65_535 })
        #expect(packets.allSatisfy(Self.udpChecksumVerifies))
    }

    /// Writes a capture of a DNS exchange over IPv4 and IPv6 plus one other datagram; returns its path.
    ///
    /// - Parameter damaged: Whether to flip a payload byte of every packet after its checksum was computed, to
    ///   show that the checks below would notice a wrong checksum.
    static func writeCapture(in directory: TemporaryDirectory, damaged: Bool = false) throws -> String {
        let path = directory.path(damaged ? "damaged.pcapng" : "dns.pcapng")
        try OutputFile.write(to: path) { output in
            let writer = PcapngWriter(output: output)
            let emit: ([UInt8], Int64) -> Void = { packet, timestamp in
                var packet = packet
                if damaged { packet[packet.count - 1] ^= 0x01 }
                writer.writePacket(packet, timestamp: timestamp)
            }
            var v4 = UDPSynthesizer(client: Self.client, server: Self.resolver, emit: emit)
            v4.datagram(from: .client, DNSMessageTests.query, at: 1_800_000_000_000_000_000)
            v4.datagram(from: .server, DNSMessageTests.negativeResponse, at: 1_800_000_000_001_000_000)
            var v6 = UDPSynthesizer(client: Self.client6, server: Self.resolver6, emit: emit)
            v6.datagram(from: .client, DNSMessageTests.query, at: 1_800_000_000_002_000_000)
            var other = UDPSynthesizer(
                client: Self.client,
                server: .init(address: [192, 0, 2, 99], port: 9_999),
                emit: emit
            )
            other.datagram(from: .client, Array("not dns".utf8), at: 1_800_000_000_003_000_000)
        }
        return path
    }

    @Test(.enabled(if: ExportTests.tshark != nil, "needs tshark"), .timeLimit(.minutes(3)))
    func tsharkDissectsTheDNSInsideWithValidChecksums() async throws {
        let tshark = try #require(ExportTests.tshark)
        let directory = try TemporaryDirectory()
        let capture = try Self.writeCapture(in: directory)
        let damaged = try Self.writeCapture(in: directory, damaged: true)
        let warningFilter = [
            "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
            "-Y", "_ws.expert.severity >= warning || _ws.malformed",
        ]
        // tshark takes a second or two: on a thread of its own, not on a cooperative thread other suites time.
        let (fields, warnings, damagedWarnings) = try await offThePool {
            let fields = try ChildProcess.run(
                [
                    tshark, "-r", capture, "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport", "-e",
                    "dns.qry.name",
                ],
                timeout: .seconds(30)
            )
            let warnings = try ChildProcess.run([tshark, "-r", capture] + warningFilter, timeout: .seconds(30))
            let damagedWarnings = try ChildProcess.run([tshark, "-r", damaged] + warningFilter, timeout: .seconds(30))
            return (fields, warnings, damagedWarnings)
        }
        #expect(fields.status == 0)
        let rows = fields.output.split(separator: "\n").filter { !$0.contains("Running as user") }
        #expect(
            rows == [
                "40000\t53\twww.example.test",
                "53\t40000\tnothing.example.test",
                "40001\t53\twww.example.test",
                "40000\t9999\t",
            ]
        )
        #expect(warnings.status == 0)
        #expect(
            warnings.output.split(separator: "\n").filter { !$0.contains("Running as user") }.isEmpty,
            "\(warnings.output)"
        )
        // The same filter finds every packet of the damaged capture: the check above is not vacuous.
        #expect(damagedWarnings.output.split(separator: "\n").filter { !$0.contains("Running as user") }.count == 4)
    }
}
