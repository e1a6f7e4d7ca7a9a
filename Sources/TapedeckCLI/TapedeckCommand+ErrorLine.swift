import ArgumentParser

extension TapedeckCommand {
    /// The one line that says what is wrong with a command line, as `tapedeck: error:` prints it.
    ///
    /// The parser says a refused flag value as "The value 'x' is invalid for '--upstream <address>': " followed
    /// by the reason the flag's conversion gave. Every conversion here gives a reason that names the value, most
    /// of them the library's own (`invalid address 'x': expected HOST:PORT or unix:/path`, as a config file with
    /// that address gets too), so the reason alone is the line.
    static func errorLine(for error: any Error) -> String {
        let message = self.message(for: error)
        let text = refusedValueReason(in: message) ?? message[...]
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
        return line.prefix(1).lowercased() + line.dropFirst()
    }

    /// The reason in the parser's message for a refused value, or nil for any other message.
    static func refusedValueReason(in message: String) -> Substring? {
        guard message.hasPrefix("The value '"), let flag = message.range(of: "' is invalid for '"),
            let reason = message[flag.upperBound...].range(of: "': ")
        else { return nil }
        return message[reason.upperBound...]
    }
}
