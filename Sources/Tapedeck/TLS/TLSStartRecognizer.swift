import Foundation

/// Where TLS starts in a session, recognized in its two byte streams without configuration: a ClientHello as the
/// client's first bytes, or a protocol's own upgrade: PostgreSQL's `SSLRequest` answered `S`, SMTP's `STARTTLS`
/// answered `220`, MySQL's SSL request after the server's greeting. Channel-free: fed the bytes of both
/// directions in the order they arrive, it says once where each direction's TLS begins, or that the session stays
/// plaintext.
struct TLSStartRecognizer {
    /// The upgrade a session went through before TLS.
    enum Upgrade: String, Sendable, Hashable {
        /// TLS from the first byte.
        case direct
        case postgres
        case smtp
        case mysql
    }

    /// What the recognizer concluded.
    enum Decision: Sendable, Hashable {
        /// Not known yet.
        case undecided
        /// TLS starts at these offsets of the client's and the upstream's streams.
        case tls(Upgrade, clientOffset: Int, upstreamOffset: Int)
        /// The session does not start TLS where the recognizer looks.
        case plaintext
    }

    private enum Stage {
        /// Nothing seen yet.
        case start
        /// The client asked PostgreSQL for TLS; waiting for the one-byte answer. TLS would start at `clientOffset`.
        case postgresAsked(clientOffset: Int)
        /// The client asked PostgreSQL for GSSAPI encryption first; waiting for the one-byte answer (`N`, then the
        /// client may ask for TLS).
        case postgresGSSAsked
        /// The upstream spoke first with an SMTP greeting: waiting for the client's `STARTTLS`.
        case smtpCommands
        /// The client sent `STARTTLS`: waiting for the upstream's reply line.
        case smtpAsked(clientOffset: Int)
        /// The upstream sent a MySQL greeting: waiting for the client's first packet.
        case mysqlGreeted
    }

    private(set) var decision: Decision = .undecided
    private var stage: Stage = .start
    private var client = Data()
    private var upstream = Data()

    /// The longest a stream is buffered while undecided; beyond it the session is taken as plaintext.
    static let lookahead = 16 * 1024

