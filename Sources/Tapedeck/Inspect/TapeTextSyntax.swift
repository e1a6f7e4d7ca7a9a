import Foundation

/// The pieces of the text form of a tape that both ``TapeTextWriter`` and ``TapeTextReader`` speak: quoted
/// strings, payload lines, and TLS records as JSON.
enum TapeTextSyntax {
    /// The most payload bytes one text line holds; a longer line of the payload goes on over several.
    static let textLineBytes = 96
    /// Bytes per hex line.
    static let hexLineBytes = 16

    // MARK: Strings

    /// `"text"`, with `"` and `\` escaped and control characters as `\xNN`.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                result += String(format: "\\x%02x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// The string of a quoted field, and what follows it; nil when `text` does not start with one.
    static func unquoted(_ text: Substring) -> (value: String, rest: Substring)? {
        guard text.first == "\"" else { return nil }
        var scalars = String.UnicodeScalarView()
        var index = text.unicodeScalars.index(after: text.unicodeScalars.startIndex)
        let all = text.unicodeScalars
        while index < all.endIndex {
            let scalar = all[index]
            if scalar == "\"" {
                return (String(scalars), Substring(all[all.index(after: index)...]))
            }
            if scalar == "\\" {
                index = all.index(after: index)
                guard index < all.endIndex else { return nil }
                switch all[index] {
                case "\"": scalars.append("\"")
                case "\\": scalars.append("\\")
                case "x":
                    let start = all.index(after: index)
                    guard let end = all.index(start, offsetBy: 2, limitedBy: all.endIndex),
                        let value = UInt32(String(all[start..<end]), radix: 16),
                        let decoded = Unicode.Scalar(value)
                    else { return nil }
                    scalars.append(decoded)
                    index = all.index(before: end)
                default: return nil
                }
            } else {
                scalars.append(scalar)
            }
            index = all.index(after: index)
        }
        return nil
    }

    // MARK: Payloads

    /// Whether bytes read best as text: nearly all printable ASCII, tabs and line ends.
    static func isText(_ payload: Data) -> Bool {
        guard !payload.isEmpty else { return true }
        // Read from the bytes, stopping once more than a tenth are not text: a binary payload is known at once.
        let allowed = payload.count / 10
        return payload.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var other = 0
            for byte in bytes where !((0x20...0x7E).contains(byte) || byte == 0x0A || byte == 0x0D || byte == 0x09) {
                other += 1
                if other > allowed { return false }
            }
            return true
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
    private static let textPrefix = Array("    | ".utf8)
    private static let hexPrefix = Array("    : ".utf8)

    /// Writes a payload as `|` text lines or `:` hex lines, four spaces in. Built byte by byte into one buffer per
    /// line: a large payload is rendered at the speed of copying bytes, not of formatting strings.
    static func writePayload(_ payload: Data, to output: OutputBuffer) {
        guard !payload.isEmpty else { return }
        if isText(payload) {
            writeText(payload, to: output)
        } else {
            writeHex(payload, to: output)
        }
    }

    private static func writeText(_ payload: Data, to output: OutputBuffer) {
        let digits = hexDigits
        var line: [UInt8] = []
        line.reserveCapacity(textPrefix.count + textLineBytes * 4 + 8)
        line.append(contentsOf: textPrefix)
        var count = 0
        for byte in payload {
            switch byte {
            case 0x5C:
                line.append(0x5C)
                line.append(0x5C)
            case 0x0D:
                line.append(0x5C)
                line.append(UInt8(ascii: "r"))
            case 0x0A:
                line.append(0x5C)
                line.append(UInt8(ascii: "n"))
            case 0x09:
                line.append(0x5C)
                line.append(UInt8(ascii: "t"))
            case 0x20...0x7E:
                line.append(byte)
            default:
                line.append(0x5C)
                line.append(UInt8(ascii: "x"))
                line.append(digits[Int(byte >> 4)])
                line.append(digits[Int(byte & 0x0F)])
            }
            count += 1
            // A line of the payload is a line of text; so is every textLineBytes of a long one.
            if byte == 0x0A || count == textLineBytes {
                finishTextLine(&line, to: output)
                count = 0
            }
        }
        if count > 0 { finishTextLine(&line, to: output) }
    }

    /// Hex lines: a six-digit offset, sixteen bytes in hex, the same bytes as ASCII. Each line is filled in place in
    /// one buffer of the longest line's size, since a 1 GiB payload is 64 Mi lines.
    private static func writeHex(_ payload: Data, to output: OutputBuffer) {
        let digits = hexDigits
        let prefix = hexPrefix
        let perLine = hexLineBytes
        let longest = prefix.count + 6 + 2 + perLine * 3 - 1 + 2 + perLine + 1
        var buffer = [UInt8](repeating: 0x20, count: longest)
        payload.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            buffer.withUnsafeMutableBufferPointer { line in
                var offset = 0
                while offset < bytes.count {
                    var end = 0
                    for byte in prefix {
                        line[end] = byte
                        end += 1
                    }
                    for shift in stride(from: 20, through: 0, by: -4) {
                        line[end] = digits[(offset >> shift) & 0x0F]
                        end += 1
                    }
                    line[end] = 0x20
                    line[end + 1] = 0x20
                    end += 2
                    let count = min(perLine, bytes.count - offset)
                    for index in 0..<perLine {
                        if index < count {
                            if index > 0 {
                                line[end] = 0x20
                                end += 1
                            }
                            let byte = bytes[offset + index]
                            line[end] = digits[Int(byte >> 4)]
                            line[end + 1] = digits[Int(byte & 0x0F)]
                            end += 2
                        } else {
                            line[end] = 0x20
                            line[end + 1] = 0x20
                            line[end + 2] = 0x20
                            end += 3
                        }
                    }
                    line[end] = 0x20
                    line[end + 1] = 0x20
                    end += 2
                    for index in 0..<count {
                        let byte = bytes[offset + index]
                        line[end] = (0x20...0x7E).contains(byte) ? byte : UInt8(ascii: ".")
                        end += 1
                    }
                    // The gutter is for reading; trailing spaces would only trouble editors and diffs.
                    while end > 0, line[end - 1] == 0x20 { end -= 1 }
                    line[end] = 0x0A
                    end += 1
                    output.write(bytes: UnsafeBufferPointer(rebasing: line[0..<end]))
                    offset += perLine
                }
            }
        }
    }

