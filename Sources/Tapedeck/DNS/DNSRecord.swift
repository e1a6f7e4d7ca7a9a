import Foundation

/// One resource record of a DNS message (RFC 1035 4.1.3), with its data rendered as dig renders it.
///
/// The data of the types decoded here (A, AAAA, NS, CNAME, PTR, MX, TXT, SOA, SRV, CAA, SVCB, HTTPS) is shown in
/// presentation form; any other type, and a decoded type whose data does not have the shape its type demands,
/// in the RFC 3597 generic form `\# 4 C0000201`. A record whose data is malformed is still shown, not refused:
/// what a server really sent is what `tapedeck show` is for.
struct DNSRecord: Sendable, Hashable {
    /// The owner name.
    var name: DNSName
    /// The record's type.
    var type: DNSRecordType
    /// The class field as sent; for an OPT record, the sender's UDP payload size instead (see ``edns``).
    var recordClass: DNSRecordClass
    /// Seconds the record may be cached; for an OPT record, the extended code, version and flags instead.
    var ttl: UInt32
    /// The record's data bytes. Names inside may be compression pointers into the whole message.
    var data: [UInt8]
    /// The data as dig shows it: `192.0.2.1`, `10 mail.example.test.`, `"v=spf1 -all"`, `\# 3 010203`.
    var renderedData: String

    /// What an OPT record says about EDNS (RFC 6891 6.1.3).
    struct EDNS: Sendable, Hashable {
        /// The largest UDP payload the sender can take.
        var udpPayloadSize: UInt16
        /// The upper eight bits of the message's 12-bit response code.
        var extendedResponseCode: UInt8
        /// The EDNS version, 0 today.
        var version: UInt8
        /// The DO bit: the sender wants DNSSEC records.
        var dnssecOK: Bool
        /// The options, in order.
        var options: [Option]

        /// One EDNS option: a code (10 is COOKIE) and its value.
        struct Option: Sendable, Hashable {
            /// The option's code.
            var code: UInt16
            /// The option's value.
            var data: [UInt8]
        }
    }

    /// The EDNS fields of an OPT record; nil for any other type, or an OPT whose options overrun its data.
    var edns: EDNS? {
        guard type == .opt else { return nil }
        var options: [EDNS.Option] = []
        var reader = RecordDataReader(bytes: data, start: 0)
        while !reader.isAtEnd {
            guard let code = reader.uint16(), let length = reader.uint16(), let value = reader.bytes(Int(length))
            else { return nil }
            options.append(EDNS.Option(code: code, data: value))
        }
        return EDNS(
            udpPayloadSize: recordClass.rawValue,
            extendedResponseCode: UInt8(ttl >> 24),
            version: UInt8(ttl >> 16 & 0xFF),
            dnssecOK: ttl & 0x8000 != 0,
            options: options
        )
    }

    /// Reads the record starting at `offset` in `message`.
    ///
    /// - Returns: The record and the offset just after it; nil when its name is malformed or its fixed fields
    ///   or data run past the end of the message.
    static func read(in message: [UInt8], at offset: Int) -> (record: DNSRecord, end: Int)? {
        guard let (name, nameEnd) = DNSName.read(in: message, at: offset) else { return nil }
        var reader = RecordDataReader(bytes: message, start: nameEnd)
        guard let type = reader.uint16(), let recordClass = reader.uint16(), let ttl = reader.uint32(),
            let length = reader.uint16(), reader.remaining >= Int(length)
        else { return nil }
        let dataStart = reader.offset
        let dataEnd = dataStart + Int(length)
        let recordType = DNSRecordType(rawValue: type)
        let rendered =
            render(recordType, in: message, from: dataStart, to: dataEnd)
            ?? generic(message[dataStart..<dataEnd])
        let record = DNSRecord(
            name: name,
            type: recordType,
            recordClass: DNSRecordClass(rawValue: recordClass),
            ttl: ttl,
            data: Array(message[dataStart..<dataEnd]),
            renderedData: rendered
        )
        return (record, dataEnd)
    }

    /// The record on one line: `www.example.test. 300 IN A 192.0.2.1`, or for OPT
    /// `EDNS version 0 udp 1232 do COOKIE 0102030405060708`.
    var summary: String {
        guard type == .opt else {
            let head = "\(name.presentation) \(ttl) \(recordClass) \(type)"
            return renderedData.isEmpty ? head : head + " " + renderedData
        }
        guard let edns else { return "EDNS malformed \(renderedData)" }
        var text = "EDNS version \(edns.version) udp \(edns.udpPayloadSize)"
        if edns.dnssecOK { text += " do" }
        for option in edns.options { text += " " + Self.describe(option: option.code, option.data) }
        return text
    }

