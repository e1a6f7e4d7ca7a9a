import Foundation

/// Finding bytes in bytes without building anything: memchr finds each candidate first byte, memcmp checks the
/// rest. (memmem is a GNU extension the C library does not declare by default.)
enum ByteSearch {
    /// Whether `needle` occurs in `haystack`.
    static func contains(_ needle: UnsafeRawBufferPointer, in haystack: UnsafeRawBufferPointer) -> Bool {
        guard let base = haystack.baseAddress, let pattern = needle.baseAddress, needle.count > 0,
            haystack.count >= needle.count
        else { return false }
        let first = Int32(needle[0])
        let lastStart = haystack.count - needle.count
        var from = 0
        while from <= lastStart {
            guard let found = memchr(base + from, first, lastStart - from + 1) else { return false }
            if memcmp(found, pattern, needle.count) == 0 { return true }
            from = UnsafeRawPointer(found) - base + 1
        }
        return false
    }
}
