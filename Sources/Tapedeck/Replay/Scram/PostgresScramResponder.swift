import Foundation

/// Answers a recorded PostgreSQL SCRAM-SHA-256 login for a live client, one replayed connection at a time.
///
/// A SCRAM client sends a fresh random nonce and checks the server's signature over the whole exchange, so the
/// recorded answers cannot be played as they are. This rewrites the two that depend on the client: the
/// server-first-message (AuthenticationSASLContinue) gets a nonce that starts with the live client's, and the
/// server-final-message (AuthenticationSASLFinal) a signature computed from the password over the exchange as
/// it happened live. Everything else passes untouched.
///
/// It reads the client's first bytes to tell PostgreSQL from anything else: an SSLRequest, a GSSENCRequest or a
/// protocol 3 startup message. Anything else, and anything after the login, passes through with no parsing.
/// Channel-free and value-typed: the handler feeds it both directions in order, split however they arrive.
///
/// ```swift
/// var responder = PostgresScramResponder(password: secrets["postgres-password"])
/// responder.observeClient(clientBytes)
/// let toClient = responder.rewriteUpstream(recordedBytes)
/// ```
struct PostgresScramResponder {
    private enum Stage: Equatable {
        /// The client has not finished its opening: requests for encryption, each answered by one unframed
        /// byte, then the startup message.
        case opening
        /// The upstream's framed messages are read, and held back until whole, until the login ends.
        case authenticating
        /// Not PostgreSQL, or the login is over or cannot be answered: every byte passes untouched.
        case passingThrough
    }

    /// How far the client's part of the login has come.
    private enum ClientStage {
        case opening
        /// Waiting for SASLInitialResponse, which carries the client-first-message.
        case initialResponse
        /// Waiting for SASLResponse, which carries the client-final-message.
        case finalResponse
        /// Nothing more of the client's is needed.
        case done
    }

    /// The secret's name and where else it can come from, for the message that asks for it.
    private static let secretHint =
        "supply it with --secret \(RulePreset.postgresPasswordSecret)=PASSWORD or the environment variable "
        + "TAPEDECK_SECRET_\(RulePreset.postgresPasswordSecret.uppercased().replacingOccurrences(of: "-", with: "_"))"
    /// The longest message read while authenticating. Login messages are tens of bytes; a longer one is no login,
    /// and holding it back would only delay it.
    static let maximumMessageLength = 64 * 1024
    /// PostgreSQL's own limit on a startup message.
    private static let maximumStartupLength = 10_000
    /// What a server may send while a login is under way: Authentication, ErrorResponse, NoticeResponse and
    /// NegotiateProtocolVersion.
    private static let loginTags: [UInt8] = Array("RENv".utf8)
    private static let sslRequestCode: UInt32 = 80_877_103
    private static let gssEncryptionRequestCode: UInt32 = 80_877_104

    private var stage = Stage.opening
    private var clientStage = ClientStage.opening
    /// Encryption requests the upstream has yet to answer, each with one byte.
    private var unansweredRequests = 0
    /// The client's bytes of a message not yet whole.
    private var client: [UInt8] = []
    /// The upstream's bytes held back: a message not yet whole.
    private var upstream: [UInt8] = []
    /// The SCRAM exchange, when there is a password to answer it with.
    private var exchange: ScramExchange?

    /// Set once the recorded upstream asks for SCRAM-SHA-256 and no password was given: the one-line reason for
    /// the mismatch report.
    private(set) var needsPassword: String?
    /// Set when a password was given but the login still could not be answered (a proof made with another
    /// password, an iteration count beyond ``ScramSHA256/maximumIterations``): the one-line reason. The recorded
    /// bytes went out instead, and the client refuses them.
    var failure: String? { exchange?.failure }

    /// - Parameter password: The password of the recorded login; nil to replay without it, which works for
    ///   every login but SCRAM.
    init(password: String?) {
        exchange = password.map(ScramExchange.init(password:))
    }

    /// Whether every byte from now on passes untouched: a handler may stop calling, and converting, once it is.
    var isPassingThrough: Bool { stage == .passingThrough }

    /// Live bytes from the client, raw, in order, any split.
    mutating func observeClient(_ bytes: Data) {
        guard stage != .passingThrough, clientStage != .done else { return }
        client.append(contentsOf: bytes)
        var cursor = 0
        while stage != .passingThrough, clientStage != .done,
            let end = clientMessageEnd(from: cursor)
        {
            receiveFromClient(client[cursor..<end])
            cursor = end
        }
        if stage == .passingThrough || clientStage == .done {
            client = []
        } else {
            client.removeFirst(cursor)
        }
    }

    /// Recorded upstream bytes about to be sent to the client, in order, any split. Returns what to send instead:
    /// while authenticating, whole messages only, so bytes may be held back and returned by a later call.
    mutating func rewriteUpstream(_ bytes: Data) -> Data {
        guard stage != .passingThrough else { return bytes }
        upstream.append(contentsOf: bytes)
        var output = Data()
        var cursor = 0
        while stage != .passingThrough, cursor < upstream.count {
            if unansweredRequests > 0 {
                // The answer to SSLRequest or GSSENCRequest: 'N' goes on in plaintext; 'S' or 'G' starts an
                // encryption replay cannot look into.
                unansweredRequests -= 1
                if upstream[cursor] != UInt8(ascii: "N") { stage = .passingThrough }
                output.append(upstream[cursor])
                cursor += 1
                continue
            }
            // The upstream spoke before the startup message: no PostgreSQL server does.
            guard stage == .authenticating else {
                stage = .passingThrough
                break
            }
            // Nothing but these belongs in a login: anything else passes at once, never held back for want of a
            // length that is not there.
            guard Self.loginTags.contains(upstream[cursor]) else {
                stage = .passingThrough
                break
            }
            guard upstream.count - cursor >= 5 else { break }
            let length = Int(Self.uint32(upstream, at: cursor + 1))
            guard length >= 4, length <= Self.maximumMessageLength else {
                stage = .passingThrough
                break
            }
            guard upstream.count - cursor > length else { break }
            output.append(contentsOf: respond(to: upstream[cursor...(cursor + length)]))
            cursor += 1 + length
        }
        if stage == .passingThrough {
            output.append(contentsOf: upstream[cursor...])
            upstream = []
        } else {
            upstream.removeFirst(cursor)
        }
        return output
    }