    /// One EDNS option as `NAME HEX`: the value matters less than which options were sent, so only the common
    /// ones are named and only the error code's text and the padding's length are decoded.
    private static func describe(option code: UInt16, _ value: [UInt8]) -> String {
        switch code {
        case 3: return "NSID " + hex(value)
        case 8: return "CLIENT-SUBNET " + hex(value)
        case 10: return "COOKIE " + hex(value)
        case 12: return "PADDING \(value.count)"
        case 15:
            guard value.count >= 2 else { return "EDE " + hex(value) }
            let info = Int(value[0]) << 8 | Int(value[1])
            let text = value.count > 2 ? " " + quoted(value[2...]) : ""
            return "EDE \(info)" + text
        default: return "OPT\(code) " + hex(value)
        }
    }

    // MARK: Rendering data

    /// The RFC 3597 generic form: `\#`, the length, and the bytes in hex (no hex at all when empty).
    static func generic(_ bytes: some Collection<UInt8>) -> String {
        bytes.isEmpty ? "\\# 0" : "\\# \(bytes.count) " + hex(bytes)
    }

    /// Bytes as upper-case hex, as dig writes data it cannot decode.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// A character-string in double quotes, escaped as dig escapes it.
    static func quoted(_ bytes: some Sequence<UInt8>) -> String {
        "\"" + bytes.map { DNSName.escaped($0, quoted: true) }.joined() + "\""
    }

    /// The presentation form of a record's data, or nil when the type is not decoded here or the data does not
    /// fill exactly the shape the type demands (the caller falls back to the generic form).
    private static func render(_ type: DNSRecordType, in message: [UInt8], from start: Int, to end: Int) -> String? {
        var reader = RecordDataReader(bytes: message, start: start, end: end)
        let text: String?
        switch type {
        case .a: text = reader.bytes(4).map { $0.map(String.init).joined(separator: ".") }
        case .aaaa: text = reader.bytes(16).flatMap(ipv6Text)
        case .ns, .cname, .ptr: text = reader.name()?.presentation
        case .mx:
            guard let preference = reader.uint16(), let exchange = reader.name() else { return nil }
            text = "\(preference) \(exchange.presentation)"
        case .txt:
            var strings: [String] = []
            while !reader.isAtEnd {
                guard let string = reader.characterString() else { return nil }
                strings.append(quoted(string))
            }
            text = strings.isEmpty ? nil : strings.joined(separator: " ")
        case .soa:
            guard let primary = reader.name(), let mailbox = reader.name(), let serial = reader.uint32(),
                let refresh = reader.uint32(), let retry = reader.uint32(), let expire = reader.uint32(),
                let minimum = reader.uint32()
            else { return nil }
            text = "\(primary.presentation) \(mailbox.presentation) \(serial) \(refresh) \(retry) \(expire) \(minimum)"
        case .srv:
            guard let priority = reader.uint16(), let weight = reader.uint16(), let port = reader.uint16(),
                let target = reader.name()
            else { return nil }
            text = "\(priority) \(weight) \(port) \(target.presentation)"
        case .caa:
            guard let flags = reader.uint8(), let tag = reader.characterString(), !tag.isEmpty,
                tag.allSatisfy(\.isASCIIAlphanumeric)
            else { return nil }
            let value = reader.bytes(reader.remaining) ?? []
            text = "\(flags) \(String(decoding: tag, as: UTF8.self)) \(quoted(value))"
        case .svcb, .https: text = serviceBinding(&reader)
        case .opt:
            // The summary shows OPT from its fields; the data, in the generic form, is there for the record.
            return nil
        default: return nil
        }
        // Bytes left over mean the data is not what its type says it is.
        guard let text, reader.isAtEnd else { return nil }
        return text
    }

