import Foundation

/// DNS messages decoded for people: what `tapedeck show` prints under each payload of a DNS route.
///
/// ```swift
/// DNSText.lines(of: datagram)
/// // ["response id 0x1a2b QR AA RD RA NOERROR: www.example.test. IN A",
/// //  "  answer www.example.test. 300 IN A 192.0.2.1"]
/// ```
public enum DNSText {
    /// The lines of one DNS message (a UDP datagram), or nil when the bytes are not one.
    public static func lines(of message: Data) -> [String]? {
        DNSMessage([UInt8](message))?.lines
    }

    /// Decodes one direction of DNS over TCP, where each message follows its two-byte length and a read may hold
    /// part of a message or several.
    public struct StreamDecoder: Sendable {
        private var framer = DNSStreamFramer()

        /// A decoder at the start of a stream.
        public init() {}

        /// The next bytes of the stream: the lines of each message they complete (a message that does not decode
        /// is said to be so, by its length).
        public mutating func feed(_ bytes: Data) -> [[String]] {
            framer.feed(bytes).map { message in
                DNSMessage(message)?.lines ?? ["\(message.count) bytes that are not a DNS message"]
            }
        }
    }
}
