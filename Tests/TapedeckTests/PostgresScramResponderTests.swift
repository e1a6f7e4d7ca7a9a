import Foundation
import Testing

@testable import Tapedeck

/// The SCRAM responder on whole logins made with the RFC math: recorded with one client nonce, replayed for a
/// client with another.
struct PostgresScramResponderTests {
    typealias W = PostgresWire

    /// A SCRAM-SHA-256 login as PostgreSQL and libpq make it, in phases: what the client sends, then what the
    /// upstream answers. The recorded upstream answered a client whose nonce differs from the live one's.
    struct Login {
        var password = "correct horse"
        var clientPassword = "correct horse"
        var iterations = 4096
        var opening = W.sslRequest
        let salt = (0..<16).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
        let recordedClientNonce = "rOprNGfwEbeRWgbNEkqO9x/+"
        let serverPart = "%hvYDpWUa2RaTCAfuxFIlj)h"
        let liveClientNonce = "fyko+d2lbbFgONRv9qkxdawL"

        func serverFirst(clientNonce: String) -> String {
            "r=\(clientNonce)\(serverPart),s=\(Data(salt).base64EncodedString()),i=\(iterations)"
        }

        /// The client-final-message and the server-final-message for a client with `clientNonce`.
        func finalMessages(clientNonce: String, password: String) throws -> (client: String, server: String) {
            let keys = try ScramSHA256(password: password, salt: salt, iterations: iterations)
            let withoutProof = "c=biws,r=\(clientNonce)\(serverPart)"
            let authMessage = ScramSHA256.authMessage(
                clientFirstBare: "n=,r=\(clientNonce)",
                serverFirst: serverFirst(clientNonce: clientNonce),
                clientFinalWithoutProof: withoutProof
            )
            let proof = Data(keys.clientProof(authMessage: authMessage)).base64EncodedString()
            let signature = Data(keys.serverSignature(authMessage: authMessage)).base64EncodedString()
            return ("\(withoutProof),p=\(proof)", "v=\(signature)")
        }

        /// Each phase's client bytes (live) and upstream bytes (recorded).
        func phases() throws -> [(client: [UInt8], upstream: [UInt8])] {
            let recordedFinal = try finalMessages(clientNonce: recordedClientNonce, password: password).server
            let liveFinal = try finalMessages(clientNonce: liveClientNonce, password: clientPassword).client
            let start: [(client: [UInt8], upstream: [UInt8])] =
                opening == W.sslRequest ? [(W.sslRequest, Array("N".utf8))] : []
            return start + [
                (W.startup(), W.authenticationSASL()),
                (
                    W.saslInitialResponse("n,,n=,r=\(liveClientNonce)"),
                    W.authentication(11, Array(serverFirst(clientNonce: recordedClientNonce).utf8))
                ),
                (W.saslResponse(liveFinal), W.authentication(12, Array(recordedFinal.utf8)) + W.loggedIn),
            ]
        }

        /// What the live client must get: the recorded upstream with its server-first and server-final made for
        /// the live client.
        func expectedUpstream() throws -> [UInt8] {
            let liveFinal = try finalMessages(clientNonce: liveClientNonce, password: password).server
            return (opening == W.sslRequest ? Array("N".utf8) : []) + W.authenticationSASL()
                + W.authentication(11, Array(serverFirst(clientNonce: liveClientNonce).utf8))
                + W.authentication(12, Array(liveFinal.utf8)) + W.loggedIn
        }
    }

    /// Plays the phases in order, each stream cut at the given offsets (counted from its start) besides the
    /// phases' own bounds; returns everything the client got.
    static func play(
        _ phases: [(client: [UInt8], upstream: [UInt8])],
        password: String?,
        clientCuts: Set<Int> = [],
        upstreamCuts: Set<Int> = []
    ) -> (output: [UInt8], responder: PostgresScramResponder) {
        var responder = PostgresScramResponder(password: password)
        var output: [UInt8] = []
        var offsets = (client: 0, upstream: 0)
        for phase in phases {
            for chunk in chunks(phase.client, from: offsets.client, cuts: clientCuts) {
                responder.observeClient(Data(chunk))
            }
            for chunk in chunks(phase.upstream, from: offsets.upstream, cuts: upstreamCuts) {
                output += responder.rewriteUpstream(Data(chunk))
            }
            offsets.client += phase.client.count
            offsets.upstream += phase.upstream.count
        }
        return (output, responder)
    }

