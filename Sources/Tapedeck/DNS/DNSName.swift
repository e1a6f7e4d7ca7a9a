/// A domain name read from a DNS message (RFC 1035 3.1 and 4.1.4): its labels as sent, and where it ends in the
/// message. The one name reader of the DNS code, so the question matcher and the message decoder agree on what a
/// name is and on how hostile bytes are refused.
///
/// Compression pointers are followed at most ``maximumPointers`` times, and each must point before the labels
/// that led to it: the places read only ever move backwards, so no pointer arrangement can loop, and the work
/// is bounded by the message's size.
///
/// ```swift
/// if let (name, end) = DNSName.read(in: message, at: 12) {
///     print(name.presentation, end)  // "www.example.test.", 30
/// }
/// ```
struct DNSName: Sendable, Hashable {
    /// The labels in order, without length bytes; empty for the root.
    var labels: [[UInt8]]

    /// How many compression pointers a name may follow; real names need one or two.
    static let maximumPointers = 16
    /// The longest a name may be on the wire, length bytes and the root's zero included (RFC 1035 2.3.4).
    static let maximumLength = 255

    /// The name as the question matcher keys it: labels decoded as UTF-8, dot-separated and ending in a dot (`.`
    /// alone for the root); no escaping, since it is compared, not shown.
    var text: String {
        labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".") + "."
    }

    /// The name as dig prints it: dots between labels and at the end (`.` alone for the root), with a dot or a
    /// special character inside a label escaped by a backslash and any other unprintable byte as `\DDD`.
    var presentation: String {
        guard !labels.isEmpty else { return "." }
        var text = ""
        for label in labels {
            for byte in label { text += Self.escaped(byte, quoted: false) }
            text += "."
        }
        return text
    }

    /// One byte of a label or a character-string as dig shows it. Inside quotes only the quote and the backslash
    /// need a backslash; in a bare name the characters that zone files treat specially need one too.
    static func escaped(_ byte: UInt8, quoted: Bool) -> String {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
            return "\\" + String(UnicodeScalar(byte))
        case UInt8(ascii: "."), UInt8(ascii: ";"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "@"),
            UInt8(ascii: "$"):
            return quoted ? String(UnicodeScalar(byte)) : "\\" + String(UnicodeScalar(byte))
        case UInt8(ascii: " ") where quoted:
            return " "
        case 0x21...0x7E:
            return String(UnicodeScalar(byte))
        default:
            // Three decimal digits, as RFC 1035 5.1 and dig write them.
            let digits = String(byte)
            return "\\" + String(repeating: "0", count: 3 - digits.count) + digits
        }
    }

    /// Reads the name starting at `offset` in `message`.
    ///
    /// - Returns: The name and the offset just after it where it starts (after its first pointer, if it has
    ///   one); nil when the name runs off the message, uses a reserved label type, is longer than 255 bytes, or
    ///   follows a pointer that does not go backwards or one pointer too many.
    static func read(in message: [UInt8], at offset: Int) -> (name: DNSName, end: Int)? {
        var labels: [[UInt8]] = []
        var index = offset
        // Where the labels being read began: a pointer must land before it, so every jump goes backwards.
        var runStart = offset
        var end: Int?
        var pointers = 0
        var length = 1
        while true {
            guard index >= 0, index < message.count else { return nil }
            let byte = message[index]
            if byte & 0xC0 == 0xC0 {
                guard index + 1 < message.count, pointers < Self.maximumPointers else { return nil }
                let target = Int(byte & 0x3F) << 8 | Int(message[index + 1])
                guard target < runStart else { return nil }
                if end == nil { end = index + 2 }
                pointers += 1
                index = target
                runStart = target
                continue
            }
            // 0x40 and 0x80 are the extended and reserved label types (RFC 6891 retired the one that was used).
            guard byte & 0xC0 == 0 else { return nil }
            if byte == 0 { break }
            let count = Int(byte)
            guard index + 1 + count <= message.count else { return nil }
            length += count + 1
            guard length <= Self.maximumLength else { return nil }
            labels.append(Array(message[(index + 1)..<(index + 1 + count)]))
            index += 1 + count
        }
        return (DNSName(labels: labels), end ?? index + 1)
    }
}
