import Foundation

/// The MySQL and MariaDB lens over a client's stream: the login is compared on its canonical form (user,
/// database, capabilities and the connect attributes that do not name the process; see
/// ``MySQLLoginRequest/canonical``), the authentication packets that follow it not at all, and every command as
/// sent.
///
/// It follows the client's packets alone, by their sequence numbers: the login is the client's first packet,
/// numbered 1 after the upstream's greeting; authentication answers are numbered on from it; the first command
/// starts a new sequence at 0, and from there on the stream passes verbatim at no cost. So a recorded stream and
/// a live one go through the same steps without knowing what the upstream said, and a live client is steered to
/// the recorded session of its own user and database whatever salt the greeting it got carried.
///
/// A client that asks for TLS (an SSL request) or sends what is not a login passes verbatim from there on: the
/// lens never makes a stream mismatch that would have matched without it.
struct MySQLStreamLens: StreamLens {
    private enum Phase {
        case awaitingLogin
        case authenticating
        case passingThrough
    }

    private var phase = Phase.awaitingLogin
    private var held = Data()

    /// What a login is replaced by: a tag, then its canonical form.
    static let loginTag = Data("{tapedeck:mysql:login}".utf8)
    /// What each authentication packet is replaced by: its content answers a random salt, so it never counts.
    static let authenticationToken = Data("{tapedeck:mysql:auth}".utf8)
    /// The longest login or authentication packet the lens holds whole; a longer one passes verbatim (no client
    /// sends one: a login is a few hundred bytes).
    static let maximumHeldPacket = 1 << 20

    var isHolding: Bool { !held.isEmpty }
    var isPassingThrough: Bool { phase == .passingThrough }

    mutating func feed(_ chunk: Data) -> LensOutput {
        guard phase != .passingThrough else { return .verbatim(chunk) }
        held.append(chunk)
        var output = LensOutput()
        while phase != .passingThrough, held.count >= 4 {
            let start = held.startIndex
            let length = Int(held[start]) | Int(held[start + 1]) << 8 | Int(held[start + 2]) << 16
            let sequence = held[start + 3]
            guard length < MySQLPacketFramer.maximumPacketPayload, length <= Self.maximumHeldPacket else {
                phase = .passingThrough
                break
            }
            guard held.count >= 4 + length else { break }
            let payload = [UInt8](held[(start + 4)..<(start + 4 + length)])
            switch (phase, sequence) {
            case (.awaitingLogin, 1):
                guard !MySQLLoginRequest.isSSLRequest(payload), let login = MySQLLoginRequest(payload) else {
                    phase = .passingThrough
                    continue
                }
                output.pieces.append(.replaced(rawCount: 4 + length, canonical: Self.loginTag + Data(login.canonical)))
                phase = .authenticating
            case (.authenticating, let number) where number != 0:
                output.pieces.append(.replaced(rawCount: 4 + length, canonical: Self.authenticationToken))
            default:
                // The first command (sequence 0), or a stream that does not begin with a login.
                phase = .passingThrough
                continue
            }
            held.removeFirst(4 + length)
        }
        if phase == .passingThrough, !held.isEmpty {
            output.pieces.append(.verbatim(held))
            held = Data()
        }
        return output
    }

    mutating func flush() -> LensOutput {
        // A packet cut short by the end of the stream: what there is of it counts as sent.
        defer { held = Data() }
        phase = .passingThrough
        return .verbatim(held)
    }
}
