import Foundation
import Testing

@testable import Tapedeck

/// The MySQL lens over whole client streams and live ones cut anywhere, on logins captured from real clients.
struct MySQLStreamLensTests {
    /// PyMySQL's login with another auth response (another salt) and another process id.
    static let pymysqlLoginElsewhere: [UInt8] = {
        var login = MySQLLensTests.pymysqlLogin
        let user = Array("bob".utf8) + [0, 0x14]
        let start = login.firstRange(of: user)!.upperBound
        for index in start..<(start + 20) { login[index] ^= 0xA5 }
        let pid = login.firstRange(of: Array("_pid\u{04}4700".utf8))!.upperBound
        login.replaceSubrange((pid - 4)..<pid, with: Array("9123".utf8))
        return login
    }()

    /// Login, an answer to an auth switch, a query and a quit, as a client sends them.
    static func stream(login: [UInt8], answer: UInt8) -> Data {
        Data(
            MySQLPacketFramer.frame(login, sequence: 1)
                + MySQLPacketFramer.frame(Array(repeating: answer, count: 20), sequence: 3)
                + MySQLPacketFramer.frame([0x03] + Array("select who from t".utf8), sequence: 0)
                + MySQLPacketFramer.frame([0x01], sequence: 0)
        )
    }

    @Test func twoLoginsOfOneUserDifferingInSaltAndProcessCompareEqual() throws {
        let here = MySQLStreamLens().canonicalize(Self.stream(login: MySQLLensTests.pymysqlLogin, answer: 0x11))
        let there = MySQLStreamLens().canonicalize(Self.stream(login: Self.pymysqlLoginElsewhere, answer: 0x77))
        #expect(here.bytes == there.bytes)
        #expect(here.bytes != Self.stream(login: MySQLLensTests.pymysqlLogin, answer: 0x11))
        // The commands stay as sent, at the end of the canonical stream.
        let query = Data(MySQLPacketFramer.frame([0x03] + Array("select who from t".utf8), sequence: 0))
        #expect(here.bytes.suffix(query.count + 5).prefix(query.count) == query)
    }

    @Test func anotherUserOrDatabaseComparesDifferent() throws {
        let bob = MySQLStreamLens().canonicalize(Self.stream(login: MySQLLensTests.pymysqlLogin, answer: 0x11))
        var otherDatabase = MySQLLensTests.pymysqlLogin
        let test = otherDatabase.firstRange(of: Array("test\u{0}".utf8))!
        otherDatabase.replaceSubrange(test, with: Array("best\u{0}".utf8))
        let other = MySQLStreamLens().canonicalize(Self.stream(login: otherDatabase, answer: 0x11))
        #expect(bob.bytes != other.bytes)
    }

    @Test func positionsInTheRawStreamMoveToTheCanonicalOne() throws {
        let raw = Self.stream(login: MySQLLensTests.pymysqlLogin, answer: 0x11)
        let whole = MySQLStreamLens().canonicalize(raw)
        let loginLength = 4 + MySQLLensTests.pymysqlLogin.count
        #expect(whole.replacements.map(\.raw) == [0..<loginLength, loginLength..<(loginLength + 24)])
        var cursor = 0
        // The upstream's greeting came before any client byte; its OK after the auth answer, where the query
        // begins in both streams.
        #expect(whole.normalizedPosition(ofRaw: 0, cursor: &cursor) == 0)
        let queryStart = whole.normalizedPosition(ofRaw: loginLength + 24, cursor: &cursor)
        #expect(whole.bytes.dropFirst(queryStart) == raw.dropFirst(loginLength + 24))
    }

    @Test func aLiveStreamCutAnywhereGivesTheWholeStreamsCanonicalBytes() {
        let raw = Self.stream(login: MySQLLensTests.mariadbLogin, answer: 0x42)
        let whole = MySQLStreamLens().canonicalize(raw).bytes
        for split in 0...raw.count {
            var lens = MySQLStreamLens()
            var canonical = lens.feed(raw.prefix(split)).canonical
            canonical += lens.feed(raw.dropFirst(split)).canonical
            #expect(!lens.isHolding)
            #expect(canonical == whole, "split at \(split)")
        }
        var lens = MySQLStreamLens()
        var canonical = Data()
        for byte in raw { canonical += lens.feed(Data([byte])).canonical }
        #expect(canonical == whole)
        #expect(lens.isPassingThrough)
    }

