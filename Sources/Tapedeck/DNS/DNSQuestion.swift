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
    var key: Key { Key(name: name.lowercased(), type: type, queryClass: queryClass) }

    /// A question as replay compares it.
    struct Key: Sendable, Hashable {
        var name: String
        var type: UInt16
        var queryClass: UInt16
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
    }

    /// A recorded answer made fit for a live query: the live transaction id, and the question's name in the
    /// live query's letter case where the answer repeats it uncompressed at the same place.
    ///
    /// - Returns: nil when `answer` has no question matching `query`'s.
    static func answer(_ answer: [UInt8], fittedTo query: [UInt8]) -> [UInt8]? {
        guard let live = DNSQuestion(message: query), let recorded = DNSQuestion(message: answer),
            live.key == recorded.key, query.count >= 2
        else { return nil }
        var fitted = answer
        fitted[0] = query[0]
        fitted[1] = query[1]
        if live.nameRange == recorded.nameRange {
            for index in live.nameRange { fitted[index] = query[index] }
        }
        return fitted
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
