import Crypto
import Foundation

/// The keys of a SCRAM-SHA-256 login (RFC 5802, RFC 7677) derived from a password, a salt and an iteration count,
/// and the proofs and signatures made with them.
///
/// Replay answers a recorded SCRAM login for a live client whose nonce differs from the recorded one: the
/// server signature it must send depends on that nonce, so it is computed here from the password, with the
/// recorded salt and iteration count.
///
/// ```swift
/// let keys = try ScramSHA256(password: "pencil", salt: salt, iterations: 4096)
/// let signature = keys.serverSignature(authMessage: authMessage)
/// ```
struct ScramSHA256: Sendable, Hashable {
    /// The SASL mechanism's name, as PostgreSQL lists it in AuthenticationSASL.
    static let mechanism = "SCRAM-SHA-256"
    /// The largest iteration count replay computes. The count comes from the tape, which is untrusted: a huge
    /// one would stall the event loop. PostgreSQL's default is 4096.
    static let maximumIterations = 1_000_000

    /// `Hi(Normalize(password), salt, i)`.
    let saltedPassword: [UInt8]
    /// `HMAC(SaltedPassword, "Client Key")`.
    let clientKey: [UInt8]
    /// `H(ClientKey)`: what the server keeps to check a client proof.
    let storedKey: [UInt8]
    /// `HMAC(SaltedPassword, "Server Key")`.
    let serverKey: [UInt8]

    /// Derives the keys from a password, normalized as PostgreSQL does (see ``SASLprep``).
    ///
    /// - Throws: ``TapedeckError`` when `iterations` is below 1 or above ``maximumIterations``.
    init(password: String, salt: [UInt8], iterations: Int) throws {
        try self.init(saltedPassword: Self.hi(SASLprep.prepare(password), salt: salt, iterations: iterations))
    }

    /// The keys of an already salted password.
    init(saltedPassword: [UInt8]) {
        self.saltedPassword = saltedPassword
        clientKey = Self.hmac(key: saltedPassword, Array("Client Key".utf8))
        storedKey = Array(SHA256.hash(data: clientKey))
        serverKey = Self.hmac(key: saltedPassword, Array("Server Key".utf8))
    }

    /// `Hi()` of RFC 5802: PBKDF2 with HMAC-SHA-256 as its pseudo-random function, one block of output.
    ///
    /// - Throws: ``TapedeckError`` when `iterations` is below 1 or above ``maximumIterations``.
    static func hi(_ password: [UInt8], salt: [UInt8], iterations: Int) throws -> [UInt8] {
        guard iterations >= 1, iterations <= maximumIterations else {
            throw TapedeckError(
                .replayMismatch,
                "the recorded SCRAM-SHA-256 login asks for \(iterations) iterations: replay computes 1 to "
                    + "\(maximumIterations)"
            )
        }
        // The keyed state is made once and copied for every round: keying HMAC again each time would double
        // the work, and PostgreSQL's 4096 rounds are already the bulk of a replayed login.
        let keyed = HMAC<SHA256>(key: SymmetricKey(data: password))
        var round = keyed
        round.update(data: salt)
        round.update(data: [0, 0, 0, 1])
        var block = Array(round.finalize())
        var result = block
        for _ in 1..<iterations {
            round = keyed
            round.update(data: block)
            block = Array(round.finalize())
            for index in result.indices { result[index] ^= block[index] }
        }
        return result
    }

    /// `AuthMessage`: what both signatures sign.
    static func authMessage(clientFirstBare: String, serverFirst: String, clientFinalWithoutProof: String) -> String {
        "\(clientFirstBare),\(serverFirst),\(clientFinalWithoutProof)"
    }

    /// `ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)`: what a client sends.
    func clientProof(authMessage: String) -> [UInt8] {
        let signature = Self.hmac(key: storedKey, Array(authMessage.utf8))
        return zip(clientKey, signature).map { $0 ^ $1 }
    }

    /// `ServerSignature = HMAC(ServerKey, AuthMessage)`: what the server sends in `v=`, and the client checks.
    func serverSignature(authMessage: String) -> [UInt8] {
        Self.hmac(key: serverKey, Array(authMessage.utf8))
    }

    /// Whether a client proof was made with this password, checked as a server does: the proof XOR the client
    /// signature gives a client key whose hash must be the stored key.
    func verifies(clientProof proof: [UInt8], authMessage: String) -> Bool {
        guard proof.count == storedKey.count else { return false }
        let signature = Self.hmac(key: storedKey, Array(authMessage.utf8))
        let recoveredClientKey = zip(proof, signature).map { $0 ^ $1 }
        // Compared in constant time, as a server would: cheap, and no timing says how much of a proof was right.
        return zip(Array(SHA256.hash(data: recoveredClientKey)), storedKey).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    private static func hmac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }
}
