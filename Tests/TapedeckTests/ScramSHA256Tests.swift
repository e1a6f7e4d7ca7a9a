import Foundation
import Testing

@testable import Tapedeck

/// The SCRAM-SHA-256 math against RFC 7677's test vector, the attribute messages, and SASLprep.
struct ScramSHA256Tests {
    /// RFC 7677, section 3: user "user", password "pencil".
    enum Vector {
        static let clientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        static let serverFirst =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        static let clientFinal =
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            + "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        static let serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    }

    @Test func theRFC7677VectorGivesItsProofAndServerSignature() throws {
        let first = try #require(ScramSHA256.ClientFirstMessage(parsing: Array(Vector.clientFirst.utf8)))
        let server = try #require(ScramSHA256.ServerFirstMessage(parsing: Array(Vector.serverFirst.utf8)))
        let final = try #require(ScramSHA256.ClientFinalMessage(parsing: Array(Vector.clientFinal.utf8)))
        #expect(server.iterations == 4096)
        #expect(server.nonce.hasPrefix(first.nonce))
        #expect(server.text == Vector.serverFirst)
        let keys = try ScramSHA256(password: "pencil", salt: server.salt, iterations: server.iterations)
        let authMessage = ScramSHA256.authMessage(
            clientFirstBare: first.bare,
            serverFirst: server.text,
            clientFinalWithoutProof: final.withoutProof
        )
        #expect(keys.clientProof(authMessage: authMessage) == final.proof)
        #expect(keys.verifies(clientProof: final.proof, authMessage: authMessage))
        let wrong = try ScramSHA256(password: "pencil2", salt: server.salt, iterations: server.iterations)
        #expect(!wrong.verifies(clientProof: final.proof, authMessage: authMessage))
        let signature = ScramSHA256.ServerFinalMessage.verifier(
            keys.serverSignature(authMessage: authMessage),
            extensions: ""
        )
        #expect(signature.text == Vector.serverFinal)
        #expect(ScramSHA256.ServerFinalMessage(parsing: Array(Vector.serverFinal.utf8)) == signature)
    }

    @Test func hiIsPBKDF2WithHMACSHA256() throws {
        // RFC 7914, section 11: PBKDF2-HMAC-SHA256 of "passwd" with salt "salt", one iteration, first block.
        let block = try ScramSHA256.hi(Array("passwd".utf8), salt: Array("salt".utf8), iterations: 1)
        #expect(block.map { String(format: "%02x", $0) }.joined().hasPrefix("55ac046e56e3089fec1691c22544b605"))
    }

    @Test func iterationCountsBeyondTheLimitAreRefusedWithAReason() {
        #expect(throws: TapedeckError.self) { try ScramSHA256.hi([1], salt: [2], iterations: 0) }
        do {
            _ = try ScramSHA256(password: "x", salt: [1, 2, 3], iterations: ScramSHA256.maximumIterations + 1)
            Issue.record("an iteration count beyond the limit was accepted")
        } catch {
            #expect("\(error)".contains("asks for 1000001 iterations"))
        }
    }

    @Test func clientFirstMessagesWithEveryGS2Header() throws {
        for (text, header) in [
            ("n,,n=,r=abc", "n,,"), ("y,,n=,r=abc", "y,,"),
            ("p=tls-server-end-point,,n=,r=abc", "p=tls-server-end-point,,"),
            ("n,a=admin,n=user,r=abc,x=ext", "n,a=admin,"),
        ] {
            let message = try #require(ScramSHA256.ClientFirstMessage(parsing: Array(text.utf8)), "\(text)")
            #expect(message.header == header)
            #expect(message.nonce == "abc")
            #expect(header + message.bare == text)
        }
        for text in ["", "n,,", "x,,n=,r=abc", "n,,m=ext,n=,r=abc", "n,,n=,r=", "n,,n=,r=a b", "n,b,n=,r=abc"] {
            #expect(ScramSHA256.ClientFirstMessage(parsing: Array(text.utf8)) == nil, "\(text)")
        }
    }

    @Test func serverAndClientFinalMessagesAreParsedOrRefused() throws {
        #expect(ScramSHA256.ServerFirstMessage(parsing: Array("r=abc,s=!!,i=4096".utf8)) == nil)
        #expect(ScramSHA256.ServerFirstMessage(parsing: Array("r=abc,s=AAAA,i=-x".utf8)) == nil)
        #expect(ScramSHA256.ServerFirstMessage(parsing: Array("m=x,r=abc,s=AAAA,i=1".utf8)) == nil)
        let server = try #require(ScramSHA256.ServerFirstMessage(parsing: Array("r=abc,s=AAAA,i=7,e=1".utf8)))
        #expect(server.replacingNonce(with: "xyz").text == "r=xyz,s=AAAA,i=7,e=1")
        let final = try #require(ScramSHA256.ClientFinalMessage(parsing: Array("c=eSws,r=abc,x=1,p=AAAA".utf8)))
        #expect(final.withoutProof == "c=eSws,r=abc,x=1")
        #expect(final.channelBinding == "eSws")
        #expect(ScramSHA256.ClientFinalMessage(parsing: Array("c=biws,r=abc".utf8)) == nil)
        #expect(ScramSHA256.ServerFinalMessage(parsing: Array("e=invalid-proof".utf8)) == .error("invalid-proof"))
        #expect(ScramSHA256.ServerFinalMessage(parsing: Array("x=1".utf8)) == nil)
    }

    @Test func saslprepMapsAndNormalizesButKeepsWhatItWouldRefuse() {
        #expect(SASLprep.prepare("pencil") == Array("pencil".utf8))
        #expect(SASLprep.prepare("a\u{7}b") == Array("a\u{7}b".utf8), "ASCII is used as is, controls too")
        #expect(SASLprep.prepare("I\u{00AD}X") == Array("IX".utf8))
        #expect(SASLprep.prepare("a\u{00A0}b") == Array("a b".utf8))
        #expect(SASLprep.prepare("\u{2168}") == Array("IX".utf8), "NFKC")
        #expect(SASLprep.prepare("\u{00AA}") == Array("a".utf8))
        #expect(SASLprep.prepare("\u{00AD}") == Array("\u{00AD}".utf8), "nothing left: used as is")
        #expect(SASLprep.prepare("\u{E000}x\u{00E9}") == Array("\u{E000}x\u{00E9}".utf8), "private use: as is")
        #expect(SASLprep.prepare("\u{1F600}\u{00E9}") == Array("\u{1F600}\u{00E9}".utf8), "unassigned in 3.2")
    }
}
