/// The IP layer of synthesized packets, shared by the TCP and UDP synthesizers: one address family for both
/// peers, IPv4 or IPv6 headers with the right lengths and header checksum, and the pseudo-header that TCP and UDP
/// checksums cover.
///
/// Mixed families (a v4 client, a v6 upstream) share IPv6, with the v4 address mapped (`::ffff:192.0.2.1`): a
/// packet has one family, and mapping is how a dual-stack socket saw the v4 peer anyway.
struct IPPacketFraming {
    /// The two peers' addresses, both 4 bytes or both 16.
    let client: TCPSynthesizer.Peer
    /// The upstream's address, in the same family as the client's.
    let server: TCPSynthesizer.Peer
    /// Whether packets are IPv6.
    let isIPv6: Bool
    /// The next IPv4 identification; counted so every packet of an export differs, as a real stack's would.
    private var identification: UInt16 = 1

    /// The IP protocol numbers the synthesizers carry.
    enum TransportProtocol: UInt8 {
        case tcp = 6
        case udp = 17
    }

    /// Framing for packets between `client` and `server`, widened to IPv6 when either is IPv6.
    init(client: TCPSynthesizer.Peer, server: TCPSynthesizer.Peer) {
        let isIPv6 = client.address.count == 16 || server.address.count == 16
        func widen(_ peer: TCPSynthesizer.Peer) -> TCPSynthesizer.Peer {
            guard isIPv6, peer.address.count == 4 else { return peer }
            return .init(address: [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + peer.address, port: peer.port)
        }
        self.isIPv6 = isIPv6
        self.client = widen(client)
        self.server = widen(server)
    }

    /// The length of the IP header this framing writes: 40 bytes for IPv6, 20 for IPv4 (no options).
    var headerLength: Int { isIPv6 ? 40 : 20 }

    /// The IP header for a packet of `payloadLength` bytes of `transport` from `source` to `destination`.
    ///
    /// The caller keeps `payloadLength` within what the 16-bit length field holds: 65,515 bytes after an IPv4
    /// header, 65,535 after an IPv6 one (no jumbograms).
    mutating func header(
        _ source: [UInt8],
        _ destination: [UInt8],
        transport: TransportProtocol,
        payloadLength: Int
    ) -> [UInt8] {
        var header: [UInt8] = []
        if isIPv6 {
            header.appendBigEndian(UInt32(0x6000_0000))
            header.appendBigEndian(UInt16(truncatingIfNeeded: payloadLength))
            header.append(transport.rawValue)  // next header
            header.append(64)  // hop limit
            header.append(contentsOf: source)
            header.append(contentsOf: destination)
            return header
        }
        header.append(0x45)
        header.append(0)
        header.appendBigEndian(UInt16(truncatingIfNeeded: 20 + payloadLength))
        header.appendBigEndian(identification)
        identification &+= 1
        header.appendBigEndian(UInt16(0x4000))  // don't fragment
        header.append(64)  // TTL
        header.append(transport.rawValue)
        header.appendBigEndian(UInt16(0))
        header.append(contentsOf: source)
        header.append(contentsOf: destination)
        let checksum = TCPSynthesizer.checksum(header)
        header[10] = UInt8(checksum >> 8)
        header[11] = UInt8(checksum & 0xFF)
        return header
    }

    /// The pseudo-header a TCP or UDP checksum covers (RFC 793, RFC 768, RFC 8200 8.1).
    func pseudoHeader(
        _ source: [UInt8],
        _ destination: [UInt8],
        transport: TransportProtocol,
        length: Int
    ) -> [UInt8] {
        var header = source + destination
        if isIPv6 {
            header.appendBigEndian(UInt32(length))
            header.append(contentsOf: [0, 0, 0, transport.rawValue])
        } else {
            header.append(0)
            header.append(transport.rawValue)
            header.appendBigEndian(UInt16(truncatingIfNeeded: length))
        }
        return header
    }
}
