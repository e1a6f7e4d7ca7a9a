import Foundation

/// Writes pcapng files: one section, one raw-IP interface with nanosecond timestamps, and packets.
///
/// Blocks are buffered and written in large pieces, so exporting a long session runs in bounded memory.
final class PcapngWriter {
    private let output: OutputBuffer

    /// LINKTYPE_RAW: packets start with the IPv4 or IPv6 header.
    static let linkTypeRaw: UInt16 = 101

    init(output: OutputBuffer) {
        self.output = output
        writeSectionHeader()
        writeInterfaceDescription()
    }

    /// Appends one packet captured at `timestamp` (nanoseconds since 1970).
    func writePacket(_ packet: [UInt8], timestamp: Int64) {
        var body: [UInt8] = []
        body.reserveCapacity(20 + packet.count + 3)
        body.appendLittleEndian(UInt32(0))  // interface 0
        let stamp = UInt64(max(0, timestamp))
        body.appendLittleEndian(UInt32(stamp >> 32))
        body.appendLittleEndian(UInt32(stamp & 0xFFFF_FFFF))
        body.appendLittleEndian(UInt32(packet.count))  // captured
        body.appendLittleEndian(UInt32(packet.count))  // original
        body.append(contentsOf: packet)
        body.padTo4()
        writeBlock(type: 0x0000_0006, body: body)
    }

    private func writeSectionHeader() {
        var body: [UInt8] = []
        body.appendLittleEndian(UInt32(0x1A2B_3C4D))  // byte-order magic
        body.appendLittleEndian(UInt16(1))  // major
        body.appendLittleEndian(UInt16(0))  // minor
        body.appendLittleEndian(UInt64.max)  // section length: unknown
        body.appendOption(code: 4, value: Array("tapedeck \(tapedeckVersion)".utf8))  // shb_userappl
        body.appendOption(code: 0, value: [])
        writeBlock(type: 0x0A0D_0D0A, body: body)
    }

    private func writeInterfaceDescription() {
        var body: [UInt8] = []
        body.appendLittleEndian(Self.linkTypeRaw)
        body.appendLittleEndian(UInt16(0))  // reserved
        body.appendLittleEndian(UInt32(0))  // snaplen: no limit
        body.appendOption(code: 2, value: Array("tapedeck".utf8))  // if_name
        body.appendOption(code: 9, value: [9])  // if_tsresol: 10^-9 s
        body.appendOption(code: 0, value: [])
        writeBlock(type: 0x0000_0001, body: body)
    }

    private func writeBlock(type: UInt32, body: [UInt8]) {
        let length = UInt32(12 + body.count)
        var block: [UInt8] = []
        block.reserveCapacity(Int(length))
        block.appendLittleEndian(type)
        block.appendLittleEndian(length)
        block.append(contentsOf: body)
        block.appendLittleEndian(length)
        output.write(bytes: block)
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    mutating func padTo4() {
        while count % 4 != 0 { append(0) }
    }

    mutating func appendOption(code: UInt16, value: [UInt8]) {
        appendLittleEndian(code)
        appendLittleEndian(UInt16(value.count))
        append(contentsOf: value)
        padTo4()
    }
}
