import Foundation

/// Renders bytes for people: printable text as text, everything else escaped (`\r`, `\n`, `\t`, `\xNN`).
public enum ByteExcerpt {
    /// The escaped rendering of `bytes`.
    public static func render<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var text = ""
        text.reserveCapacity(bytes.count)
        for byte in bytes {
            switch byte {
            case 0x0A: text += "\\n"
            case 0x0D: text += "\\r"
            case 0x09: text += "\\t"
            case 0x5C: text += "\\\\"
            case 0x20...0x7E: text.unicodeScalars.append(Unicode.Scalar(byte))
            default: text += "\\x" + String(byte, radix: 16, uppercase: false).leftPadded(to: 2)
            }
        }
        return text
    }

    /// The bytes a rendering was made from: ``render(_:)`` undone. A backslash that starts no escape of ours stands
    /// for itself.
    static func bytes(rendered text: String) -> Data {
        let scalars = Array(text.unicodeScalars)
        var bytes = Data()
        bytes.reserveCapacity(scalars.count)
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            let next = index + 1 < scalars.count ? scalars[index + 1] : nil
            switch (scalar, next) {
            case ("\\", "n"): bytes.append(0x0A)
            case ("\\", "r"): bytes.append(0x0D)
            case ("\\", "t"): bytes.append(0x09)
            case ("\\", "\\"): bytes.append(0x5C)
            case ("\\", "x") where index + 3 < scalars.count:
                guard let high = hexValue(scalars[index + 2]), let low = hexValue(scalars[index + 3]) else {
                    bytes.append(0x5C)
                    index += 1
                    continue
                }
                bytes.append(high << 4 | low)
                index += 2
            default:
                bytes.append(contentsOf: scalar.isASCII ? [UInt8(scalar.value)] : Array(String(scalar).utf8))
                index += 1
                continue
            }
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ scalar: Unicode.Scalar) -> UInt8? {
        switch scalar.value {
        case 0x30...0x39: return UInt8(scalar.value - 0x30)
        case 0x61...0x66: return UInt8(scalar.value - 0x61 + 10)
        case 0x41...0x46: return UInt8(scalar.value - 0x41 + 10)
        default: return nil
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
