import Foundation
import Tapedeck

/// How `diff` and `drift` print: JSON for scripts, or text coloured on a terminal.
enum ReviewOutput {
    /// Colour on a terminal, unless `NO_COLOR` says otherwise.
    static func wantsColour() -> Bool {
        isatty(1) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    /// `text` in the ANSI colour `code` (31 red, 32 green) when `colour`, else as it is.
    static func paint(_ text: String, _ code: String, colour: Bool) -> String {
        colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

    /// Writes `value` to standard output as pretty JSON with sorted keys.
    static func writeJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try StandardStreams.writeOutput(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
    }
}