    @Test func anSSLRequestOrAStreamThatIsNoLoginPassesVerbatim() {
        var request = Array(MySQLLensTests.pymysqlLogin.prefix(MySQLLoginRequest.fixedLength))
        request[1] |= 0x08
        let tls = Data(MySQLPacketFramer.frame(request, sequence: 1) + [0x16, 0x03, 0x01, 0x00, 0x05])
        #expect(MySQLStreamLens().canonicalize(tls).bytes == tls)
        let redis = Data("*1\r\n$4\r\nPING\r\n".utf8)
        #expect(MySQLStreamLens().canonicalize(redis).bytes == redis)
        let command = Data(MySQLPacketFramer.frame([0x0E], sequence: 0))
        #expect(MySQLStreamLens().canonicalize(command).bytes == command)
    }

    @Test func aStreamCutShortCountsAsSent() {
        let raw = Self.stream(login: MySQLLensTests.pymysqlLogin, answer: 0x11)
        for cut in [1, 3, 4, 30, 4 + MySQLLensTests.pymysqlLogin.count + 10] {
            var lens = MySQLStreamLens()
            let first = lens.feed(raw.prefix(cut)).canonical
            #expect(lens.isHolding || cut > 4 + MySQLLensTests.pymysqlLogin.count)
            let rest = lens.flush().canonical
            #expect((first + rest).count <= raw.count + 64)
            #expect(!lens.isHolding)
        }
        // A length no login has passes on at once, never held.
        var lens = MySQLStreamLens()
        #expect(lens.feed(Data([0xFF, 0xFF, 0xFF, 0x01, 0x00])).canonical.count == 5)
        #expect(lens.isPassingThrough)
    }
}

/// Which lens a session's first bytes call for, and a route's.
struct LensRecognizerTests {
    @Test func recognizesEachProtocolByItsFirstBytes() {
        let greeting = Data(MySQLPacketFramer.frame(MySQLLensTests.mariadbGreeting, sequence: 0))
        #expect(LensRecognizer.recognize(client: Data(), upstream: greeting) == .mysql)
        let preface = LensRecognizer.http2Preface + Data([0, 0, 0, 4, 0, 0, 0, 0, 0])
        #expect(LensRecognizer.recognize(client: preface, upstream: Data()) == .http2)
        let upgrade = Data(
            "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc==\r\n\r\n"
                .utf8
        )
        #expect(LensRecognizer.recognize(client: upgrade, upstream: Data()) == .websocket)
        let h2c = Data("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\n\r\n".utf8)
        #expect(LensRecognizer.recognize(client: h2c, upstream: Data("HTTP/1.1 101 Switching".utf8)) == .http2)
        #expect(LensRecognizer.recognize(client: h2c, upstream: Data("HTTP/1.1 200 OK".utf8)) == nil)
        #expect(LensRecognizer.recognize(client: Data("GET / HTTP/1.1\r\n\r\n".utf8), upstream: Data()) == nil)
        #expect(LensRecognizer.recognize(client: Data("*1\r\n$4\r\nPING\r\n".utf8), upstream: Data()) == nil)
        #expect(LensRecognizer.recognize(client: Data(), upstream: greeting.prefix(10)) == nil)
    }

    @Test func aRouteGoesThroughTheLensMostOfItsSessionsCallForUnlessOneIsNamed() {
        let greeting = Data(MySQLPacketFramer.frame(MySQLLensTests.mariadbGreeting, sequence: 0))
        let plain = (client: Data("GET / HTTP/1.1\r\n\r\n".utf8), upstream: Data())
        #expect(LensRecognizer.resolve(.auto, openings: [plain, plain]) == .raw)
        #expect(LensRecognizer.resolve(.auto, openings: [plain, (Data(), greeting)]) == .mysql)
        #expect(LensRecognizer.resolve(.raw, openings: [(Data(), greeting)]) == .raw)
        #expect(LensRecognizer.resolve(.websocket, openings: [(Data(), greeting)]) == .websocket)
        #expect(LensRecognizer.resolve(.auto, openings: []) == .raw)
    }
}
