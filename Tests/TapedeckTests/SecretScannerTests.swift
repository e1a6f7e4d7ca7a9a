import Foundation
import Testing

@testable import Tapedeck

/// `SecretScanner`: each detector on crafted conversations, streams joined across reads, placeholders, masking.
@Suite(.timeLimit(.minutes(3)))
struct SecretScannerTests {
    typealias Read = ConversationTape.Read

    /// The kinds found, in order, as `kind@seq:offset`.
    static func summary(_ findings: [SecretFinding]) -> [String] {
        findings.map { "\($0.kind)@\($0.seq):\($0.offset)" }
    }

    @Test func presetRulesAreDetectorsWhenTheirSpansAreSecrets() throws {
        for preset in RulePreset.allCases {
            for rule in preset.rules where rule.kind == .redact {
                #expect(SecretKind(presetRule: rule) != nil, "\(rule)")
            }
        }
        for rule in RulePreset.uuid.rules + RulePreset.timestamps.rules {
            #expect(SecretKind(presetRule: rule) == nil, "\(rule)")
        }
        let aws = RulePreset.awsSigV4.rules.compactMap(SecretKind.init(presetRule:))
        #expect(aws == [.awsSignature, .awsSecurityToken])
        let kinds = Set(try SecretDetector.all().map(\.kind))
        #expect(kinds == Set(SecretKind.allCases))
    }

