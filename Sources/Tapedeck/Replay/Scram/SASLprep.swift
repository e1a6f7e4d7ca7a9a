import Foundation

/// SASLprep (RFC 4013), the normalization SCRAM applies to a password, done the way PostgreSQL does it.
///
/// PostgreSQL's server and libpq use a password as is, not normalized, whenever SASLprep refuses it (a
/// prohibited or unassigned character, or nothing left after mapping), so both ends still agree; this does the
/// same. A pure ASCII password is always used as is, control characters included.
///
/// One step is left out: the bidirectional check of RFC 3454, section 6, which needs the Unicode 3.2 bidi
/// classes. A password mixing right-to-left and left-to-right letters, which PostgreSQL would use as is, is
/// normalized here; such a login fails at replay with a server signature the client rejects.
///
/// ```swift
/// SASLprep.prepare("I\u{00AD}X")  // "IX" as UTF-8
/// ```
enum SASLprep {
    /// The bytes SCRAM salts for `password`.
    static func prepare(_ password: String) -> [UInt8] {
        let raw = Array(password.utf8)
        guard !raw.allSatisfy({ $0 < 0x80 }) else { return raw }
        var mapped = String.UnicodeScalarView()
        for scalar in password.unicodeScalars {
            if isNonASCIISpace(scalar.value) {
                mapped.append(" ")
            } else if !isMappedToNothing(scalar.value) {
                mapped.append(scalar)
            }
        }
        // PostgreSQL checks the mapped characters, before normalization, and refuses an empty result.
        guard !mapped.isEmpty, !mapped.contains(where: isProhibited) else { return raw }
        return Array(String(mapped).precomposedStringWithCompatibilityMapping.utf8)
    }

    /// RFC 3454 table C.1.2, mapped to a space.
    private static func isNonASCIISpace(_ code: UInt32) -> Bool {
        switch code {
        case 0x00A0, 0x1680, 0x2000...0x200B, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// RFC 3454 table B.1, mapped to nothing.
    private static func isMappedToNothing(_ code: UInt32) -> Bool {
        switch code {
        case 0x00AD, 0x034F, 0x1806, 0x180B...0x180D, 0x200B...0x200D, 0x2060, 0xFE00...0xFE0F, 0xFEFF: return true
        default: return false
        }
    }

    /// RFC 4013 section 2.3's prohibited output (tables C.1.2 to C.9) and code points unassigned in Unicode 3.2
    /// (table A.1).
    private static func isProhibited(_ scalar: Unicode.Scalar) -> Bool {
        let code = scalar.value
        switch code {
        case 0x0000...0x001F, 0x007F, 0x0080...0x009F: return true  // C.2.1, C.2.2: controls
        case 0x06DD, 0x070F, 0x180E, 0x200C...0x200F, 0x2028...0x202E, 0x2060...0x2063, 0x206A...0x206F: return true
        case 0xFEFF, 0xFFF9...0xFFFD, 0x1D173...0x1D17A, 0x0340, 0x0341, 0x2FF0...0x2FFB: return true
        case 0xE000...0xF8FF, 0xF0000...0xFFFFD, 0x100000...0x10FFFD: return true  // C.3: private use
        case 0xFDD0...0xFDEF, 0xE0001, 0xE0020...0xE007F: return true  // C.4, C.9
        case _ where code & 0xFFFE == 0xFFFE: return true  // C.4: the last two code points of every plane
        default: break
        }
        guard let age = scalar.properties.age else { return true }
        return age.major > 3 || (age.major == 3 && age.minor > 2)
    }
}