    /// The upstream bytes held back, for when the recorded upstream has nothing more to say: everything from
    /// then on passes through.
    mutating func flush() -> Data {
        stage = .passingThrough
        defer { upstream = [] }
        return Data(upstream)
    }

    // MARK: The client's side

    /// Where the client's message starting at `start` ends, once it is whole; nil while it is not.
    private mutating func clientMessageEnd(from start: Int) -> Int? {
        let available = client.count - start
        if clientStage == .opening {
            // Every opening message is an int32 length then a code; a length's first byte is 0 for any message
            // PostgreSQL takes, so most other protocols are told apart on their first byte.
            guard available >= 1 else { return nil }
            guard client[start] == 0 else { return passThrough(returning: nil) }
            guard available >= 4 else { return nil }
            let length = Int(Self.uint32(client, at: start))
            guard length >= 8, length <= Self.maximumStartupLength else { return passThrough(returning: nil) }
            return available >= length ? start + length : nil
        }
        guard available >= 5 else { return nil }
        let length = Int(Self.uint32(client, at: start + 1))
        guard length >= 4, length <= Self.maximumMessageLength else { return passThrough(returning: nil) }
        return available > length ? start + 1 + length : nil
    }

    private mutating func receiveFromClient(_ message: ArraySlice<UInt8>) {
        let start = message.startIndex
        switch clientStage {
        case .opening:
            let code = Self.uint32(client, at: start + 4)
            if message.count == 8, code == Self.sslRequestCode || code == Self.gssEncryptionRequestCode {
                unansweredRequests += 1
            } else if code >> 16 == 3, message.last == 0 {
                // A protocol 3 StartupMessage: its parameters end with an empty name.
                clientStage = .initialResponse
                stage = .authenticating
            } else {
                // A CancelRequest, or an older protocol.
                stage = .passingThrough
            }
        case .initialResponse:
            // 'p': the mechanism, NUL-terminated, then the client-first-message with an int32 length.
            let body = message.dropFirst(5)
            guard message.first == UInt8(ascii: "p"), let nul = body.firstIndex(of: 0),
                String(decoding: body[..<nul], as: UTF8.self) == ScramSHA256.mechanism,
                body.endIndex - nul >= 5, Int(Self.uint32(client, at: nul + 1)) == body.endIndex - nul - 5,
                exchange?.receiveClientFirst(body[(nul + 5)...]) == true
            else {
                stage = .passingThrough
                return
            }
            clientStage = .finalResponse
        case .finalResponse:
            guard message.first == UInt8(ascii: "p"), exchange?.receiveClientFinal(message.dropFirst(5)) == true else {
                stage = .passingThrough
                return
            }
            clientStage = .done
        case .done:
            break
        }
    }

    // MARK: The upstream's side

    /// What the client gets for one whole recorded upstream message.
    private mutating func respond(to message: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let start = message.startIndex
        switch message[start] {
        case UInt8(ascii: "R") where message.count >= 9:
            let body = message.dropFirst(9)
            switch Self.uint32(upstream, at: start + 5) {
            case 10:
                // AuthenticationSASL: the mechanisms the server offers, each NUL-terminated.
                let offersScram = body.split(separator: 0).contains { $0.elementsEqual(ScramSHA256.mechanism.utf8) }
                if offersScram, exchange == nil {
                    needsPassword =
                        "the recorded session logs in with \(ScramSHA256.mechanism), which replays only with the "
                        + "password: \(Self.secretHint)"
                }
                return offersScram && exchange != nil ? message : passThrough(returning: message)
            case 11:
                // AuthenticationSASLContinue: the server-first-message.
                return exchange?.serverFirst(replacing: body).map { Self.authentication(11, $0) }
                    ?? passThrough(returning: message)
            case 12:
                // AuthenticationSASLFinal: the server-final-message; AuthenticationOk follows.
                return exchange?.serverFinal(replacing: body).map { Self.authentication(12, $0) }
                    ?? passThrough(returning: message)
            default:
                // AuthenticationOk ends the login; any other request (a cleartext or MD5 password) needs nothing.
                return passThrough(returning: message)
            }
        case UInt8(ascii: "N"), UInt8(ascii: "v"):
            // A notice, or the server's counter-offer of a protocol version: the login goes on.
            return message
        default:
            // An error ends the login.
            return passThrough(returning: message)
        }
    }

    /// Stops reading: from now on every byte passes untouched.
    private mutating func passThrough<Value>(returning value: Value) -> Value {
        stage = .passingThrough
        return value
    }

    /// An Authentication message ('R') with `code` and an attribute message.
    private static func authentication(_ code: UInt32, _ text: String) -> ArraySlice<UInt8> {
        var message: [UInt8] = [UInt8(ascii: "R")]
        let payload = Array(text.utf8)
        for value in [UInt32(8 + payload.count), code] { withUnsafeBytes(of: value.bigEndian) { message += $0 } }
        return (message + payload)[...]
    }

    private static func uint32(_ bytes: [UInt8], at index: Int) -> UInt32 {
        bytes[index..<(index + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
}
