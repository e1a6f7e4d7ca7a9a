import Foundation

/// Something a fuzz harness saw go wrong short of a trap: a rejection that is not a one-line ``TapedeckError``,
/// or a value that breaks a promise its type makes (an address that does not parse back, say).
///
/// The fuzz targets crash on it, so that libFuzzer keeps the input; the unit tests record it as an issue.
struct FuzzFinding: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }

    /// Nil if `error` is a ``TapedeckError`` with `code` (any code when nil) and a message of one line, free of
    /// control characters; otherwise what is wrong with it.
    static func checkRejection(_ error: any Error, code: TapedeckError.Code? = nil, input: String) -> FuzzFinding? {
        guard let error = error as? TapedeckError else {
            return FuzzFinding("\(input): rejected with \(type(of: error)), not a TapedeckError: \(error)")
        }
        if let code, error.code != code {
            return FuzzFinding("\(input): rejected with code '\(error.code)', expected '\(code)': \(error.message)")
        }
        if error.message.isEmpty {
            return FuzzFinding("\(input): rejected with an empty message")
        }
        // Every error is printed as one line on stderr: a line break in it would split it, or forge another, and
        // other control characters (a terminal escape) would play tricks with the terminal.
        if error.message.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
            return FuzzFinding("\(input): rejected with control characters in \(error.message.debugDescription)")
        }
        return nil
    }
}

/// Reads a fuzzer's bytes as a stream of small decisions; past the end every read gives zeros, so any input
/// decodes to something.
struct FuzzInput {
    private let bytes: [UInt8]
    private var position = 0

    init(_ data: Data) {
        bytes = Array(data)
    }

    /// Whether every byte was read.
    var isAtEnd: Bool { position >= bytes.count }

    /// The next byte, or 0 at the end.
    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    /// A number in `0..<bound` (`bound` at most 65,536), from one or two bytes.
    mutating func number(below bound: Int) -> Int {
        precondition(bound > 0 && bound <= 1 << 16)
        if bound <= 256 { return Int(byte()) % bound }
        return (Int(byte()) << 8 | Int(byte())) % bound
    }

    /// Whether the next byte is odd.
    mutating func flag() -> Bool { byte() & 1 == 1 }

    /// The next `count` bytes, fewer at the end.
    mutating func data(count: Int) -> Data {
        let end = min(bytes.count, position + max(0, count))
        defer { position = max(position, end) }
        return position < end ? Data(bytes[position..<end]) : Data()
    }
}
