/// One packet of the MySQL client/server protocol: a sequence number and a payload.
///
/// On the wire each packet is a three-byte little-endian payload length, the sequence number, and the payload. A
/// payload of 16 MiB - 1 bytes or more is split into packets of exactly that length followed by a shorter one (an
/// empty one when it divides evenly); ``MySQLPacketFramer`` joins them back into one message.
struct MySQLPacket: Sendable, Hashable {
    /// The sequence number of the message's first packet: 0 for a client command, counting up through a reply.
    var sequence: UInt8
    /// The whole payload, joined from its packets.
    var payload: [UInt8]
}

/// Splits one direction of a MySQL or MariaDB connection into messages (RFC-less, as the server's source and the
/// protocol documentation define it: a three-byte length, a sequence number, the payload).
///
/// A channel-free state machine: feed it bytes as they arrive, split anywhere, and it hands back each message once
/// its last byte is in, holding the rest. What it holds is bounded by the longest message it accepts; a longer one
/// makes ``feed(_:)`` throw, so that a hostile stream cannot make it buffer without limit.
///
/// ```swift
/// var framer = MySQLPacketFramer()
/// for message in try framer.feed(chunk) { print(message.sequence, message.payload.count) }
/// ```
struct MySQLPacketFramer: Sendable {
    /// The largest payload one packet carries; a packet this long is continued by the next.
    static let maximumPacketPayload = 0xFF_FFFF
    /// The longest message accepted by default: far beyond what a login or a query needs (1 GiB is the server's
    /// own ceiling, `max_allowed_packet`).
    static let defaultMaximumMessage = 64 << 20

    /// A stream this framer will not follow: a message longer than it accepts.
    struct TooLong: Error, Hashable, CustomStringConvertible {
        var length: Int
        var description: String { "a MySQL message of more than \(length) bytes" }
    }

    private let maximumMessage: Int
    private var pending: [UInt8] = []
    /// The parts of a message whose packets have been full so far.
    private var partial: (sequence: UInt8, payload: [UInt8])?

    /// - Parameter maximumMessage: The longest message accepted, joined payload.
    init(maximumMessage: Int = MySQLPacketFramer.defaultMaximumMessage) {
        self.maximumMessage = maximumMessage
    }

    /// Whether bytes are held that do not yet make a whole message.
    var hasPendingBytes: Bool { !pending.isEmpty || partial != nil }

    /// Takes the next bytes of the stream.
    ///
    /// - Returns: The messages these bytes complete, in order.
    /// - Throws: ``TooLong`` when a message would exceed the framer's maximum.
    mutating func feed(_ bytes: some Collection<UInt8>) throws -> [MySQLPacket] {
        pending.append(contentsOf: bytes)
        var messages: [MySQLPacket] = []
        var offset = 0
        while pending.count - offset >= 4 {
            let length = Int(pending[offset]) | Int(pending[offset + 1]) << 8 | Int(pending[offset + 2]) << 16
            let joined = (partial?.payload.count ?? 0) + length
            guard joined <= maximumMessage else { throw TooLong(length: maximumMessage) }
            guard pending.count - offset - 4 >= length else { break }
            let sequence = pending[offset + 3]
            let body = pending[(offset + 4)..<(offset + 4 + length)]
            offset += 4 + length
            if var continued = partial {
                continued.payload.append(contentsOf: body)
                partial = continued
            } else {
                partial = (sequence, Array(body))
            }
            // A full packet is continued by the next one; anything shorter ends the message.
            if length < Self.maximumPacketPayload, let message = partial {
                messages.append(MySQLPacket(sequence: message.sequence, payload: message.payload))
                partial = nil
            }
        }
        // One removal per feed, so a chunk of many small packets costs linear time.
        if offset > 0 { pending.removeFirst(offset) }
        return messages
    }

    /// `payload` as the packets that carry it, numbered from `sequence`.
    static func frame(_ payload: [UInt8], sequence: UInt8) -> [UInt8] {
        var framed: [UInt8] = []
        framed.reserveCapacity(payload.count + 4 * (payload.count / maximumPacketPayload + 1))
        var start = 0
        var number = sequence
        while true {
            let length = min(maximumPacketPayload, payload.count - start)
            framed += [UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length >> 16 & 0xFF), number]
            framed += payload[start..<(start + length)]
            start += length
            number &+= 1
            // A full packet needs a successor, empty if nothing is left.
            if length < maximumPacketPayload { break }
        }
        return framed
    }
}
