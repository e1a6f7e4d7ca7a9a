import Foundation

/// Whether the tests run under ThreadSanitizer or AddressSanitizer (`swift test --sanitize=thread|address`).
///
/// Sanitized builds run several times slower and keep shadow memory of several times the heap: a test that
/// bounds a wait or a process's memory stretches the bound, or checks it only in a plain build.
enum Sanitizer {
    /// A sanitizer's runtime is linked into this process (and so into the `tapedeck` built beside it).
    static let isActive: Bool = ["__tsan_init", "__asan_init"].contains { (name: String) in dlsym(nil, name) != nil }

    /// `duration`, or five times it under a sanitizer.
    static func scaled(_ duration: Duration) -> Duration {
        isActive ? duration * 5 : duration
    }
}
