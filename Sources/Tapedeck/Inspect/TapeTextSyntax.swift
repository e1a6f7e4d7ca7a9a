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
        let printable = payload.reduce(0) { count, byte in
            count + ((0x20...0x7E).contains(byte) || byte == 0x0A || byte == 0x0D || byte == 0x09 ? 1 : 0)
        }
        return printable * 10 >= payload.count * 9
    }

    /// Writes a payload as `|` text lines or `:` hex lines, four spaces in.
    static func writePayload(_ payload: Data, to output: OutputBuffer) {
        guard !payload.isEmpty else { return }
        if isText(payload) {
            var line = "    | "
            var count = 0
            for byte in payload {
                switch byte {
                case 0x5C: line += "\\\\"
                case 0x0D: line += "\\r"
                case 0x0A: line += "\\n"
                case 0x09: line += "\\t"
                case 0x20...0x7E: line.unicodeScalars.append(Unicode.Scalar(byte))
                default: line += String(format: "\\x%02x", byte)
                }
                count += 1
                // A line of the payload is a line of text; so is every textLineBytes of a long one.
                if byte == 0x0A || count == textLineBytes {
                    output.write(protectingTrailingSpace(line) + "\n")
                    line = "    | "
                    count = 0
                }
            }
            if count > 0 { output.write(protectingTrailingSpace(line) + "\n") }
        } else {
            var offset = 0
            while offset < payload.count {
                let chunk = payload[
                    (payload.startIndex + offset)..<(payload.startIndex + min(offset + hexLineBytes, payload.count))
                ]
                let hex = chunk.map { String(format: "%02x", $0) }.joined(separator: " ")
                let padding = String(repeating: " ", count: (hexLineBytes - chunk.count) * 3)
                let ascii = String(chunk.map { (0x20...0x7E).contains($0) ? Character(Unicode.Scalar($0)) : "." })
                let line = String(format: "    : %06x  ", offset) + hex + padding + "  " + ascii
                // The gutter is for reading; trailing spaces would only trouble editors and diffs.
                output.write(String(line.reversed().drop { $0 == " " }.reversed()) + "\n")
                offset += hexLineBytes
            }
        }
    }

    /// A text line whose last byte is a space ends in `\x20` instead: editors and `git diff` drop or flag trailing
    /// spaces, and the bytes must survive a hand edit.
    private static func protectingTrailingSpace(_ line: String) -> String {
        guard line.hasSuffix(" "), line.count > 6 else { return line }
        return String(line.dropLast()) + "\\x20"
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

    /// The bytes of one `:` line (after `: `): its offset and the hex before the ASCII gutter.
    static func hexLineBytes(_ text: Substring) -> (offset: Int, bytes: [UInt8])? {
        let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, let offset = Int(parts[0], radix: 16) else { return nil }
        // The hex ends where two spaces begin the gutter.
        let hexPart = parts[1].components(separatedBy: "  ").first { !$0.isEmpty } ?? ""
        var bytes: [UInt8] = []
        for pair in hexPart.split(separator: " ") {
            guard pair.count == 2, let value = UInt8(pair, radix: 16) else { return nil }
            bytes.append(value)
        }
        guard !bytes.isEmpty, bytes.count <= hexLineBytes else { return nil }
        return (offset, bytes)
    }

    // MARK: TLS

    /// A TLS record as one line of JSON, keys sorted.
    static func json(_ record: SessionTLSRecord) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(record)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
