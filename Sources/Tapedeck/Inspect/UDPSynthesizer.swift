/// Turns recorded datagrams back into the UDP packets a capture would have shown: one IPv4 or IPv6 packet per
/// datagram, in either direction between a client and an upstream, with correct lengths, a valid IPv4 header
/// checksum and a valid UDP checksum, so tshark dissects them (DNS on port 53 included) without complaint.
///
/// The datagram counterpart of ``TCPSynthesizer``: the same peers, the same sides, packets handed to a closure
/// for ``PcapngWriter``. UDP has no connection, so there is no handshake or close, only datagrams.
///
/// ```swift
/// var synthesizer = UDPSynthesizer(client: client, server: upstream) { packet, timestamp in
///     writer.writePacket(packet, timestamp: timestamp)
/// }
/// synthesizer.datagram(from: .client, query, at: sentAt)
/// synthesizer.datagram(from: .server, response, at: answeredAt)
/// ```
struct UDPSynthesizer {
    /// The largest UDP payload an IPv4 packet holds: 65,535 bytes of total length less a 20-byte IP header and
    /// the 8-byte UDP header.
    static let maximumIPv4Payload = 65_507
    /// The largest UDP payload an IPv6 packet holds without a jumbogram (RFC 2675, which no socket we record
    /// from sends): 65,535 bytes of payload length less the 8-byte UDP header.
    static let maximumIPv6Payload = 65_527

    private var framing: IPPacketFraming
    private let emit: (_ packet: [UInt8], _ timestamp: Int64) -> Void

    /// Packets between `client` and `server`, which share IPv6 when either is IPv6 (v4 addresses mapped).
    ///
    /// - Parameter emit: Receives each packet and the time it was captured (nanoseconds since 1970), in order.
    init(
        client: TCPSynthesizer.Peer,
        server: TCPSynthesizer.Peer,
        emit: @escaping (_ packet: [UInt8], _ timestamp: Int64) -> Void
    ) {
        framing = IPPacketFraming(client: client, server: server)
        self.emit = emit
    }

    /// The largest payload one packet of this synthesizer's family carries.
    var maximumPayload: Int { framing.isIPv6 ? Self.maximumIPv6Payload : Self.maximumIPv4Payload }

    /// Emits one packet carrying `payload` from `side` to the other, captured at `timestamp`.
    ///
    /// A payload longer than ``maximumPayload`` cannot be one IP packet; a real socket never delivers one, so
    /// it can only come from a damaged or crafted tape. It is cut to fit, and the packet stays self-consistent,
    /// rather than dropped: the capture still shows the datagram was there.
    ///
    /// - Returns: How many payload bytes the packet carries: all of them, or ``maximumPayload``.
    @discardableResult
    mutating func datagram(
        from side: TCPSynthesizer.Side,
        _ payload: some Collection<UInt8>,
        at timestamp: Int64
    ) -> Int {
        let (source, destination) =
            side == .client ? (framing.client, framing.server) : (framing.server, framing.client)
        let carried = min(payload.count, maximumPayload)
        let udpLength = 8 + carried
        var udp: [UInt8] = []
        udp.reserveCapacity(udpLength)
        udp.appendBigEndian(source.port)
        udp.appendBigEndian(destination.port)
        udp.appendBigEndian(UInt16(udpLength))
        udp.appendBigEndian(UInt16(0))  // checksum, below
        udp.append(contentsOf: payload.prefix(carried))
        var checksum = TCPSynthesizer.checksum(
            framing.pseudoHeader(source.address, destination.address, transport: .udp, length: udpLength) + udp
        )
        // Zero on the wire means "no checksum" (and is forbidden over IPv6): a sum of zero is sent as all ones.
        if checksum == 0 { checksum = 0xFFFF }
        udp[6] = UInt8(checksum >> 8)
        udp[7] = UInt8(checksum & 0xFF)
        emit(
            framing.header(source.address, destination.address, transport: .udp, payloadLength: udpLength) + udp,
            timestamp
        )
        return carried
    }
}