    /// PostgreSQL's `SSLRequest` and `GSSENCRequest`: a length of 8 and a request code.
    static let sslRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]
    static let gssEncryptionRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x30]

    /// Bytes from the client.
    mutating func client(_ bytes: Data) -> Decision {
        guard decision == .undecided else { return decision }
        client.append(bytes)
        switch stage {
        case .start:
            if client.first == 0x16 {
                // A TLS record of type handshake: a ClientHello, once its version byte shows.
                guard client.count >= 2 else { return decision }
                return decide(
                    client[client.startIndex + 1] == 0x03
                        ? .tls(.direct, clientOffset: 0, upstreamOffset: 0) : .plaintext
                )
            }
            for (request, next) in [
                (Self.sslRequest, Stage.postgresAsked(clientOffset: clientConsumed + 8)),
                (Self.gssEncryptionRequest, Stage.postgresGSSAsked),
            ]
            where request.starts(with: client.prefix(8)) {
                guard client.count >= 8 else { return decision }
                // The request is answered before anything else is sent; what the client sends later is TLS.
                stage = next
                clientConsumed += 8
                client.removeFirst(8)
                return decision
            }
            // The client spoke first, with something else: no upgrade the recognizer knows follows.
            return decide(.plaintext)
        case .postgresAsked, .postgresGSSAsked:
            return decision
        case .smtpCommands:
            // Commands are lines; STARTTLS is one of them, alone.
            while let end = client.firstIndex(of: UInt8(ascii: "\n")) {
                let line = client[client.startIndex..<end]
                let consumedTo = end - client.startIndex + 1
                if String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    .caseInsensitiveCompare("STARTTLS") == .orderedSame
                {
                    stage = .smtpAsked(clientOffset: clientConsumed + consumedTo)
                    clientConsumed += consumedTo
                    client.removeFirst(consumedTo)
                    return decision
                }
                clientConsumed += consumedTo
                client.removeFirst(consumedTo)
            }
            return client.count > Self.lookahead ? decide(.plaintext) : decision
        case .smtpAsked:
            return decision
        case .mysqlGreeted:
            // The client's first packet: a 32-byte SSL request (sequence 1) with CLIENT_SSL set, or a login.
            guard client.count >= 4 else { return decision }
            let length =
                Int(client[client.startIndex]) | Int(client[client.startIndex + 1]) << 8
                | Int(client[client.startIndex + 2]) << 16
            guard client.count >= 4 + min(length, 4) else { return decision }
            let flags =
                client.count >= 6 ? Int(client[client.startIndex + 4]) | Int(client[client.startIndex + 5]) << 8 : 0
            if length == 32, client[client.startIndex + 3] == 1, flags & 0x0800 != 0 {
                return decide(.tls(.mysql, clientOffset: 4 + 32, upstreamOffset: upstreamConsumed))
            }
            return decide(.plaintext)
        }
    }

    /// How many of each stream's bytes were consumed (dropped from the buffers) so far.
    private var clientConsumed = 0
    private var upstreamConsumed = 0

    /// Bytes from the upstream.
    mutating func upstream(_ bytes: Data) -> Decision {
        guard decision == .undecided else { return decision }
        upstream.append(bytes)
        switch stage {
        case .start:
            guard client.isEmpty else { return decision }
            // The upstream speaks first: an SMTP greeting, or a MySQL handshake packet.
            if upstream.starts(with: Data("220".utf8)) {
                stage = .smtpCommands
                upstreamConsumed += upstream.count
                upstream.removeAll()
                return decision
            }
            guard upstream.count >= 5 else { return Data("220".utf8).starts(with: upstream) ? decision : decideMySQL() }
            return decideMySQL()
        case .postgresAsked(let clientOffset):
            guard let answer = upstream.first else { return decision }
            let offset = upstreamConsumed + 1
            return decide(
                answer == UInt8(ascii: "S")
                    ? .tls(.postgres, clientOffset: clientOffset, upstreamOffset: offset) : .plaintext
            )
        case .postgresGSSAsked:
            guard let answer = upstream.first else { return decision }
            guard answer == UInt8(ascii: "N") else { return decide(.plaintext) }
            // Refused: the client may ask for TLS next, on the same connection.
            stage = .start
            upstreamConsumed += 1
            upstream.removeFirst()
            let pending = client
            client = Data()
            return pending.isEmpty ? decision : self.client(pending)
        case .smtpCommands:
            upstreamConsumed += bytes.count
            upstream.removeAll()
            return decision
        case .smtpAsked(let clientOffset):
            // The reply to STARTTLS: `220` ready (TLS follows it), anything else refuses.
            guard let end = upstream.firstIndex(of: UInt8(ascii: "\n")) else {
                return upstream.count > Self.lookahead ? decide(.plaintext) : decision
            }
            let line = upstream[upstream.startIndex..<end]
            guard line.starts(with: Data("220".utf8)) else { return decide(.plaintext) }
            return decide(
                .tls(
                    .smtp,
                    clientOffset: clientOffset,
                    upstreamOffset: upstreamConsumed + (end - upstream.startIndex) + 1
                )
            )
        case .mysqlGreeted:
            upstreamConsumed += bytes.count
            upstream.removeAll()
            return decision
        }
    }

    /// A MySQL greeting: a packet of sequence 0 whose payload starts with protocol version 10 and which
    /// advertises CLIENT_SSL.
    private mutating func decideMySQL() -> Decision {
        guard upstream.count >= 5 else { return decision }
        let length =
            Int(upstream[upstream.startIndex]) | Int(upstream[upstream.startIndex + 1]) << 8
            | Int(upstream[upstream.startIndex + 2]) << 16
        guard upstream[upstream.startIndex + 3] == 0, upstream[upstream.startIndex + 4] == 10, length > 0 else {
            return decide(.plaintext)
        }
        guard upstream.count >= 4 + length else {
            return upstream.count > Self.lookahead ? decide(.plaintext) : decision
        }
        stage = .mysqlGreeted
        upstreamConsumed = 4 + length
        let rest = upstream.dropFirst(4 + length)
        upstream.removeAll()
        if !rest.isEmpty { return upstream(Data(rest)) }
        return decision
    }

    private mutating func decide(_ decision: Decision) -> Decision {
        self.decision = decision
        client = Data()
        upstream = Data()
        return decision
    }
}
