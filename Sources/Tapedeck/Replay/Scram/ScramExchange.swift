import Crypto
import Foundation

/// The server's side of one SCRAM-SHA-256 exchange replayed for a live client: the recorded server messages,
/// rewritten for the client's nonce and signed with the password.
///
/// The protocol around it (PostgreSQL's, say) feeds it the client's two messages and the two recorded server
/// messages as they come, and sends what it answers. Deterministic: the same exchange always gets the same
/// answers, however its bytes were split.
///
/// ```swift
/// var exchange = ScramExchange(password: "pencil")
/// _ = exchange.receiveClientFirst(clientFirst)
/// let serverFirst = exchange.serverFirst(replacing: recordedServerFirst)
/// ```
struct ScramExchange {
    private let password: String
    private var clientFirst: ScramSHA256.ClientFirstMessage?
    private var clientFinal: ScramSHA256.ClientFinalMessage?
    /// The server-first-message as the live client got it, and the keys that sign the exchange.
    private var server: (first: ScramSHA256.ServerFirstMessage, keys: ScramSHA256)?

    /// Set when the exchange could not be answered though a password was given: the one-line reason. The
    /// recorded message goes out instead, and the client refuses it.
    private(set) var failure: String?

    init(password: String) {
        self.password = password
    }

    /// Takes the live client's client-first-message; false when it is not one.
    mutating func receiveClientFirst(_ bytes: some Collection<UInt8>) -> Bool {
        clientFirst = ScramSHA256.ClientFirstMessage(parsing: bytes)
        return clientFirst != nil
    }

    /// Takes the live client's client-final-message; false when it is not one.
    mutating func receiveClientFinal(_ bytes: some Collection<UInt8>) -> Bool {
        clientFinal = ScramSHA256.ClientFinalMessage(parsing: bytes)
        return clientFinal != nil
    }

    /// The server-first-message for the live client: the recorded one with a nonce that starts with the client's
    /// and the recorded salt and iteration count. Nil when the exchange cannot be answered.
    mutating func serverFirst(replacing recorded: some Collection<UInt8>) -> String? {
        guard let clientFirst, let recorded = ScramSHA256.ServerFirstMessage(parsing: recorded) else { return nil }
        // The recorded nonce is the recorded client's then the server's. The recorded client's length is not
        // known, but a client sends nonces of one length, so the live one's stands for it: the server's part,
        // and the message's length, stay as recorded. Nonces are ASCII, so characters are bytes.
        let clientNonce = clientFirst.nonce
        var serverPart = String(recorded.nonce.dropFirst(clientNonce.count))
        if serverPart.isEmpty {
            // A shorter recorded nonce: a server part derived from it, so the answer is still the same every time.
            serverPart = String(Data(SHA256.hash(data: Array(recorded.nonce.utf8))).base64EncodedString().prefix(24))
        }
        let message = recorded.replacingNonce(with: clientNonce + serverPart)
        do {
            // The keys now, while the client computes its own: a count beyond the limit fails the login here.
            let keys = try ScramSHA256(password: password, salt: message.salt, iterations: message.iterations)
            server = (message, keys)
        } catch {
            failure = "\(error)"
            return nil
        }
        return message.text
    }

    /// The server-final-message for the live client: a signature over the exchange as it happened live. Nil when
    /// the exchange cannot be answered, the client's proof not made with the password among the reasons: the
    /// recorded message then goes out, and the client refuses it as the server would have refused the client.
    mutating func serverFinal(replacing recorded: some Collection<UInt8>) -> String? {
        guard let clientFirst, let clientFinal, let server,
            case .verifier(_, let extensions)? = ScramSHA256.ServerFinalMessage(parsing: recorded)
        else { return nil }
        guard clientFinal.nonce == server.first.nonce else {
            failure = "the client's \(ScramSHA256.mechanism) final message does not carry the nonce replay sent"
            return nil
        }
        let authMessage = ScramSHA256.authMessage(
            clientFirstBare: clientFirst.bare,
            serverFirst: server.first.text,
            clientFinalWithoutProof: clientFinal.withoutProof
        )
        guard server.keys.verifies(clientProof: clientFinal.proof, authMessage: authMessage) else {
            failure = "the client's \(ScramSHA256.mechanism) proof was made with another password than the one given"
            return nil
        }
        let signature = server.keys.serverSignature(authMessage: authMessage)
        return ScramSHA256.ServerFinalMessage.verifier(signature, extensions: extensions).text
    }
}