    static func chunks(_ bytes: [UInt8], from offset: Int, cuts: Set<Int>) -> [ArraySlice<UInt8>] {
        var chunks: [ArraySlice<UInt8>] = []
        var start = 0
        for index in 1..<max(1, bytes.count) where cuts.contains(offset + index) {
            chunks.append(bytes[start..<index])
            start = index
        }
        return chunks + [bytes[start...]]
    }

    @Test func aReplayedLoginPassesTheLiveClientsOwnCheck() throws {
        let login = Login()
        let phases = try login.phases()
        let (output, responder) = Self.play(phases, password: login.password)
        #expect(responder.needsPassword == nil)
        #expect(responder.failure == nil)
        #expect(responder.isPassingThrough)
        #expect(output == (try login.expectedUpstream()))
        #expect(output.count == phases.map(\.upstream.count).reduce(0, +), "the rewritten messages keep their length")

        // The client's side, as libpq checks it: the nonce it gets starts with its own, and the server signature
        // is the one its password gives over the exchange as it saw it.
        var rest = output.dropFirst(1 + W.authenticationSASL().count)
        let serverFirstLength = Int(rest.dropFirst().prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }) + 1
        let serverFirst = try #require(
            ScramSHA256.ServerFirstMessage(parsing: rest.prefix(serverFirstLength).dropFirst(9))
        )
        #expect(serverFirst.nonce.hasPrefix(login.liveClientNonce))
        #expect(serverFirst.nonce.count > login.liveClientNonce.count)
        rest = rest.dropFirst(serverFirstLength)
        let serverFinal = try #require(ScramSHA256.ServerFinalMessage(parsing: rest.prefix(9 + 46).dropFirst(9)))
        let clientFinal = try #require(
            ScramSHA256.ClientFinalMessage(parsing: phases[3].client.dropFirst(5))
        )
        let keys = try ScramSHA256(password: login.clientPassword, salt: serverFirst.salt, iterations: 4096)
        let authMessage = ScramSHA256.authMessage(
            clientFirstBare: "n=,r=\(login.liveClientNonce)",
            serverFirst: serverFirst.text,
            clientFinalWithoutProof: clientFinal.withoutProof
        )
        #expect(serverFinal == .verifier(keys.serverSignature(authMessage: authMessage), extensions: ""))
    }

    /// Every cut of the client's stream, every cut of the upstream's, and both a byte at a time, with and without
    /// the SSLRequest: the client always gets the same bytes. (Few iterations: the cuts are what is tested.)
    @Test func everySplitOfEitherStreamGivesTheSameBytes() throws {
        for opening in [W.sslRequest, W.startup()] {
            let login = Login(iterations: 8, opening: opening)
            let phases = try login.phases()
            let expected = try login.expectedUpstream()
            let clientLength = phases.map(\.client.count).reduce(0, +)
            let upstreamLength = phases.map(\.upstream.count).reduce(0, +)
            for cut in 1..<clientLength {
                #expect(Self.play(phases, password: login.password, clientCuts: [cut]).output == expected, "\(cut)")
            }
            for cut in 1..<upstreamLength {
                #expect(Self.play(phases, password: login.password, upstreamCuts: [cut]).output == expected, "\(cut)")
            }
            let everyByte = Self.play(
                phases,
                password: login.password,
                clientCuts: Set(1..<clientLength),
                upstreamCuts: Set(1..<upstreamLength)
            )
            #expect(everyByte.output == expected)
            #expect(everyByte.responder.failure == nil)
        }
    }

    @Test func withoutAPasswordTheLoginPassesThroughAndSaysHowToSupplyIt() throws {
        let phases = try Login().phases()
        let (output, responder) = Self.play(phases, password: nil)
        #expect(output == phases.flatMap(\.upstream))
        let reason = try #require(responder.needsPassword)
        #expect(reason.contains("SCRAM-SHA-256"))
        #expect(reason.contains("--secret postgres-password=PASSWORD"))
        #expect(reason.contains("TAPEDECK_SECRET_POSTGRES_PASSWORD"))
        #expect(responder.isPassingThrough)
    }

    @Test func aProofMadeWithAnotherPasswordGetsTheRecordedSignature() throws {
        let login = Login(clientPassword: "battery staple")
        let phases = try login.phases()
        let (output, responder) = Self.play(phases, password: login.password)
        let recordedTail = phases[3].upstream
        #expect(output.suffix(recordedTail.count) == recordedTail[...])
        #expect(responder.failure?.contains("another password") == true)
    }

    @Test func anIterationCountBeyondTheLimitFailsWithAReason() throws {
        let login = Login(iterations: ScramSHA256.maximumIterations + 1)
        // The client's proof is never checked: the responder gives up at the server-first-message.
        var phases = try Login(iterations: 1).phases()
        phases[2].upstream = W.authentication(11, Array(login.serverFirst(clientNonce: login.recordedClientNonce).utf8))
        let (output, responder) = Self.play(phases, password: login.password)
        #expect(output == phases.flatMap(\.upstream))
        #expect(responder.failure?.contains("1000001 iterations") == true)
    }

    @Test func otherProtocolsAndOtherLoginsPassThroughUntouched() {
        let md5 = W.authentication(5, [1, 2, 3, 4])
        let cases: [(name: String, client: [UInt8], upstream: [UInt8])] = [
            ("HTTP", Array("GET / HTTP/1.1\r\n\r\n".utf8), Array("HTTP/1.1 200 OK\r\n\r\n".utf8)),
            ("a server that speaks first", [], Array("220 mail ready\r\n".utf8)),
            ("TLS", W.sslRequest, Array("S\u{16}\u{3}\u{1}".utf8)),
            ("a cancel request", W.cancelRequest, W.authentication(0)),
            ("MD5", W.startup(), md5 + W.loggedIn),
            ("an error", W.startup(), W.message("E", Array("SFATAL\u{0}\u{0}".utf8)) + W.loggedIn),
            ("another mechanism", W.startup(), W.authenticationSASL(["OAUTHBEARER"]) + W.loggedIn),
            // Another binary protocol whose first message passes for a startup message: its reply still passes at
            // once, however short.
            ("a look-alike", W.opening(code: 0x0003_0001, [0]), Array("ok".utf8)),
        ]
        for (name, client, upstream) in cases {
            var responder = PostgresScramResponder(password: "x")
            responder.observeClient(Data(client))
            #expect(responder.rewriteUpstream(Data(upstream)) == Data(upstream), "\(name)")
            #expect(responder.isPassingThrough, "\(name)")
            #expect(responder.needsPassword == nil && responder.failure == nil, "\(name)")
        }
    }

    @Test func encryptionRequestsAreEachAnsweredByOneByte() {
        var responder = PostgresScramResponder(password: "x")
        responder.observeClient(Data(W.gssEncryptionRequest))
        #expect(responder.rewriteUpstream(Data("N".utf8)) == Data("N".utf8))
        responder.observeClient(Data(W.sslRequest))
        #expect(responder.rewriteUpstream(Data("N".utf8)) == Data("N".utf8))
        responder.observeClient(Data(W.startup()))
        // Held back until whole, then given.
        let sasl = W.authenticationSASL()
        #expect(responder.rewriteUpstream(Data(sasl.prefix(6))).isEmpty)
        #expect(responder.rewriteUpstream(Data(sasl.dropFirst(6))) == Data(sasl))
        #expect(!responder.isPassingThrough)
    }

    @Test func heldBackBytesComeOutOnFlush() {
        var responder = PostgresScramResponder(password: "x")
        responder.observeClient(Data(W.startup()))
        let sasl = W.authenticationSASL()
        #expect(responder.rewriteUpstream(Data(sasl.prefix(7))).isEmpty)
        #expect(responder.flush() == Data(sasl.prefix(7)))
        #expect(responder.isPassingThrough)
        #expect(responder.rewriteUpstream(Data(sasl.dropFirst(7))) == Data(sasl.dropFirst(7)))
    }
}
