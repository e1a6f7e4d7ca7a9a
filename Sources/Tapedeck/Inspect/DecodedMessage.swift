/// A protocol message of a recorded session as a lens reads it, for `show`, `grep` and `export` with
/// `--decode`: a MySQL command or result set, an HTTP/2 stream's headers, a WebSocket message.
public struct DecodedMessage: Sendable, Hashable, Codable {
    /// The lens that read it (`mysql`, `http2`, `websocket`).
    public var lens: String
    /// Who sent it: `client` or `upstream`.
    public var from: String
    /// The message on one line: what it is and its main fields.
    public var summary: String
    /// More of it, a line each (a result set's rows, a stream's headers); none when the summary says it all.
    public var details: [String]

    /// Creates a message.
    public init(lens: String, from: String, summary: String, details: [String] = []) {
        self.lens = lens
        self.from = from
        self.summary = summary
        self.details = details
    }

    /// The summary and the details, one per line: what `grep --decode` searches.
    public var text: String {
        ([summary] + details).joined(separator: "\n")
    }
}
