/// A whole DNS message (RFC 1035 4.1) decoded for display: the header, the questions, and the answer, authority
/// and additional records, summarized in a few stable lines for `tapedeck show`.
///
/// Decoding is channel-free and bounded, for bytes that may be hostile: every read is checked against the end,
/// names are read by ``DNSName`` (compression pointers only backwards, a fixed number of them), and the counts in
/// the header are trusted only as far as the bytes really hold records. A malformed message is a
/// ``DecodingError`` naming what is wrong and where, never a trap.
///
/// ```swift
/// if let message = DNSMessage(datagram) {
///     for line in message.lines { print(line) }
///     // response id 0x1a2b QR AA RD RA NOERROR: www.example.test. IN A
///     //   answer www.example.test. 300 IN A 192.0.2.1
/// }
/// ```
struct DNSMessage: Sendable, Hashable {
    /// The fixed twelve bytes that start every message (RFC 1035 4.1.1).
    struct Header: Sendable, Hashable {
        /// The transaction id that pairs a response with its query.
        var id: UInt16
        /// QR: a response, not a query.
        var isResponse: Bool
        /// The kind of query: 0 is a standard query, 4 NOTIFY, 5 UPDATE.
        var opcode: UInt8
        /// AA: the answer comes from an authority for the name.
        var isAuthoritative: Bool
        /// TC: the message was cut to fit; the client should ask again over TCP.
        var isTruncated: Bool
        /// RD: the client asks the server to recurse.
        var recursionDesired: Bool
        /// RA: the server offers recursion.
        var recursionAvailable: Bool
        /// AD: the server vouches that the answer is DNSSEC-validated (RFC 4035).
        var authenticData: Bool
        /// CD: the client asks the server not to validate (RFC 4035).
        var checkingDisabled: Bool
        /// The reserved Z bit, zero in every real message.
        var reserved: Bool
        /// The low four bits of the response code; an OPT record may carry the upper eight.
        var responseCode: UInt8
        /// How many entries each section claims to hold: question, answer, authority, additional.
        var counts: [Int]

        /// The header's length on the wire.
        static let length = 12

        /// Reads the header at the start of `message`; nil when it is shorter than a header.
        init?(_ message: [UInt8]) {
            guard message.count >= Self.length else { return nil }
            id = UInt16(message[0]) << 8 | UInt16(message[1])
            isResponse = message[2] & 0x80 != 0
            opcode = message[2] >> 3 & 0x0F
            isAuthoritative = message[2] & 0x04 != 0
            isTruncated = message[2] & 0x02 != 0
            recursionDesired = message[2] & 0x01 != 0
            recursionAvailable = message[3] & 0x80 != 0
            reserved = message[3] & 0x40 != 0
            authenticData = message[3] & 0x20 != 0
            checkingDisabled = message[3] & 0x10 != 0
            responseCode = message[3] & 0x0F
            counts = (0..<4).map { Int(message[4 + 2 * $0]) << 8 | Int(message[5 + 2 * $0]) }
        }

        /// The flags that are set, upper case as in the summary line: `QR AA RD RA`.
        var flagNames: [String] {
            let flags: [(Bool, String)] = [
                (isResponse, "QR"), (isAuthoritative, "AA"), (isTruncated, "TC"), (recursionDesired, "RD"),
                (recursionAvailable, "RA"), (authenticData, "AD"), (checkingDisabled, "CD"), (reserved, "Z"),
            ]
            return flags.filter(\.0).map(\.1)
        }

        /// The opcode's name (`QUERY`, `NOTIFY`, `UPDATE`), or `OPCODE` and the number.
        var opcodeName: String {
            switch opcode {
            case 0: "QUERY"
            case 1: "IQUERY"
            case 2: "STATUS"
            case 4: "NOTIFY"
            case 5: "UPDATE"
            case 6: "DSO"
            default: "OPCODE\(opcode)"
            }
        }
    }

    /// One entry of the question section: what is asked.
    struct Question: Sendable, Hashable, CustomStringConvertible {
        /// The name asked about.
        var name: DNSName
        /// The type asked for.
        var type: DNSRecordType
        /// The class asked in.
        var recordClass: DNSRecordClass

        /// `www.example.test. IN A`, as dig's question section shows it.
        var description: String { "\(name.presentation) \(recordClass) \(type)" }
    }

    /// The three record sections, named as the summary lines name them.
    enum Section: String, Sendable, CaseIterable {
        case answer
        case authority
        case additional
    }

    /// Why bytes are not a DNS message, and where decoding stopped.
    struct DecodingError: Error, Sendable, Hashable, CustomStringConvertible {
        /// What is wrong: `the answer record 2 is malformed or runs past the end`.
        var reason: String
        /// The offset in the message where the failing part starts.
        var offset: Int

        /// One line: `not a DNS message: the question 1 is malformed or runs past the end (at byte 12)`.
        var description: String { "not a DNS message: \(reason) (at byte \(offset))" }
    }

    /// The header.
    var header: Header
    /// The question section.
    var questions: [Question]
    /// The answer section.
    var answers: [DNSRecord]
    /// The authority section: name servers, or the SOA of a negative answer.
    var authorities: [DNSRecord]
    /// The additional section, where the OPT record of EDNS lives.
    var additionals: [DNSRecord]
    /// How many bytes follow the last record: none in a well-formed message, but shown rather than refused.
    var trailingByteCount: Int

