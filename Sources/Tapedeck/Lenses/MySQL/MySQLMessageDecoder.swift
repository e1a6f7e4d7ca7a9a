import Foundation

/// Reads a recorded MySQL or MariaDB session into messages for `--decode`: the greeting, the login (user,
/// database, plugin, connect attributes), authentication, each command by name, and what answered it (OK, an
/// error, a result set with its columns and rows, a prepared statement).
struct MySQLMessageDecoder: MessageDecoder {
    /// What the upstream's next packets answer.
    private enum Awaiting: Sendable {
        case nothing
        /// A command answered by OK or an error.
        case status
        /// A statement being prepared: its id and counts, or an error.
        case prepared
        /// A query or an executed statement: OK, an error, or a result set.
        case result(binary: Bool)
        /// The column definitions of a result set, then its rows.
        case columns(remaining: Int, names: [String], binary: Bool)
        /// The EOF packet after the column definitions, when the session did not deprecate it.
        case columnsEnd(names: [String], binary: Bool)
        case rows(names: [String], rows: [String], count: Int, binary: Bool)
        /// A prepared statement's parameter and column definitions: skipped, they were summarized.
        case definitions(remaining: Int)
    }

    private var conversation = MySQLConversation()
    private var awaiting = Awaiting.nothing
    private var deprecatesEOF = false
    private var loginCapabilities: UInt64 = 0
    private var broken = false

    /// Rows of a result set shown under it; the summary counts them all.
    static let shownRows = 20

    mutating func client(_ bytes: Data) -> [DecodedMessage] {
        guard !broken else { return [] }
        guard let messages = try? conversation.client(bytes) else { return stop("a client message too long to read") }
        var decoded: [DecodedMessage] = []
        for message in messages { decoded.append(describe(message)) }
        return decoded
    }

    mutating func upstream(_ bytes: Data) -> [DecodedMessage] {
        guard !broken else { return [] }
        let phase = conversation.phase
        guard let packets = try? conversation.upstream(bytes) else { return stop("a reply too long to read") }
        var messages: [DecodedMessage] = []
        var phaseBefore = phase
        for packet in packets {
            if let message = describe(upstream: packet, phase: phaseBefore) { messages.append(message) }
            phaseBefore = conversation.phase
        }
        return messages
    }

    private mutating func stop(_ why: String) -> [DecodedMessage] {
        broken = true
        return [DecodedMessage(lens: "mysql", from: "client", summary: "no longer decoded: \(why)")]
    }

    // MARK: Client

    private mutating func describe(_ message: MySQLConversation.Message) -> DecodedMessage {
        func client(_ summary: String, _ details: [String] = []) -> DecodedMessage {
            DecodedMessage(lens: "mysql", from: "client", summary: summary, details: details)
        }
        switch message.kind {
        case .sslRequest:
            return client("SSL request: TLS follows")
        case .authentication:
            return client("authentication answer, \(message.packet.payload.count) bytes")
        case .unknown(let payload):
            return client("packet \(message.packet.sequence), \(payload.count) bytes")
        case .login:
            guard let login = MySQLLoginRequest(message.packet.payload) else { return client("login") }
            loginCapabilities = login.capabilities
            deprecatesEOF = (loginCapabilities & Self.deprecateEOF) != 0 && deprecatesEOF
            var summary = "login user=\(Self.text(login.user))"
            if let database = login.database { summary += " database=\(Self.text(database))" }
            if let plugin = login.authPlugin { summary += " plugin=\(Self.text(plugin))" }
            let attributes = login.attributes.map { "\(Self.text($0.key))=\(Self.text($0.value))" }
            return client(summary, attributes.isEmpty ? [] : ["attributes: " + attributes.joined(separator: " ")])
        case .command(let payload):
            guard let code = payload.first else { return client("empty command") }
            let argument = Array(payload.dropFirst())
            let name = Self.commandNames[code] ?? String(format: "command 0x%02X", code)
            switch code {
            case 0x03, 0x16:
                awaiting = code == 0x03 ? .result(binary: false) : .prepared
                return client("\(name) \(Self.text(argument))")
            case 0x02:
                awaiting = .status
                return client("\(name) \(Self.text(argument))")
            case 0x17:
                awaiting = .result(binary: true)
                var reader = MySQLReader(argument)
                let id = reader.integer(width: 4).map { " statement \($0)" } ?? ""
                return client("\(name)\(id), \(argument.count) bytes")
            case 0x19, 0x18:
                awaiting = .nothing
                var reader = MySQLReader(argument)
                return client("\(name)\(reader.integer(width: 4).map { " statement \($0)" } ?? "")")
            case 0x01:
                awaiting = .nothing
                return client(name)
            default:
                awaiting = .status
                return client(argument.isEmpty ? name : "\(name), \(argument.count) bytes")
            }
        }
    }

