import Foundation

/// The `uuid` and `timestamps` presets' expressions, matched byte by byte without the regular expression engine.
///
/// They run on every read where digits suggest them, and Foundation's engine costs microseconds a call on Linux
/// (the bytes are handed over as UTF-16 again for each expression). Each matcher finds exactly what its
/// preset's expression finds, word boundaries included; a test compares the two on many inputs.
enum NativeMatcher: Sendable, Hashable {
    /// `(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`
    case uuid
    /// `\b[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?`
    case isoDateTime
    /// `\b[0-9]{8}T[0-9]{6}Z\b`
    case compactDateTime
    /// `\b1[0-9]{9}(?:[0-9]{3})?\b`
    case epoch

    /// The matcher for a preset rule's expression, if it has one.
    static func forPattern(_ pattern: String) -> NativeMatcher? {
        switch pattern {
        case #"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"#: return .uuid
        case #"\b[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?"#:
            return .isoDateTime
        case #"\b[0-9]{8}T[0-9]{6}Z\b"#: return .compactDateTime
        case #"\b1[0-9]{9}(?:[0-9]{3})?\b"#: return .epoch
        default: return nil
        }
    }

    /// The matches that start in `range` of `bytes`, in order and not overlapping, as the expression's
    /// enumeration finds them with transparent bounds; and whether the last one ran into the end of the bytes.
    func scan(_ bytes: UnsafeBufferPointer<UInt8>, in range: Range<Int>) -> (matches: [Range<Int>], lastHitEnd: Bool) {
        var matches: [Range<Int>] = []
        var lastHitEnd = false
        var position = range.lowerBound
        while position < range.upperBound {
            var cursor = Cursor(bytes: bytes)
            if let end = match(at: position, &cursor) {
                matches.append(position..<end)
                lastHitEnd = cursor.hitEnd
                position = max(end, position + 1)
            } else {
                position += 1
            }
        }
        return (matches, lastHitEnd)
    }

    /// Reads bytes, noting when a read runs past the end.
    private struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var hitEnd = false

        mutating func byte(_ index: Int) -> UInt8? {
            guard index < bytes.count else {
                hitEnd = true
                return nil
            }
            return bytes[index]
        }

        mutating func digits(_ index: Int, _ count: Int) -> Bool {
            for offset in 0..<count {
                guard let byte = byte(index + offset), byte &- 0x30 < 10 else { return false }
            }
            return true
        }

        mutating func hex(_ index: Int, _ count: Int) -> Bool {
            for offset in 0..<count {
                guard let byte = byte(index + offset), byte &- 0x30 < 10 || (byte | 0x20) &- 0x61 < 6 else {
                    return false
                }
            }
            return true
        }

        mutating func equals(_ index: Int, _ expected: UInt8) -> Bool {
            byte(index) == expected
        }

        /// `\b` between `index - 1` and `index`.
        mutating func boundary(_ index: Int) -> Bool {
            let before = index > 0 ? NativeMatcher.isWord(bytes[index - 1]) : false
            let after = byte(index).map(NativeMatcher.isWord) ?? false
            return before != after
        }
    }

    /// A word character for `\b`, of a byte read as Latin-1: letters, digits, `_` (and Latin-1's letters).
    static func isWord(_ byte: UInt8) -> Bool {
        if byte < 0x80 {
            return byte &- 0x30 < 10 || (byte | 0x20) &- 0x61 < 26 || byte == UInt8(ascii: "_")
        }
        return byte == 0xAA || byte == 0xB5 || byte == 0xBA || (byte >= 0xC0 && byte != 0xD7 && byte != 0xF7)
    }

    private func match(at start: Int, _ cursor: inout Cursor) -> Int? {
        switch self {
        case .uuid:
            guard cursor.boundary(start), cursor.hex(start, 8) else { return nil }
            var index = start + 8
            for count in [4, 4, 4, 12] {
                guard cursor.equals(index, UInt8(ascii: "-")), cursor.hex(index + 1, count) else { return nil }
                index += 1 + count
            }
            return cursor.boundary(index) ? index : nil
        case .compactDateTime:
            guard cursor.boundary(start), cursor.digits(start, 8), cursor.equals(start + 8, UInt8(ascii: "T")),
                cursor.digits(start + 9, 6), cursor.equals(start + 15, UInt8(ascii: "Z")), cursor.boundary(start + 16)
            else { return nil }
            return start + 16
        case .epoch:
            guard cursor.boundary(start), cursor.equals(start, UInt8(ascii: "1")), cursor.digits(start + 1, 9) else {
                return nil
            }
            if cursor.digits(start + 10, 3), cursor.boundary(start + 13) { return start + 13 }
            return cursor.boundary(start + 10) ? start + 10 : nil
        case .isoDateTime:
            guard cursor.boundary(start), cursor.digits(start, 4), cursor.equals(start + 4, UInt8(ascii: "-")),
                cursor.digits(start + 5, 2), cursor.equals(start + 7, UInt8(ascii: "-")), cursor.digits(start + 8, 2)
            else { return nil }
            guard let separator = cursor.byte(start + 10), separator == UInt8(ascii: "T") || separator == 0x20,
                cursor.digits(start + 11, 2), cursor.equals(start + 13, UInt8(ascii: ":")), cursor.digits(start + 14, 2)
            else { return nil }
            var end = start + 16
            // (?::[0-9]{2}(?:[.,][0-9]+)?)?
            if cursor.equals(end, UInt8(ascii: ":")), cursor.digits(end + 1, 2) {
                end += 3
                if let mark = cursor.byte(end), mark == UInt8(ascii: ".") || mark == UInt8(ascii: ","),
                    cursor.digits(end + 1, 1)
                {
                    end += 2
                    while let byte = cursor.byte(end), byte &- 0x30 < 10 { end += 1 }
                }
            }
            // (?:Z|[+-][0-9]{2}:?[0-9]{2})?
            if let zone = cursor.byte(end) {
                if zone == UInt8(ascii: "Z") {
                    end += 1
                } else if zone == UInt8(ascii: "+") || zone == UInt8(ascii: "-"), cursor.digits(end + 1, 2) {
                    if cursor.equals(end + 3, UInt8(ascii: ":")), cursor.digits(end + 4, 2) {
                        end += 6
                    } else if cursor.digits(end + 3, 2) {
                        end += 5
                    }
                }
            }
            return end
        }
    }
}
