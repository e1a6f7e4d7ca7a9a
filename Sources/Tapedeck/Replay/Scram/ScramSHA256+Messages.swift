import Foundation

/// The four attribute messages of a SCRAM exchange (RFC 5802, section 7), parsed as far as replay needs them.
///
/// Each keeps the text it was parsed from where the signatures need it byte for byte: `AuthMessage` is made of
/// the messages as sent, never as re-encoded.
extension ScramSHA256 {
    /// `gs2-header client-first-message-bare`: `n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL`.
    struct ClientFirstMessage: Sendable, Hashable {
        /// The GS2 header with both its commas: `n,,`, `y,,` or `p=tls-server-end-point,,`, with an authzid
        /// (`n,a=name,`) when the client named one.
        var header: String
        /// The user name as sent, still escaped (`=2C`, `=3D`). PostgreSQL's clients send it empty: the server
        /// takes the startup message's user instead.
        var username: String
        /// The client's random nonce.
        var nonce: String
        /// `client-first-message-bare`, the part `AuthMessage` starts with.
        var bare: String

        /// Parses the message; nil when it is not one, or asks for a mandatory extension (`m=`) nobody defines.
        init?(parsing bytes: some Collection<UInt8>) {
            guard let text = String(bytes: bytes, encoding: .utf8) else { return nil }
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            guard parts.count >= 4 else { return nil }
            let flag = parts[0]
            guard flag == "n" || flag == "y" || (flag.hasPrefix("p=") && flag.count > 2) else { return nil }
            guard parts[1].isEmpty || parts[1].hasPrefix("a=") else { return nil }
            guard let username = ScramSHA256.attribute(parts[2], "n"), let nonce = ScramSHA256.attribute(parts[3], "r"),
                ScramSHA256.isNonce(nonce)
            else { return nil }
            header = "\(flag),\(parts[1]),"
            self.username = username
            self.nonce = nonce
            bare = parts[2...].joined(separator: ",")
        }
    }

    /// `r=nonce,s=salt,i=iterations`: the server's answer, whose nonce is the client's followed by the server's.
    struct ServerFirstMessage: Sendable, Hashable {
        /// The combined nonce.
        var nonce: String
        /// The salt, decoded.
        var salt: [UInt8]
        /// The iteration count, as the tape says it: checked only when the keys are derived.
        var iterations: Int
        /// Everything after the nonce, with its leading comma, as it was sent: the salt and the iteration count in
        /// their recorded spelling, and any extensions.
        var afterNonce: String

        /// The message as it goes on the wire.
        var text: String { "r=\(nonce)\(afterNonce)" }

        /// Parses the message; nil when it is not one.
        init?(parsing bytes: some Collection<UInt8>) {
            guard let text = String(bytes: bytes, encoding: .utf8) else { return nil }
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            guard parts.count >= 3, let nonce = ScramSHA256.attribute(parts[0], "r"), ScramSHA256.isNonce(nonce),
                let saltText = ScramSHA256.attribute(parts[1], "s"), let salt = Data(base64Encoded: saltText),
                let countText = ScramSHA256.attribute(parts[2], "i"), countText.allSatisfy(\.isASCII),
                let iterations = Int(countText)
            else { return nil }
            self.nonce = nonce
            self.salt = Array(salt)
            self.iterations = iterations
            afterNonce = String(text.dropFirst(2 + nonce.utf8.count))
        }

        /// The same message with another combined nonce.
        func replacingNonce(with nonce: String) -> ServerFirstMessage {
            var message = self
            message.nonce = nonce
            return message
        }
    }

    /// `c=biws,r=nonce,p=proof`: the client's answer, with its proof last.
    struct ClientFinalMessage: Sendable, Hashable {
        /// The channel binding, base64 as sent (`biws` is `n,,`).
        var channelBinding: String
        /// The combined nonce, which must be the server-first-message's.
        var nonce: String
        /// The client proof, decoded.
        var proof: [UInt8]
        /// `client-final-message-without-proof`, the part `AuthMessage` ends with.
        var withoutProof: String

        /// Parses the message; nil when it is not one.
        init?(parsing bytes: some Collection<UInt8>) {
            guard let text = String(bytes: bytes, encoding: .utf8) else { return nil }
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            guard parts.count >= 3, let binding = ScramSHA256.attribute(parts[0], "c"),
                let nonce = ScramSHA256.attribute(parts[1], "r"), ScramSHA256.isNonce(nonce),
                let proofText = ScramSHA256.attribute(parts[parts.count - 1], "p"),
                let proof = Data(base64Encoded: proofText)
            else { return nil }
            channelBinding = binding
            self.nonce = nonce
            self.proof = Array(proof)
            withoutProof = parts.dropLast().joined(separator: ",")
        }
    }

    /// `v=signature` or `e=error`: the server's last word.
    enum ServerFinalMessage: Sendable, Hashable {
        /// The server signature, decoded, and any extensions after it (with their leading comma).
        case verifier([UInt8], extensions: String)
        /// The server refused the login, and says why (`invalid-proof`, say).
        case error(String)

        /// Parses the message; nil when it is not one.
        init?(parsing bytes: some Collection<UInt8>) {
            guard let text = String(bytes: bytes, encoding: .utf8) else { return nil }
            let parts = text.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false)
            if let error = ScramSHA256.attribute(parts[0], "e") {
                self = .error(error)
            } else if let verifier = ScramSHA256.attribute(parts[0], "v"), let signature = Data(base64Encoded: verifier)
            {
                self = .verifier(Array(signature), extensions: parts.count > 1 ? ",\(parts[1])" : "")
            } else {
                return nil
            }
        }

        /// The message as it goes on the wire.
        var text: String {
            switch self {
            case .verifier(let signature, let extensions):
                return "v=\(Data(signature).base64EncodedString())\(extensions)"
            case .error(let error): return "e=\(error)"
            }
        }
    }

    /// The value of `part` when it is the attribute `name=value`.
    fileprivate static func attribute(_ part: Substring, _ name: Character) -> String? {
        guard part.count >= 2, part.first == name, part.dropFirst().first == "=" else { return nil }
        return String(part.dropFirst(2))
    }

    /// Whether `text` is a nonce: printable ASCII but the comma, at least one character.
    static func isNonce(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: ",") }
    }
}
