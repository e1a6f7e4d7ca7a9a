import Foundation

/// A stretch of a recorded upstream send that replay replaces with a live value: a client's volatile value the
/// upstream echoed (a request id, a nonce), or a redacted span whose secret was supplied at replay.
struct UpstreamEdit: Sendable, Hashable {
    /// Where the live value comes from.
    enum Source: Sendable, Hashable {
        /// The live client's value of the volatile span whose token starts at this position of the normalized
        /// client stream.
        case clientValue(position: Int)
        /// The value of the secret of this name (`--secret NAME=VALUE`).
        case secret(String)
    }

    /// The bytes replaced, within the send.
    var range: Range<Int>
    var source: Source

    /// The least length of a recorded volatile value looked for in the upstream's bytes: shorter ones (a
    /// two-digit number) would be found where they are no echo.
    static let echoMinimumLength = 6

    /// `bytes` with each edit's stretch replaced by its value (edits whose value is nil are left as recorded),
    /// and, where a value's length differs from what it replaces, the length that frames it fixed: HTTP/1.1's
    /// `Content-Length` of the message whose body holds it, and the length of a RESP bulk string that holds it.
    static func apply(_ edits: [UpstreamEdit], to bytes: Data, values: (Source) -> Data?) -> Data {
        var result = bytes
        // Back to front, so that earlier ranges stay where they were.
        for edit in edits.sorted(by: { $0.range.lowerBound > $1.range.lowerBound }) {
            guard let value = values(edit.source), edit.range.upperBound <= result.count else { continue }
            let start = result.startIndex + edit.range.lowerBound
            let end = result.startIndex + edit.range.upperBound
            guard result[start..<end] != value else { continue }
            result.replaceSubrange(start..<end, with: value)
            let delta = value.count - edit.range.count
            if delta != 0 { result = FramingFixer.fix(result, editedAt: edit.range.lowerBound, delta: delta) }
        }
        return result
    }
}

/// Fixes the length that frames an edited stretch of bytes: the two framings replay knows.
enum FramingFixer {
    /// `bytes`, in which the stretch at `position` grew by `delta` bytes (shrank, when negative), with the length
    /// of the HTTP/1.1 body or RESP bulk string around it fixed. Other framings are left as they are.
    static func fix(_ bytes: Data, editedAt position: Int, delta: Int) -> Data {
        if let fixed = fixRESPBulk(bytes, position: position, delta: delta) { return fixed }
        if let fixed = fixContentLength(bytes, position: position, delta: delta) { return fixed }
        return bytes
    }

    /// A bulk string `$<length>\r\n<data>\r\n` whose data holds `position`.
    private static func fixRESPBulk(_ bytes: Data, position: Int, delta: Int) -> Data? {
        let base = bytes.startIndex
        // The nearest line start before the edit that begins `$digits\r\n`.
        var lineStart = position
        while lineStart > 0 {
            if bytes[base + lineStart - 1] == UInt8(ascii: "\n") {
                if bytes[base + lineStart] == UInt8(ascii: "$") { break }
            }
            lineStart -= 1
        }
        guard lineStart > 0 || bytes.first == UInt8(ascii: "$"), bytes[base + lineStart] == UInt8(ascii: "$") else {
            return nil
        }
        var index = lineStart + 1
        var length = 0
        while index < bytes.count, let digit = Int(exactly: bytes[base + index]), (48...57).contains(digit) {
            length = length * 10 + digit - 48
            index += 1
            guard length < 1 << 40 else { return nil }
        }
        guard index > lineStart + 1, index + 1 < bytes.count, bytes[base + index] == UInt8(ascii: "\r"),
            bytes[base + index + 1] == UInt8(ascii: "\n")
        else { return nil }
        let dataStart = index + 2
        // The recorded length, before the edit changed it, must have covered the edited stretch.
        guard position >= dataStart, position < dataStart + length + max(0, delta) else { return nil }
        var fixed = bytes
        fixed.replaceSubrange((base + lineStart + 1)..<(base + index), with: Data("\(length + delta)".utf8))
        return fixed
    }

    /// The `Content-Length` of the HTTP/1.1 message whose body holds `position`.
    private static func fixContentLength(_ bytes: Data, position: Int, delta: Int) -> Data? {
        let text = bytes
        let separator = Data("\r\n\r\n".utf8)
        guard
            let headerEnd = text.range(
                of: separator,
                options: .backwards,
                in: text.startIndex..<(text.startIndex + position)
            )
        else { return nil }
        // The start of the message: the last status or request line before the header end.
        let head = text[text.startIndex..<headerEnd.lowerBound]
        let messageStart =
            head.range(of: Data("HTTP/1.".utf8), options: .backwards).map { found -> Data.Index in
                // A status line starts with HTTP/1.x; back up to its line start.
                var start = found.lowerBound
                while start > text.startIndex, text[start - 1] != UInt8(ascii: "\n") { start -= 1 }
                return start
            } ?? text.startIndex
        let headers = text[messageStart..<headerEnd.lowerBound]
        guard let name = headers.range(of: Data("\ncontent-length:".utf8)) ?? caseInsensitiveHeader(headers) else {
            return nil
        }
        var valueStart = name.upperBound
        while valueStart < headers.endIndex, text[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        var valueEnd = valueStart
        var length = 0
        while valueEnd < headers.endIndex, (48...57).contains(text[valueEnd]) {
            length = length * 10 + Int(text[valueEnd]) - 48
            valueEnd += 1
            guard length < 1 << 40 else { return nil }
        }
        guard valueEnd > valueStart else { return nil }
        var fixed = bytes
        fixed.replaceSubrange(valueStart..<valueEnd, with: Data("\(max(0, length + delta))".utf8))
        return fixed
    }

    /// `Content-Length` spelled in any case.
    private static func caseInsensitiveHeader(_ headers: Data) -> Range<Data.Index>? {
        let lowered = Data(headers.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 })
        guard let found = lowered.range(of: Data("\ncontent-length:".utf8)) else { return nil }
        let offset = found.lowerBound - lowered.startIndex
        return (headers.startIndex + offset)..<(headers.startIndex + offset + found.count)
    }
}