    @Test func httpCredentialHeadersAreFoundBothWays() throws {
        let findings = try ConversationTape.findings([
            [
                .client("GET / HTTP/1.1\r\nHost: api\r\nCookie: session=0123456789abcdef\r\n\r\n"),
                .upstream("HTTP/1.1 200 OK\r\nSet-Cookie: id=42; Path=/\r\nContent-Length: 0\r\n\r\n"),
                .client("GET / HTTP/1.1\r\nX-Api-Key: k-123\r\n\r\n"),
            ]
        ])
        #expect(Self.summary(findings) == ["http-auth@0:35", "http-auth@1:29", "http-auth@2:27"])
        #expect(findings.map(\.direction) == [.clientToUpstream, .upstreamToClient, .clientToUpstream])
        // The context runs on into the next read of the stream.
        #expect(
            findings[0].excerpt
                == "1.1\\r\\nHost: api\\r\\nCookie: se********************ef\\r\\n\\r\\nGET / HTTP/1.1\\r\\nX-Ap"
        )
        #expect(findings[1].excerpt == "1.1 200 OK\\r\\nSet-Cookie: id*********=/\\r\\nContent-Length: 0\\r\\n\\r\\n")
    }

    @Test func aBearerTokenOutranksTheHeaderItIsIn() throws {
        let findings = try ConversationTape.findings([
            [.client("GET / HTTP/1.1\r\nAuthorization: Bearer abc.def-123456\r\n\r\n")]
        ])
        #expect(Self.summary(findings) == ["bearer-token@0:31"])
    }

    @Test func awsSignaturesTokensAndKeyIdsAreFound() throws {
        let findings = try ConversationTape.findings([
            [
                .client(
                    "GET /b HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 "
                        + "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, "
                        + "Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024\r\n"
                        + "X-Amz-Security-Token: FwoGZXIvYXdzEBYaDHqa0AP\r\n\r\n"
                ),
                .client("GET /b?X-Amz-Credential=minio%2F20130524&X-Amz-Signature=aeeed9bbccd4d02ee5c0 HTTP/1.1\r\n"),
            ]
        ])
        #expect(
            Self.summary(findings) == [
                "http-auth@0:32", "aws-access-key@0:60", "aws-signature@0:147", "aws-security-token@0:235",
                "aws-credential@1:24", "aws-signature@1:57",
            ]
        )
        // Inside the masked Authorization value, the key id still shows its ends.
        #expect(findings[1].excerpt == "************************AK****************LE************************")
    }

    @Test func privateKeyBlocksAreMaskedWhole() throws {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2\n-----END RSA PRIVATE KEY-----\n"
        let findings = try ConversationTape.findings([[.upstream("HTTP/1.1 200 OK\r\n\r\n" + key + "done")]])
        #expect(Self.summary(findings) == ["private-key@0:19"])
        #expect(!findings[0].excerpt.contains("MIIE"))
        #expect(findings[0].excerpt.hasSuffix("--\\ndone"))
    }

    @Test func jwtsAreFoundWhereverTheyAppear() throws {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
        let findings = try ConversationTape.findings([
            [.upstream("HTTP/1.1 200 OK\r\n\r\n{\"token\":\"\(jwt)\"}"), .client("eyJeyJeyJ.eyJ")]
        ])
        #expect(Self.summary(findings) == ["jwt@0:29"])
    }

    @Test func redisAuthIsFoundInRESPAndInlineButNotWhereTheServerGreets() throws {
        let findings = try ConversationTape.findings([
            [.client("*2\r\n$4\r\nAUTH\r\n$8\r\nhunter42\r\n"), .upstream("+OK\r\n")],
            [.client("*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$16\r\ncorrect-horse-42\r\n")],
            [.client("AUTH hunter42\r\n")],
            // An FTP server greets first; its client's AUTH TLS is no password.
            [.upstream("220 ftp ready\r\n"), .client("AUTH TLS\r\n")],
        ])
        #expect(findings.map(\.sessionID) == [1, 2, 2, 3])
        #expect(Self.summary(findings) == ["redis-auth@0:18", "redis-auth@0:18", "redis-auth@0:30", "redis-auth@0:5"])
        #expect(findings[0].excerpt == "*2\\r\\n$4\\r\\nAUTH\\r\\n$8\\r\\n********\\r\\n")
        // Each excerpt masks the other secret beside it too.
        #expect(findings[1].excerpt.contains("*****\\r\\n$16\\r\\nco************42"))
        #expect(findings[2].excerpt.contains("*****\\r\\n$16\\r\\nco************42"))
    }

    @Test func aPostgresPasswordMessageIsFound() throws {
        let message: [UInt8] = [UInt8(ascii: "p"), 0, 0, 0, 13] + Array("hunter42".utf8) + [0]
        let findings = try ConversationTape.findings([
            [.upstream("R\0\0\0\u{8}\0\0\0\u{3}"), .client(bytes: message), .upstream("R\0\0\0\u{8}\0\0\0\0")]
        ])
        #expect(Self.summary(findings) == ["postgres-password@1:5"])
        #expect(findings[0].excerpt == "p\\x00\\x00\\x00\\r********\\x00")
    }

    @Test func smtpCredentialsAreFoundAfterChallengesOnly() throws {
        let findings = try ConversationTape.findings([
            [
                .upstream("220 mail ESMTP\r\n"), .client("EHLO me\r\n"), .upstream("250-mail\r\n250 AUTH LOGIN\r\n"),
                .client("AUTH LOGIN\r\n"), .upstream("334 VXNlcm5hbWU6\r\n"), .client("YWRh\r\n"),
                .upstream("334 UGFzc3dvcmQ6\r\n"), .client("aHVudGVyNDI=\r\n"), .upstream("235 2.7.0 ok\r\n"),
                .client("QUIT\r\n"),
            ],
            [.upstream("220 mail ESMTP\r\n"), .client("AUTH PLAIN AGFkYQBodW50ZXI0Mg==\r\n")],
        ])
        #expect(findings.map(\.sessionID) == [1, 1, 2])
        #expect(Self.summary(findings) == ["smtp-auth@5:0", "smtp-auth@7:0", "smtp-auth@1:11"])
        #expect(findings[2].excerpt == "AUTH PLAIN AG****************==\\r\\n")
    }

    @Test func aChallengeSplitAcrossReadsIsStillOne() {
        var tracker = ChallengeTracker()
        tracker.read(Data("250 ok\r\n33".utf8))
        #expect(!tracker.lastLineIsChallenge)
        tracker.read(Data("4 VXNlcm5hbWU6".utf8))
        #expect(!tracker.lastLineIsChallenge)
        tracker.read(Data("\r\n".utf8))
        #expect(tracker.lastLineIsChallenge)
        tracker.read(Data("235 ok\r\n3345 no\r\n".utf8))
        #expect(!tracker.lastLineIsChallenge)
        tracker.read(Data("334\n".utf8))
        #expect(tracker.lastLineIsChallenge)
    }

    @Test func aSecretSplitAcrossReadsIsFoundWhereItStarts() throws {
        let findings = try ConversationTape.findings([
            [
                .client("PUT /k HTTP/1.1\r\nX-Key-Id: AKIAIOSF"), .upstream("HTTP/1.1 100 Continue\r\n\r\n"),
                .client("ODNN7EXA"), .client("MPLE\r\n\r\n"),
            ]
        ])
        #expect(Self.summary(findings) == ["aws-access-key@0:27"])
        #expect(findings[0].excerpt == " /k HTTP/1.1\\r\\nX-Key-Id: AK****************LE\\r\\n\\r\\n")
    }

    @Test func redactionPlaceholdersAreNotFindings() throws {
        let findings = try ConversationTape.findings([
            [
                .client("GET / HTTP/1.1\r\nAuthorization: ****************\r\nCookie: ****\r\n\r\n"),
                .client("*2\r\n$4\r\nAUTH\r\n$8\r\n********\r\n"),
            ]
        ])
        #expect(findings.isEmpty)
    }

    @Test func theRedisFixtureIsClean() throws {
        let tape = try Tape(readingAt: InspectCommandTests.fixture)
        defer { try? tape.close() }
        #expect(try SecretScanner().findings(in: tape).isEmpty)
    }

    /// A stream cut into 64-byte chunks finds what it finds whole: secrets across chunk boundaries, excerpts
    /// with their context from the chunk before.
    @Test func smallChunksFindWhatTheWholeStreamHolds() throws {
        var reads: [Read] = []
        for index in 0..<40 {
            let filler = String(repeating: "x", count: index % 7 * 5)
            reads.append(.client("\(filler)\r\nAuthorization: Bearer tok\(index)-abcdefgh\r\n"))
            reads.append(.upstream("\(filler) AKIAIOSFODNN7EXAMP\(index % 10)E "))
        }
        let whole = try ConversationTape.findings([reads])
        let chunked = try ConversationTape.findings(
            [reads],
            limits: SecretStream.Limits(chunk: 64, overlap: 96, lookbehind: 32)
        )
        #expect(whole.count == 80)
        #expect(chunked == whole)
    }

    /// A tape is untrusted input: streams made to make a pattern backtrack, or to hold a secret every few bytes,
    /// scan in time that grows with their size (a secret per line once took minutes a megabyte).
    @Test func hostileStreamsScanInLinearTime() async throws {
        let size = 128 << 10
        let streams = [
            String(repeating: "eyJ", count: size / 3),
            String(repeating: "-----BEGIN PRIVATE KEY-----", count: size / 27),
            String(repeating: "Cookie: a=bcdefghijklmnop\r\n", count: size / 28),
            String(repeating: "p\0\0\0\u{5}", count: size / 5),
        ]
        let started = ContinuousClock.now
        // Off the cooperative pool: seconds of scanning there would stall every other suite's async tests. The
        // bound only tells linear from quadratic (which would take hours on these streams), on a loaded machine.
        let findings = try await offThePool { try ConversationTape.findings(streams.map { [.client($0)] }) }
        #expect(ContinuousClock.now - started < Sanitizer.scaled(.seconds(60)))
        #expect(findings.filter { $0.sessionID == 1 }.isEmpty)
        #expect(findings.filter { $0.sessionID == 3 }.count == size / 28)
    }

    @Test func masksShowTheEndsOfLongSecretsOnly() {
        func masked(_ span: Range<Int>) -> String {
            var bytes = Array("0123456789abcdef".utf8)
            SecretFinding.mask(&bytes, span: span)
            return String(decoding: bytes, as: UTF8.self)
        }
        #expect(masked(0..<11) == "***********bcdef")
        #expect(masked(2..<14) == "0123********cdef")
        // A span the excerpt cuts keeps the ends of the whole span.
        #expect(masked(-4..<10) == "********89abcdef")
    }
}