    // MARK: Upstream

    private mutating func describe(upstream packet: MySQLPacket, phase: MySQLConversation.Phase) -> DecodedMessage? {
        let payload = packet.payload
        func upstream(_ summary: String, _ details: [String] = []) -> DecodedMessage {
            DecodedMessage(lens: "mysql", from: "upstream", summary: summary, details: details)
        }
        switch phase {
        case .awaitingGreeting:
            guard let greeting = conversation.greeting else { return upstream(Self.error(payload) ?? "not a greeting") }
            deprecatesEOF = (greeting.capabilities & Self.deprecateEOF) != 0
            var summary = "greeting \(Self.text(greeting.serverVersion)) connection \(greeting.connectionID)"
            if let plugin = greeting.authPlugin { summary += " plugin=\(Self.text(plugin))" }
            return upstream(summary)
        case .authenticating, .awaitingLogin:
            switch payload.first {
            case 0x00: return upstream("logged in")
            case 0xFF: return upstream(Self.error(payload) ?? "error")
            case 0xFE:
                var reader = MySQLReader(Array(payload.dropFirst()))
                return upstream("auth switch to \(reader.nulTerminated().map(Self.text) ?? "?")")
            default: return upstream("more authentication data, \(payload.count) bytes")
            }
        case .encrypted, .ended:
            return nil
        case .commands:
            return result(payload, upstream)
        }
    }

    private mutating func result(
        _ payload: [UInt8],
        _ upstream: (String, [String]) -> DecodedMessage
    ) -> DecodedMessage? {
        switch awaiting {
        case .nothing:
            return upstream("packet, \(payload.count) bytes", [])
        case .status, .result, .prepared:
            if payload.first == 0xFF {
                awaiting = .nothing
                return upstream(Self.error(payload) ?? "error", [])
            }
            if payload.first == 0x00, case .prepared = awaiting, payload.count >= 9 {
                // A prepared statement: id, columns, parameters; their definitions follow.
                var reader = MySQLReader(Array(payload.dropFirst()))
                let id = reader.integer(width: 4) ?? 0
                let columns = Int(reader.integer(width: 2) ?? 0)
                let parameters = Int(reader.integer(width: 2) ?? 0)
                let eofs = deprecatesEOF ? 0 : (columns > 0 ? 1 : 0) + (parameters > 0 ? 1 : 0)
                awaiting =
                    columns + parameters + eofs > 0 ? .definitions(remaining: columns + parameters + eofs) : .nothing
                return upstream("prepared statement \(id): \(columns) columns, \(parameters) parameters", [])
            }
            if payload.first == 0x00 {
                awaiting = .nothing
                return upstream(Self.ok(payload), [])
            }
            if payload.first == 0xFB {
                awaiting = .nothing
                return upstream("local file requested: \(Self.text(Array(payload.dropFirst())))", [])
            }
            var reader = MySQLReader(payload)
            guard case .result(let binary) = awaiting, let count = reader.lengthEncodedInteger(), count > 0 else {
                awaiting = .nothing
                return upstream("packet, \(payload.count) bytes", [])
            }
            awaiting = .columns(remaining: Int(min(count, 4096)), names: [], binary: binary)
            return nil
        case .columns(let remaining, var names, let binary):
            names.append(Self.columnName(payload))
            if remaining > 1 {
                awaiting = .columns(remaining: remaining - 1, names: names, binary: binary)
            } else {
                awaiting =
                    deprecatesEOF
                    ? .rows(names: names, rows: [], count: 0, binary: binary)
                    : .columnsEnd(names: names, binary: binary)
            }
            return nil
        case .columnsEnd(let names, let binary):
            awaiting = .rows(names: names, rows: [], count: 0, binary: binary)
            return nil
        case .rows(let names, var rows, let count, let binary):
            if payload.first == 0xFE, payload.count < 0xFF_FFFF, payload.count < 9 || deprecatesEOF {
                awaiting = .nothing
                let more = count > rows.count ? ["… \(count - rows.count) more rows"] : []
                return upstream(
                    "result set: \(names.count) columns (\(names.joined(separator: ", "))), \(count) rows",
                    rows + more
                )
            }
            if payload.first == 0xFF {
                awaiting = .nothing
                return upstream(Self.error(payload) ?? "error", [])
            }
            if rows.count < Self.shownRows {
                rows.append(binary ? "binary row, \(payload.count) bytes" : Self.row(payload))
            }
            awaiting = .rows(names: names, rows: rows, count: count + 1, binary: binary)
            return nil
        case .definitions(let remaining):
            awaiting = remaining > 1 ? .definitions(remaining: remaining - 1) : .nothing
            return nil
        }
    }

