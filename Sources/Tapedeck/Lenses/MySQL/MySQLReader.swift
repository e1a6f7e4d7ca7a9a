/// Reads the primitive types of the MySQL protocol from a payload, with every read bounded: a read past the end
/// returns nil and leaves the reader where it was, so hostile bytes never trap.
struct MySQLReader {
    let bytes: [UInt8]
    /// Where the next read starts.
    private(set) var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// Bytes not read yet.
    var remaining: Int { bytes.count - offset }

    /// A fixed-length little-endian integer of `width` bytes (1 to 8).
    mutating func integer(width: Int) -> UInt64? {
        guard width >= 1, width <= 8, remaining >= width else { return nil }
        var value: UInt64 = 0
        for index in 0..<width { value |= UInt64(bytes[offset + index]) << (8 * index) }
        offset += width
        return value
    }

    /// A length-encoded integer: one byte below 0xFB, else 0xFC, 0xFD or 0xFE and 2, 3 or 8 bytes.
    mutating func lengthEncodedInteger() -> UInt64? {
        guard remaining >= 1 else { return nil }
        let first = bytes[offset]
        let start = offset
        offset += 1
        let value: UInt64?
        switch first {
        case 0..<0xFB: value = UInt64(first)
        case 0xFC: value = integer(width: 2)
        case 0xFD: value = integer(width: 3)
        case 0xFE: value = integer(width: 8)
        default: value = nil  // 0xFB is NULL in a row, 0xFF an error packet: neither is a length
        }
        if value == nil { offset = start }
        return value
    }

    /// `count` bytes.
    mutating func bytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    /// Bytes up to a zero byte, which is read and dropped.
    mutating func nulTerminated() -> [UInt8]? {
        guard let end = bytes[offset...].firstIndex(of: 0) else { return nil }
        defer { offset = end + 1 }
        return Array(bytes[offset..<end])
    }

    /// A length-encoded string: its length as a length-encoded integer, then its bytes.
    mutating func lengthEncodedString() -> [UInt8]? {
        let start = offset
        guard let length = lengthEncodedInteger(), length <= UInt64(remaining), let value = bytes(Int(length)) else {
            offset = start
            return nil
        }
        return value
    }

    /// The rest of the payload.
    mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }

    /// `value` as a length-encoded integer.
    static func lengthEncoded(_ value: Int) -> [UInt8] {
        switch value {
        case ..<0xFB: return [UInt8(value)]
        case ..<0x1_0000: return [0xFC, UInt8(value & 0xFF), UInt8(value >> 8)]
        case ..<0x100_0000: return [0xFD, UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16)]
        default: return [0xFE] + (0..<8).map { UInt8(truncatingIfNeeded: UInt64(value) >> (8 * $0)) }
        }
    }
}
