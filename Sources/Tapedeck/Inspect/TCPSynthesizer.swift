import Foundation

/// Turns a recorded session back into the TCP packets a capture would have shown: a three-way handshake,
/// data in segments with correct sequence and acknowledgement numbers (each acknowledged at once, so no window
/// ever fills), FIN or RST as recorded, and IPv4 or IPv6 headers with valid checksums.
struct TCPSynthesizer {
    struct Peer {
        var address: [UInt8]
        var port: UInt16
    }

    enum Side {
        case client
        case server
    }

    /// Largest payload per segment; well under the 64 KiB an IP packet can carry.
    static let maximumSegment = 32_768

    private var framing: IPPacketFraming
    private var clientSequence: UInt32
    private var serverSequence: UInt32
    private var clientFinished = false
    private var serverFinished = false
    private(set) var reset = false
    private let emit: ([UInt8]) -> Void

    /// - Parameter emit: Receives each packet, in order.
    init(client: Peer, server: Peer, sessionID: Int64, emit: @escaping ([UInt8]) -> Void) {
        // Mixed families (a v4 client, a v6 upstream) share IPv6, with v4 addresses mapped.
        framing = IPPacketFraming(client: client, server: server)
        // Deterministic initial sequence numbers, different per session, so exports are reproducible.
        clientSequence = UInt32(truncatingIfNeeded: sessionID &* 2_654_435_761) | 1
        serverSequence = UInt32(truncatingIfNeeded: sessionID &* 40_503 &+ 0x5EED_0000) | 1
        self.emit = emit
    }

    mutating func handshake() {
        send(.client, flags: .syn, payload: [])
        clientSequence &+= 1
        send(.server, flags: [.syn, .ack], payload: [])
        serverSequence &+= 1
        send(.client, flags: .ack, payload: [])
    }

    /// The upstream refused: its answer to the SYN is a reset.
    mutating func refused() {
        send(.client, flags: .syn, payload: [])
        clientSequence &+= 1
        send(.server, flags: [.rst, .ack], payload: [], sequence: 0)
        reset = true
    }

    mutating func data(from side: Side, _ payload: Data) {
        guard !reset, !payload.isEmpty else { return }
        let bytes = [UInt8](payload)
        var offset = 0
        while offset < bytes.count {
            let segment = Array(bytes[offset..<min(offset + Self.maximumSegment, bytes.count)])
            send(side, flags: [.psh, .ack], payload: segment)
            advance(side, by: UInt32(segment.count))
            send(other(side), flags: .ack, payload: [])
            offset += segment.count
        }
    }

    mutating func finish(from side: Side) {
        guard !reset, !(side == .client ? clientFinished : serverFinished) else { return }
        send(side, flags: [.fin, .ack], payload: [])
        advance(side, by: 1)
        if side == .client { clientFinished = true } else { serverFinished = true }
        send(other(side), flags: .ack, payload: [])
    }

    mutating func abort(from side: Side) {
        guard !reset else { return }
        send(side, flags: [.rst, .ack], payload: [])
        reset = true
    }

    /// Closes whatever is still open in an orderly way: the relay closed the other side once one side ended.
    mutating func closeRemaining() {
        finish(from: .client)
        finish(from: .server)
    }

    // MARK: Packets

    struct Flags: OptionSet {
        let rawValue: UInt8
        static let fin = Flags(rawValue: 0x01)
        static let syn = Flags(rawValue: 0x02)
        static let rst = Flags(rawValue: 0x04)
        static let psh = Flags(rawValue: 0x08)
        static let ack = Flags(rawValue: 0x10)
    }

    private func other(_ side: Side) -> Side { side == .client ? .server : .client }

    private mutating func advance(_ side: Side, by count: UInt32) {
        if side == .client { clientSequence &+= count } else { serverSequence &+= count }
    }

    private mutating func send(_ side: Side, flags: Flags, payload: [UInt8], sequence: UInt32? = nil) {
        let (source, destination) =
            side == .client ? (framing.client, framing.server) : (framing.server, framing.client)
        let seq = sequence ?? (side == .client ? clientSequence : serverSequence)
        let ack: UInt32 = flags.contains(.ack) ? (side == .client ? serverSequence : clientSequence) : 0
        var tcp: [UInt8] = []
        tcp.reserveCapacity(20 + payload.count)
        tcp.appendBigEndian(source.port)
        tcp.appendBigEndian(destination.port)
        tcp.appendBigEndian(seq)
        tcp.appendBigEndian(ack)
        tcp.append(5 << 4)  // header length: 5 words, no options
        tcp.append(flags.rawValue)
        tcp.appendBigEndian(UInt16(65_535))  // window
        tcp.appendBigEndian(UInt16(0))  // checksum, below
        tcp.appendBigEndian(UInt16(0))  // urgent pointer
        tcp.append(contentsOf: payload)
        let pseudoHeader = framing.pseudoHeader(
            source.address,
            destination.address,
            transport: .tcp,
            length: tcp.count
        )
        let checksum = Self.checksum(pseudoHeader + tcp)
        tcp[16] = UInt8(checksum >> 8)
        tcp[17] = UInt8(checksum & 0xFF)
        emit(framing.header(source.address, destination.address, transport: .tcp, payloadLength: tcp.count) + tcp)
    }

    /// The Internet checksum (RFC 1071).
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum &+= UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum &+= UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(sum)
    }
}