    /// Ends a text line and writes it. A line whose last byte is a space ends in `\x20` instead: editors and
    /// `git diff` drop or flag trailing spaces, and the bytes must survive a hand edit.
    private static func finishTextLine(_ line: inout [UInt8], to output: OutputBuffer) {
        if line.count > textPrefix.count, line.last == 0x20 {
            line.removeLast()
            line += Array("\\x20".utf8)
        }
        line.append(0x0A)
        output.write(bytes: line)
        line.removeAll(keepingCapacity: true)
        line += textPrefix
    }

    /// The bytes of one `|` line's text (after `| `).
    static func textLineBytes(_ text: Substring) -> [UInt8]? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "\\") else {
                bytes.append(byte)
                continue
            }
            switch iterator.next() {
            case UInt8(ascii: "\\"): bytes.append(0x5C)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "x"):
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            default: return nil
            }
        }
        return bytes
    }

    /// The bytes of one `:` line (after `: `): its offset, then the hex pairs up to the two spaces before the
    /// ASCII gutter.
    static func hexLineBytes(_ text: Substring) -> (offset: Int, bytes: [UInt8])? {
        var bytes: (UInt64, UInt64) = (0, 0)
        let read = Array(text.utf8).withUnsafeBytes { line in
            withUnsafeMutableBytes(of: &bytes) { readHexLine(line, into: $0) }
        }
        guard let read else { return nil }
        return (read.offset, withUnsafeBytes(of: &bytes) { Array($0.prefix(read.count)) })
    }

    /// Appends the bytes of one hex line (after `: `) to `payload`, when the line is well formed and its offset is
    /// where `payload` ends: what ``hexLineBytes(_:)`` reads, from raw bytes, with nothing allocated. False, and
    /// `payload` untouched, otherwise.
    static func appendHexLine(_ line: UnsafeRawBufferPointer, to payload: inout Data) -> Bool {
        var bytes: (UInt64, UInt64) = (0, 0)
        guard let read = withUnsafeMutableBytes(of: &bytes, { readHexLine(line, into: $0) }),
            read.offset == payload.count
        else { return false }
        withUnsafeBytes(of: &bytes) { payload.append(contentsOf: $0.prefix(read.count)) }
        return true
    }

    /// Reads one hex line (after `: `): its offset, then up to ``hexLineBytes`` pairs into `bytes` (room for as
    /// many), one space between pairs and two (or the end) before the gutter. Nil for a line that is not one.
    private static func readHexLine(
        _ line: UnsafeRawBufferPointer,
        into bytes: UnsafeMutableRawBufferPointer
    ) -> (offset: Int, count: Int)? {
        var index = 0
        var offset = 0
        while index < line.count, let digit = hexValue(line[index]) {
            offset = offset << 4 | Int(digit)
            index += 1
            guard index <= 12 else { return nil }
        }
        guard index > 0, index + 1 < line.count, line[index] == 0x20, line[index + 1] == 0x20 else { return nil }
        index += 2
        var count = 0
        while index + 1 < line.count, count < min(hexLineBytes, bytes.count), let high = hexValue(line[index]),
            let low = hexValue(line[index + 1])
        {
            bytes[count] = high << 4 | low
            count += 1
            index += 2
            guard index + 1 < line.count, line[index] == 0x20, line[index + 1] != 0x20 else { break }
            index += 1
        }
        // More pairs than a line holds: the loop stopped on the next pair rather than at the gutter.
        if count == hexLineBytes, index < line.count, line[index] != 0x20 { return nil }
        return count > 0 ? (offset, count) : nil
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    // MARK: TLS

    /// A TLS record as one line of JSON, keys sorted.
    static func json(_ record: SessionTLSRecord) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(record)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
