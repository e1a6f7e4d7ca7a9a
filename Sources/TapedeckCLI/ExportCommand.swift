import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck export`: sessions as pcapng (Wireshark, tshark) or JSON lines.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export sessions as pcapng for Wireshark and tshark, as JSON lines, or the tape as reviewable text.",
        discussion: """
            pcapng: each session as a TCP stream with synthesized IPv4/IPv6 and TCP headers (handshake, sequence \
            and acknowledgement numbers, FIN or RST as recorded, recorded timestamps). Sessions over Unix sockets \
            get stand-in addresses 127.0.0.1 and 127.0.0.2. jsonl: one object per event, payloads in base64. text: \
            the whole tape, stable and deterministic, for review and `git diff`; `tapedeck import` reads it back.
            """
    )

    @Argument(help: ArgumentHelp("The tape to read.", valueName: "tape"))
    var tape: String

    @Option(
        help: ArgumentHelp("pcapng, jsonl or text.", valueName: "format"),
        transform: { text in
            guard let format = TapeExporter.Format(rawValue: text) else {
                throw ValidationError("unknown format '\(text)': use pcapng, jsonl or text")
            }
            return format
        }
    )
    var format: TapeExporter.Format

    @Option(
        name: .customLong("session"),
        help: ArgumentHelp("A session to export (repeatable); all by default.", valueName: "id")
    )
    var sessions: [Int64] = []

    @Option(help: ArgumentHelp("The file to write ('-' for stdout).", valueName: "file"))
    var output: String

    @Flag(help: "Write even where a symbolic link stands at --output (to the file it points to).")
    var force = false

    @Flag(
        help:
            "jsonl: add to each event the protocol messages it completes, read through its session's lens (MySQL, HTTP/2, WebSocket)."
    )
    var decode = false

    func validate() throws {
        if decode, format != .jsonl { throw ValidationError("--decode works with --format jsonl") }
        if format == .text, !sessions.isEmpty {
            throw ValidationError("--session does not go with --format text, which holds the whole tape")
        }
    }

    func run() throws {
        let tapeFile = try Tape(readingAt: tape)
        if output == "-" {
            let buffer = OutputBuffer()
            try TapeExporter.export(tapeFile, sessions: sessions, format: format, decode: decode, to: buffer)
            try buffer.finish()
        } else {
            // A new owner-only file renamed into place when complete: a failed export leaves nothing behind.
            try OutputFile.write(to: output, followingSymlink: force) { buffer in
                try TapeExporter.export(tapeFile, sessions: sessions, format: format, decode: decode, to: buffer)
            }
        }
    }
}