    /// Decodes `bytes` as one whole DNS message.
    ///
    /// - Throws: ``DecodingError`` when the bytes are shorter than a header, or a question or record is malformed
    ///   or runs past the end.
    init(decoding bytes: some Collection<UInt8>) throws(DecodingError) {
        let message = Array(bytes)
        guard let header = Header(message) else {
            throw DecodingError(reason: "\(message.count) bytes are shorter than a DNS header", offset: 0)
        }
        self.header = header
        var offset = Header.length
        questions = []
        for index in 0..<header.counts[0] {
            guard let (name, end) = DNSName.read(in: message, at: offset), end + 4 <= message.count else {
                throw DecodingError(
                    reason: "the question \(index + 1) is malformed or runs past the end",
                    offset: offset
                )
            }
            questions.append(
                Question(
                    name: name,
                    type: DNSRecordType(rawValue: UInt16(message[end]) << 8 | UInt16(message[end + 1])),
                    recordClass: DNSRecordClass(rawValue: UInt16(message[end + 2]) << 8 | UInt16(message[end + 3]))
                )
            )
            offset = end + 4
        }
        var sections: [[DNSRecord]] = []
        for (section, count) in zip(Section.allCases, header.counts.dropFirst()) {
            var records: [DNSRecord] = []
            // Each pass consumes at least eleven bytes or throws, so a huge count on a short message stops early.
            for index in 0..<count {
                guard let (record, end) = DNSRecord.read(in: message, at: offset) else {
                    throw DecodingError(
                        reason: "the \(section.rawValue) record \(index + 1) is malformed or runs past the end",
                        offset: offset
                    )
                }
                records.append(record)
                offset = end
            }
            sections.append(records)
        }
        answers = sections[0]
        authorities = sections[1]
        additionals = sections[2]
        trailingByteCount = message.count - offset
    }

    /// Decodes `bytes` as one whole DNS message; nil when they are not one (see ``init(decoding:)`` for why).
    init?(_ bytes: some Collection<UInt8>) {
        guard let message = try? DNSMessage(decoding: bytes) else { return nil }
        self = message
    }

    /// The records of `section`.
    func records(in section: Section) -> [DNSRecord] {
        switch section {
        case .answer: answers
        case .authority: authorities
        case .additional: additionals
        }
    }

    /// The EDNS fields of the message's OPT record, if it has one.
    var edns: DNSRecord.EDNS? { additionals.first { $0.type == .opt }?.edns }

    /// The full response code: the header's four bits, extended by the OPT record's eight (RFC 6891 6.1.3).
    var responseCode: Int { Int(edns?.extendedResponseCode ?? 0) << 4 | Int(header.responseCode) }

    /// The response code's name (`NOERROR`, `NXDOMAIN`), or `RCODE` and the number.
    var responseCodeName: String {
        let names = [
            "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET",
            "NOTAUTH", "NOTZONE",
        ]
        switch responseCode {
        case 0..<names.count: return names[responseCode]
        case 16: return "BADVERS"
        case 23: return "BADCOOKIE"
        default: return "RCODE\(responseCode)"
        }
    }

    /// The message in a few lines: a summary of the header and questions, then one indented line per record.
    ///
    /// ```
    /// response id 0x1a2b QR AA RD RA NXDOMAIN: nothing.example.test. IN A
    ///   authority example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 1 3600 900 604800 300
    /// ```
    ///
    /// A query names its response code only when it is not NOERROR, and the opcode only when it is not QUERY;
    /// the format is meant to stay stable, so tests and people can rely on it.
    var lines: [String] {
        var words = [header.isResponse ? "response" : "query", "id", "0x" + Self.hex(header.id)]
        if header.opcode != 0 { words.append(header.opcodeName) }
        words += header.flagNames
        if header.isResponse || responseCode != 0 { words.append(responseCodeName) }
        let asked = questions.isEmpty ? "no question" : questions.map(\.description).joined(separator: ", ")
        var lines = [words.joined(separator: " ") + ": " + asked]
        for section in Section.allCases {
            for record in records(in: section) { lines.append("  \(section.rawValue) \(record.summary)") }
        }
        if trailingByteCount > 0 { lines.append("  trailing \(trailingByteCount) bytes") }
        return lines
    }

    /// Whether `bytes` look like a DNS message at all: a header with a known opcode and the reserved bit clear,
    /// at least one question, counts the bytes could hold, and questions that read with a class real messages
    /// use. Cheaper and more forgiving than decoding: the records are not read.
    static func isPlausible(_ bytes: some Collection<UInt8>) -> Bool {
        let message = Array(bytes)
        guard let header = Header(message), !header.reserved, [0, 1, 2, 4, 5, 6].contains(header.opcode),
            header.counts[0] >= 1
        else { return false }
        // A question takes at least five bytes (the root and the type and class), a record at least eleven.
        let smallest = header.counts[0] * 5 + (header.counts[1] + header.counts[2] + header.counts[3]) * 11
        guard smallest <= message.count - Header.length else { return false }
        var offset = Header.length
        for _ in 0..<header.counts[0] {
            guard let (_, end) = DNSName.read(in: message, at: offset), end + 4 <= message.count,
                DNSRecordClass(rawValue: UInt16(message[end + 2]) << 8 | UInt16(message[end + 3])).isAssigned
            else { return false }
            offset = end + 4
        }
        return true
    }

    /// Four lower-case hex digits.
    private static func hex(_ value: UInt16) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }
}
