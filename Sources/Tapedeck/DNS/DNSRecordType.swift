/// A DNS record type (RFC 1035 3.2.2 and later registrations), named as dig names it.
///
/// Any 16-bit number is a type: the ones without a mnemonic here are written `TYPE65280`, the RFC 3597 form, so
/// a record of a type this code has never heard of still reads unambiguously.
struct DNSRecordType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The type's number on the wire.
    var rawValue: UInt16

    /// Wraps a type number.
    init(rawValue: UInt16) { self.rawValue = rawValue }

    /// An IPv4 address.
    static let a = DNSRecordType(rawValue: 1)
    /// An authoritative name server.
    static let ns = DNSRecordType(rawValue: 2)
    /// The canonical name of an alias.
    static let cname = DNSRecordType(rawValue: 5)
    /// The start of a zone of authority; what a negative answer carries in its authority section.
    static let soa = DNSRecordType(rawValue: 6)
    /// A domain name pointer, as reverse lookups use.
    static let ptr = DNSRecordType(rawValue: 12)
    /// A mail exchange, with its preference.
    static let mx = DNSRecordType(rawValue: 15)
    /// Text strings.
    static let txt = DNSRecordType(rawValue: 16)
    /// An IPv6 address.
    static let aaaa = DNSRecordType(rawValue: 28)
    /// A service location: priority, weight, port and target (RFC 2782).
    static let srv = DNSRecordType(rawValue: 33)
    /// The EDNS pseudo-record (RFC 6891): not data, but the sender's UDP size, flags and options.
    static let opt = DNSRecordType(rawValue: 41)
    /// A service binding (RFC 9460).
    static let svcb = DNSRecordType(rawValue: 64)
    /// A service binding for HTTPS (RFC 9460).
    static let https = DNSRecordType(rawValue: 65)
    /// A certification authority authorization (RFC 8659).
    static let caa = DNSRecordType(rawValue: 257)

    /// The mnemonics shown for known types. Types beyond the decoded ones are named too, since a name helps even
    /// when the data is shown in the generic form.
    private static let names: [UInt16: String] = [
        1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA",
        33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY",
        50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 251: "IXFR", 252: "AXFR",
        255: "ANY", 257: "CAA",
    ]

    /// The mnemonic (`AAAA`), or `TYPE` and the number for a type without one.
    var description: String { Self.names[rawValue] ?? "TYPE\(rawValue)" }
}

/// A DNS class (RFC 1035 3.2.4): `IN` nearly always, `CH` for server identity queries, and `CLASS` and the
/// number (RFC 3597) for the rest.
struct DNSRecordClass: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The class's number on the wire.
    var rawValue: UInt16

    /// Wraps a class number.
    init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The Internet.
    static let internet = DNSRecordClass(rawValue: 1)

    /// The mnemonic (`IN`, `CH`, `HS`, `NONE`, `ANY`), or `CLASS` and the number.
    var description: String {
        switch rawValue {
        case 1: "IN"
        case 3: "CH"
        case 4: "HS"
        case 254: "NONE"
        case 255: "ANY"
        default: "CLASS\(rawValue)"
        }
    }

    /// Whether the class is one a real message carries: a cheap test that a payload is DNS and not noise.
    var isAssigned: Bool { [1, 3, 4, 254, 255].contains(rawValue) }
}