    // MARK: Fields

    /// `CLIENT_DEPRECATE_EOF`: result sets end with an OK packet, and no EOF follows column definitions.
    static let deprecateEOF: UInt64 = 1 << 24

    static let commandNames: [UInt8: String] = [
        0x01: "COM_QUIT", 0x02: "COM_INIT_DB", 0x03: "COM_QUERY", 0x04: "COM_FIELD_LIST", 0x09: "COM_STATISTICS",
        0x0C: "COM_PROCESS_KILL", 0x0D: "COM_DEBUG", 0x0E: "COM_PING", 0x11: "COM_CHANGE_USER",
        0x16: "COM_STMT_PREPARE", 0x17: "COM_STMT_EXECUTE", 0x18: "COM_STMT_SEND_LONG_DATA", 0x19: "COM_STMT_CLOSE",
        0x1A: "COM_STMT_RESET", 0x1B: "COM_SET_OPTION", 0x1C: "COM_STMT_FETCH", 0x1F: "COM_RESET_CONNECTION",
    ]

    static func text(_ bytes: [UInt8]) -> String {
        ByteExcerpt.render(Data(bytes.prefix(512)))
    }

    /// An OK packet: affected rows and last insert id.
    static func ok(_ payload: [UInt8]) -> String {
        var reader = MySQLReader(Array(payload.dropFirst()))
        let affected = reader.lengthEncodedInteger() ?? 0
        let inserted = reader.lengthEncodedInteger() ?? 0
        return "OK, \(affected) rows affected" + (inserted > 0 ? ", last insert id \(inserted)" : "")
    }

    /// An error packet: code, SQL state and message; nil when `payload` is not one.
    static func error(_ payload: [UInt8]) -> String? {
        guard payload.first == 0xFF else { return nil }
        var reader = MySQLReader(Array(payload.dropFirst()))
        let code = reader.integer(width: 2) ?? 0
        var state = ""
        if reader.remaining >= 6, reader.bytes[reader.offset] == UInt8(ascii: "#") {
            _ = reader.bytes(1)
            state = " (\(text(reader.bytes(5) ?? [])))"
        }
        return "ERR \(code)\(state): \(text(reader.rest()))"
    }

    /// A column definition's name (the fifth length-encoded string).
    static func columnName(_ payload: [UInt8]) -> String {
        var reader = MySQLReader(payload)
        for _ in 0..<4 { _ = reader.lengthEncodedString() }
        return reader.lengthEncodedString().map(text) ?? "?"
    }

    /// A text-protocol row: its values, NULL where the column is.
    static func row(_ payload: [UInt8]) -> String {
        var reader = MySQLReader(payload)
        var values: [String] = []
        while reader.remaining > 0 {
            if reader.bytes[reader.offset] == 0xFB {
                _ = reader.bytes(1)
                values.append("NULL")
            } else if let value = reader.lengthEncodedString() {
                values.append(text(value))
            } else {
                break
            }
        }
        return values.joined(separator: " | ")
    }
}
