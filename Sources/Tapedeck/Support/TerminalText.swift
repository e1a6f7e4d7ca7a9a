/// Makes text read from a tape safe to print on a terminal.
///
/// Route names, labels and addresses in a tape are whatever its writer put there; a crafted fixture could hold
/// escape sequences that clear a reviewer's screen, set the terminal's title, or reorder what is shown (bidi
/// overrides). Every such field is printed through ``escape(_:)``, as payloads are through ``ByteExcerpt``.
public enum TerminalText {
    /// `text` with control characters (C0, DEL, C1) and bidirectional formatting characters replaced by visible
    /// escapes: `\e`, `\n`, `\x1b`, `\u{202E}`. Backslashes are doubled only where escaping happened, so
    /// ordinary text prints unchanged.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A: escaped += "\\n"
            case 0x0D: escaped += "\\r"
            case 0x09: escaped += "\\t"
            case 0x5C: escaped += "\\\\"
            case _ where !needsEscape(scalar): escaped.unicodeScalars.append(scalar)
            case 0..<0x100: escaped += "\\x" + hex(scalar.value, width: 2)
            default: escaped += "\\u{" + hex(scalar.value, width: 4) + "}"
            }
        }
        return escaped
    }

    /// The first character of `text` that ``escape(_:)`` would replace, for refusing it in user input.
    public static func firstControlCharacter(in text: String) -> Unicode.Scalar? {
        text.unicodeScalars.first(where: needsEscape)
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F...0x9F: return true
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: false)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