    /// An IPv6 address in its compressed form, as inet_ntop writes it.
    private static func ipv6Text(_ bytes: [UInt8]) -> String? {
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// SVCB and HTTPS data (RFC 9460 2.2): the priority, the target, and each parameter as `key=value`.
    private static func serviceBinding(_ reader: inout RecordDataReader) -> String? {
        guard let priority = reader.uint16(), let target = reader.name() else { return nil }
        var parts = ["\(priority)", target.presentation]
        while !reader.isAtEnd {
            guard let key = reader.uint16(), let length = reader.uint16(), let value = reader.bytes(Int(length)),
                let parameter = serviceParameter(key, value)
            else { return nil }
            parts.append(parameter)
        }
        return parts.joined(separator: " ")
    }

    /// The names of the service parameter keys RFC 9460 defines, by number.
    private static let serviceKeys = [
        "mandatory", "alpn", "no-default-alpn", "port", "ipv4hint", "ech", "ipv6hint",
    ]

    private static func serviceKeyName(_ key: UInt16) -> String {
        Int(key) < serviceKeys.count ? serviceKeys[Int(key)] : "key\(key)"
    }

    /// One service parameter as dig writes it: `alpn="h2,h3"`, `port=443`, `ipv4hint=192.0.2.1`.
    private static func serviceParameter(_ key: UInt16, _ value: [UInt8]) -> String? {
        let name = serviceKeyName(key)
        var reader = RecordDataReader(bytes: value, start: 0)
        var items: [String] = []
        switch key {
        case 0:
            while !reader.isAtEnd {
                guard let key = reader.uint16() else { return nil }
                items.append(serviceKeyName(key))
            }
            return name + "=" + items.joined(separator: ",")
        case 1:
            while !reader.isAtEnd {
                guard let protocolID = reader.characterString() else { return nil }
                // A comma inside one protocol id is escaped, or it would read as two.
                items.append(
                    protocolID.map { $0 == UInt8(ascii: ",") ? "\\\\," : DNSName.escaped($0, quoted: true) }.joined()
                )
            }
            return name + "=\"" + items.joined(separator: ",") + "\""
        case 2: return value.isEmpty ? name : nil
        case 3: return value.count == 2 ? name + "=\(Int(value[0]) << 8 | Int(value[1]))" : nil
        case 4:
            guard !value.isEmpty, value.count % 4 == 0 else { return nil }
            while let address = reader.bytes(4) { items.append(address.map(String.init).joined(separator: ".")) }
            return name + "=" + items.joined(separator: ",")
        case 5: return name + "=" + Data(value).base64EncodedString()
        case 6:
            guard !value.isEmpty, value.count % 16 == 0 else { return nil }
            while let address = reader.bytes(16) {
                guard let text = ipv6Text(address) else { return nil }
                items.append(text)
            }
            return name + "=" + items.joined(separator: ",")
        default: return value.isEmpty ? name : name + "=" + quoted(value)
        }
    }
}

/// Reads big-endian fields and names from a window of a message, returning nil instead of reading past its end.
struct RecordDataReader {
    /// The whole message, so names inside record data can follow pointers into it.
    let message: [UInt8]
    /// Where the next read starts.
    private(set) var offset: Int
    /// Where the window ends.
    let end: Int

    /// A reader of `bytes` from `start` to `end` (the end of `bytes` when nil).
    init(bytes: [UInt8], start: Int, end: Int? = nil) {
        message = bytes
        offset = start
        self.end = min(end ?? bytes.count, bytes.count)
    }

    /// The bytes left in the window.
    var remaining: Int { max(0, end - offset) }
    /// Whether the window is used up.
    var isAtEnd: Bool { offset >= end }

    mutating func uint8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return message[offset]
    }

    mutating func uint16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return UInt16(message[offset]) << 8 | UInt16(message[offset + 1])
    }

    mutating func uint32() -> UInt32? {
        guard let high = uint16(), let low = uint16() else { return nil }
        return UInt32(high) << 16 | UInt32(low)
    }

    mutating func bytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return Array(message[offset..<(offset + count)])
    }

    /// A length byte and that many bytes (RFC 1035 3.3).
    mutating func characterString() -> [UInt8]? {
        guard let length = uint8() else { return nil }
        return bytes(Int(length))
    }

    /// A name that must end inside the window; its pointers may reach anywhere earlier in the message.
    mutating func name() -> DNSName? {
        guard let (name, nameEnd) = DNSName.read(in: message, at: offset), nameEnd <= end else { return nil }
        offset = nameEnd
        return name
    }
}

extension UInt8 {
    /// A CAA tag is letters and digits only (RFC 8659 4.1).
    fileprivate var isASCIIAlphanumeric: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self)
    }
}
