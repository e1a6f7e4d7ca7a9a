import NIOCore

/// The question of a DNS message, read from its bytes: what replay matches a live query on (the name compared
/// case-insensitively, the type and the class), whatever the transaction id. Channel-free and bounded: the name
/// is read by ``DNSName``, which follows compression pointers only backwards and a fixed number of times.
///
/// ```swift
/// if let question = DNSQuestion(message: datagram) {
///     print(question.name, question.type)  // "Example.COM.", 1
/// }
/// ```
struct DNSQuestion: Sendable, Hashable {
    /// The name as sent, with its letter case (DNS 0x20 randomizes it), dot-separated and ending in a dot.
    var name: String
    /// The query type (1 is A, 28 is AAAA).
    var type: UInt16
    /// The query class (1 is IN).
    var queryClass: UInt16
    /// Where the question's name starts and ends in the message: the bytes to copy a letter case into.
    var nameRange: Range<Int>

    /// What two questions must share to match: the name in lower case, the type and the class.
    private(set) var key: Key

    /// A question as replay compares it: the name in wire form with ASCII letters in lower case (DNS compares
    /// names without regard to ASCII case, RFC 4343), the type and the class.
    struct Key: Sendable, Hashable {
        /// The name's labels, each after its length byte, without the final zero.
        var wireName: [UInt8]
        var type: UInt16
        var queryClass: UInt16

        init(wireName: [UInt8], type: UInt16, queryClass: UInt16) {
            self.wireName = wireName
            self.type = type
            self.queryClass = queryClass
        }

        /// A key for a dotted name, as `www.example.test.`.
        init(name: String, type: UInt16, queryClass: UInt16) {
            var wire: [UInt8] = []
            for label in name.split(separator: ".") {
                wire.append(UInt8(truncatingIfNeeded: label.utf8.count))
                wire.append(contentsOf: label.utf8.map(Key.lowercased))
            }
            self.init(wireName: wire, type: type, queryClass: queryClass)
        }

        /// The name, dotted, in lower case, ending in a dot.
        var name: String {
            var labels: [[UInt8]] = []
            var index = 0
            while index < wireName.count {
                let count = Int(wireName[index])
                labels.append(Array(wireName[(index + 1)..<min(wireName.count, index + 1 + count)]))
                index += 1 + count
            }
            return DNSName(labels: labels).presentation
        }

        /// Hashes the name's bytes at once: an array of bytes would be hashed one element at a time, which is
        /// most of the cost of a lookup in DNS replay's hot path.
        func hash(into hasher: inout Hasher) {
            wireName.withUnsafeBytes { hasher.combine(bytes: $0) }
            hasher.combine(type)
            hasher.combine(queryClass)
        }

        static func == (left: Key, right: Key) -> Bool {
            left.type == right.type && left.queryClass == right.queryClass && left.wireName == right.wireName
        }

        /// An ASCII letter in lower case; any other byte as it is.
        static func lowercased(_ byte: UInt8) -> UInt8 {
            (0x41...0x5A).contains(byte) ? byte | 0x20 : byte
        }

        /// The key of a query's first question and where its name is, read without following pointers: the
        /// fast path of DNS replay, which makes one allocation. Nil for a message it cannot read that way (a
        /// compressed question name, which queries do not use), which ``DNSQuestion/init(message:)`` then reads.
        static func ofQuery(_ message: [UInt8]) -> (key: Key, nameRange: Range<Int>)? {
            guard message.count >= headerLength, message[4] != 0 || message[5] != 0 else { return nil }
            var index = headerLength
            var wire: [UInt8] = []
            wire.reserveCapacity(64)
            while index < message.count {
                let count = Int(message[index])
                if count == 0 { break }
                guard count < 64, index + 1 + count < message.count, wire.count + count + 1 <= DNSName.maximumLength
                else { return nil }
                wire.append(UInt8(count))
                for offset in (index + 1)...(index + count) { wire.append(lowercased(message[offset])) }
                index += 1 + count
            }
            guard index + 5 <= message.count else { return nil }
            let type = UInt16(message[index + 1]) << 8 | UInt16(message[index + 2])
            let queryClass = UInt16(message[index + 3]) << 8 | UInt16(message[index + 4])
            return (Key(wireName: wire, type: type, queryClass: queryClass), headerLength..<(index + 1))
        }
    }

    /// The length of a DNS header.
    static let headerLength = 12
    /// How many compression pointers a name may follow; real names need one or two.
    static let maximumPointers = DNSName.maximumPointers

    /// Reads the first question of `message`; nil when the bytes are not a DNS message with one.
    init?(message: [UInt8]) {
        guard message.count >= Self.headerLength else { return nil }
        let questions = Int(message[4]) << 8 | Int(message[5])
        guard questions >= 1, let (name, nameEnd) = DNSName.read(in: message, at: Self.headerLength),
            nameEnd + 4 <= message.count
        else { return nil }
        self.name = name.text
        type = UInt16(message[nameEnd]) << 8 | UInt16(message[nameEnd + 1])
        queryClass = UInt16(message[nameEnd + 2]) << 8 | UInt16(message[nameEnd + 3])
        nameRange = Self.headerLength..<nameEnd
        var wire: [UInt8] = []
        for label in name.labels {
            wire.append(UInt8(label.count))
            wire.append(contentsOf: label.map(Key.lowercased))
        }
        key = Key(wireName: wire, type: type, queryClass: queryClass)
    }

    /// A recorded answer made fit for a live query: the live transaction id, and the question's name in the
    /// live query's letter case where the answer repeats it uncompressed at the same place.
    ///
    /// - Returns: nil when `answer` has no question matching `query`'s.
    static func answer(_ answer: [UInt8], fittedTo query: [UInt8]) -> [UInt8]? {
        guard let live = DNSQuestion(message: query), let recorded = DNSQuestion(message: answer),
            live.key == recorded.key
        else { return nil }
        // The one rewriting replay does, on a recorded answer whose question was read when the tape was loaded.
        let stored = DatagramReplayBook.DNSAnswer(
            flow: 0,
            sessionID: 0,
            reply: answer,
            nameRange: recorded.nameRange,
            delay: 0
        )
        return stored.fitted(to: query, nameRange: live.nameRange, allocator: ByteBufferAllocator())
            .map { Array($0.readableBytesView) }
    }

    /// A SERVFAIL response to `query`: its header (id, opcode, RD) with QR set and no records, and its question;
    /// what replay sends for a question the tape never saw, so that the client fails at once instead of waiting.
    ///
    /// - Returns: nil when `query` has no question to repeat.
    static func serverFailure(answering query: [UInt8]) -> [UInt8]? {
        guard let question = DNSQuestion(message: query) else { return nil }
        var response = Array(query[0..<(question.nameRange.upperBound + 4)])
        // QR, the query's opcode and RD; RA; rcode 2 (SERVFAIL).
        response[2] = 0x80 | (query[2] & 0x79)
        response[3] = 0x80 | 0x02
        response[4] = 0
        response[5] = 1
        for index in 6..<12 { response[index] = 0 }
        return response
    }
}
