/// Splits a DNS-over-TCP byte stream into messages (RFC 1035 4.2.2, RFC 7766 8): each message is preceded by
/// its length as two big-endian bytes, and TCP may cut the stream anywhere, inside the length or the message.
///
/// A channel-free state machine: feed it the bytes of one direction as they arrive and it hands back each message
/// once the last of its bytes is in, holding the rest. A message can be no longer than 65,535 bytes, since its
/// length is sixteen bits, so what is held is bounded by construction; no length can make it wait for more.
///
/// ```swift
/// var framer = DNSStreamFramer()
/// for chunk in chunks {
///     for message in framer.feed(chunk) { print(DNSMessage(message)?.lines ?? []) }
/// }
/// if framer.hasPendingBytes { print("the stream ended inside a message") }
/// ```
struct DNSStreamFramer: Sendable {
    /// The longest message a two-byte length can announce.
    static let maximumMessageLength = 65_535

    /// The bytes received but not yet handed back: a partial length prefix, or a prefix and part of its message.
    private var pending: [UInt8] = []

    /// A framer at the start of a stream.
    init() {}

    /// Takes the next bytes of the stream.
    ///
    /// - Returns: The messages completed by these bytes, in order, without their length prefixes; empty when
    ///   they complete none. A zero-length message is returned as an empty array: framing does not judge
    ///   content.
    mutating func feed(_ bytes: some Collection<UInt8>) -> [[UInt8]] {
        pending.append(contentsOf: bytes)
        var messages: [[UInt8]] = []
        var offset = 0
        while pending.count - offset >= 2 {
            let length = Int(pending[offset]) << 8 | Int(pending[offset + 1])
            guard pending.count - offset - 2 >= length else { break }
            messages.append(Array(pending[(offset + 2)..<(offset + 2 + length)]))
            offset += 2 + length
        }
        // One removal per feed, not per message, so a chunk of many small messages costs linear time.
        if offset > 0 { pending.removeFirst(offset) }
        return messages
    }

    /// Whether bytes are held that do not yet make a whole message; at the end of a stream, a cut-off message.
    var hasPendingBytes: Bool { !pending.isEmpty }

    /// How many bytes are held, length prefix included.
    var pendingByteCount: Int { pending.count }

    /// The bytes held, length prefix included: what was left over when a stream ended inside a message.
    var pendingBytes: [UInt8] { pending }

    /// The length of the message being received, once its two-byte prefix is in; nil between messages or with
    /// only one byte of the prefix.
    var expectedLength: Int? {
        pending.count >= 2 ? Int(pending[0]) << 8 | Int(pending[1]) : nil
    }

    /// `message` with its two-byte length in front, ready to send over TCP.
    ///
    /// - Returns: nil when the message is longer than ``maximumMessageLength``: it cannot be framed.
    static func frame(_ message: some Collection<UInt8>) -> [UInt8]? {
        guard message.count <= maximumMessageLength else { return nil }
        var framed: [UInt8] = []
        framed.reserveCapacity(2 + message.count)
        framed.append(UInt8(message.count >> 8))
        framed.append(UInt8(message.count & 0xFF))
        framed.append(contentsOf: message)
        return framed
    }
}
