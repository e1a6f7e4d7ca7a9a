import Testing

@testable import Tapedeck

/// MySQL and MariaDB framing and logins, without sockets, on bytes captured from real clients.
struct MySQLLensTests {
    /// The `mariadb` CLI (libmariadb 3.3) logging in as `alice` to `mysql`, as captured through `tapedeck record`.
    static let mariadbLogin = bytes(
        "8ca2bf000000100021000000000000000000000000000000000000001d000000616c69636500006d7973716c006d7973716c5f6e"
            + "61746976655f70617373776f7264007e035f6f73054c696e75780c5f636c69656e745f6e616d650a6c69626d617269616462"
            + "045f70696404343639390f5f636c69656e745f76657273696f6e06332e332e3230095f706c6174666f726d067838365f36340c"
            + "70726f6772616d5f6e616d65056d7973716c0c5f7365727665725f686f7374093132372e302e302e31"
    )
    /// PyMySQL 1.2 logging in as `bob` with a password to `test`.
    static let pymysqlLogin = bytes(
        "0da23a00ffffff002d0000000000000000000000000000000000000000000000626f620014e61909174ee19621fa6540db9b6ae5"
            + "60bb2b9acd74657374006d7973716c5f6e61746976655f70617373776f726400350c5f636c69656e745f6e616d650770796d79"
            + "73716c0f5f636c69656e745f76657273696f6e05312e322e34045f7069640434373030"
    )

    static func bytes(_ hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    @Test func readsTheMariaDBCLIsLogin() throws {
        let login = try #require(MySQLLoginRequest(Self.mariadbLogin))
        #expect(String(decoding: login.user, as: UTF8.self) == "alice")
        #expect(login.database.map { String(decoding: $0, as: UTF8.self) } == "mysql")
        #expect(login.authPlugin.map { String(decoding: $0, as: UTF8.self) } == "mysql_native_password")
        #expect(login.authResponse.isEmpty)
        let attributes = login.attributes.map { String(decoding: $0.key, as: UTF8.self) }
        #expect(
            attributes.contains("_pid") && attributes.contains("_client_name") && attributes.contains("program_name")
        )
        // A MariaDB client clears CLIENT_MYSQL and sends extended capabilities in the filler.
        #expect(login.capabilities & MySQLLoginRequest.Capability.clientMySQL == 0)
    }

    @Test func readsPyMySQLsLogin() throws {
        let login = try #require(MySQLLoginRequest(Self.pymysqlLogin))
        #expect(String(decoding: login.user, as: UTF8.self) == "bob")
        #expect(login.database.map { String(decoding: $0, as: UTF8.self) } == "test")
        #expect(login.authResponse.count == 20)
        #expect(login.attributes.first { $0.key == Array("_pid".utf8) }?.value == Array("4700".utf8))
    }

    @Test func theCanonicalLoginLeavesOutTheAuthResponseAndTheProcess() throws {
        var login = try #require(MySQLLoginRequest(Self.pymysqlLogin))
        let recorded = login.canonical
        // Another run of the same client: another process, another salt answered.
        login.authResponse = Array(repeating: 7, count: 20)
        login.attributes = login.attributes.map { $0.key == Array("_pid".utf8) ? ($0.key, Array("91234".utf8)) : $0 }
        #expect(login.canonical == recorded)
        // Another machine with a newer client library.
        login.attributes = login.attributes.map {
            $0.key == Array("_client_version".utf8) ? ($0.key, Array("1.3.0".utf8)) : $0
        }
        login.attributes.append((Array("_source_host".utf8), Array("ci-runner-7".utf8)))
        #expect(login.canonical == recorded)
        // Another client program is another login.
        login.attributes = login.attributes.map {
            $0.key == Array("_client_name".utf8) ? ($0.key, Array("mysql-connector".utf8)) : $0
        }
        #expect(login.canonical != recorded)
        // Another user or database is another login.
        var other = login
        other.user = Array("carol".utf8)
        #expect(other.canonical != recorded)
        other = login
        other.database = Array("prod".utf8)
        #expect(other.canonical != recorded)
    }

    @Test func hostileLoginsAreNotLogins() {
        for length in 0..<Self.pymysqlLogin.count {
            // Cut short anywhere: never a trap (a cut inside the attributes is not a login).
            _ = MySQLLoginRequest(Array(Self.pymysqlLogin.prefix(length)))
        }
        #expect(MySQLLoginRequest(Array(Self.pymysqlLogin.prefix(40))) == nil)
        var sslRequest = Array(Self.pymysqlLogin.prefix(MySQLLoginRequest.fixedLength))
        sslRequest[1] |= 0x08  // CLIENT_SSL
        #expect(MySQLLoginRequest.isSSLRequest(sslRequest))
        #expect(!MySQLLoginRequest.isSSLRequest(Self.pymysqlLogin))
    }

    @Test func framesMessagesSplitAnywhere() throws {
        let payloads: [[UInt8]] = [Self.mariadbLogin, [0x03] + Array("select 1".utf8), [], [0x01]]
        var stream: [UInt8] = []
        for (index, payload) in payloads.enumerated() {
            stream += MySQLPacketFramer.frame(payload, sequence: UInt8(index))
        }
        for first in 0...stream.count {
            for second in stride(from: first, through: stream.count, by: 7) {
                var framer = MySQLPacketFramer()
                var messages = try framer.feed(stream[..<first])
                messages += try framer.feed(stream[first..<second])
                messages += try framer.feed(stream[second...])
                #expect(messages.map(\.payload) == payloads)
                #expect(messages.map(\.sequence) == [0, 1, 2, 3])
                #expect(!framer.hasPendingBytes)
            }
        }
    }

    @Test func joinsAPayloadSplitOverFullPackets() throws {
        let payload = [UInt8](repeating: 0x41, count: MySQLPacketFramer.maximumPacketPayload + 10)
        let framed = MySQLPacketFramer.frame(payload, sequence: 5)
        // A full packet, then the rest.
        #expect(framed.count == payload.count + 8)
        var framer = MySQLPacketFramer()
        var messages: [MySQLPacket] = []
        var offset = 0
        while offset < framed.count {
            let end = min(framed.count, offset + 1 << 20)
            messages += try framer.feed(framed[offset..<end])
            offset = end
        }
        #expect(messages.count == 1)
        #expect(messages.first?.payload == payload)
        #expect(messages.first?.sequence == 5)
        // Exactly one full packet needs an empty one after it.
        let exact = MySQLPacketFramer.frame(
            [UInt8](repeating: 1, count: MySQLPacketFramer.maximumPacketPayload),
            sequence: 0
        )
        #expect(exact.count == MySQLPacketFramer.maximumPacketPayload + 8)
    }

    @Test func refusesAMessageLongerThanItsMaximum() {
        var framer = MySQLPacketFramer(maximumMessage: 1_000)
        #expect(throws: MySQLPacketFramer.TooLong.self) {
            _ = try framer.feed(MySQLPacketFramer.frame([UInt8](repeating: 0, count: 2_000), sequence: 0))
        }
    }

    @Test func readsLengthEncodedIntegersOfEveryWidth() {
        for value in [0, 250, 251, 65_535, 65_536, 16_777_215, 16_777_216, 1 << 40] {
            var reader = MySQLReader(MySQLReader.lengthEncoded(value))
            #expect(reader.lengthEncodedInteger() == UInt64(value))
            #expect(reader.remaining == 0)
        }
        var reader = MySQLReader([0xFC, 0x01])
        #expect(reader.lengthEncodedInteger() == nil)
        #expect(reader.offset == 0)
    }
}

extension MySQLLensTests {
    /// MariaDB 10.11's greeting, as captured through `tapedeck record`.
    static let mariadbGreeting = bytes(
        "0a352e352e352d31302e31312e31392d4d6172696144422d302b646562313275310004000000342d246a6b595e4b00fef72d020"
            + "0ff81150000000000001d0000003b2956593c604c3e31782d73006d7973716c5f6e61746976655f70617373776f726400"
    )

    @Test func readsMariaDBsGreeting() throws {
        let greeting = try #require(MySQLGreeting(Self.mariadbGreeting))
        #expect(String(decoding: greeting.serverVersion, as: UTF8.self) == "5.5.5-10.11.19-MariaDB-0+deb12u1")
        #expect(greeting.connectionID == 4)
        #expect(greeting.salt.count == 20)
        #expect(greeting.authPlugin.map { String(decoding: $0, as: UTF8.self) } == "mysql_native_password")
        // MariaDB: CLIENT_MYSQL clear, extended capabilities present.
        #expect(greeting.capabilities & MySQLLoginRequest.Capability.clientMySQL == 0)
        #expect(greeting.capabilities >> 32 != 0)
    }

    @Test func aGreetingCutShortOrAnErrorIsNoGreeting() {
        for length in 0..<Self.mariadbGreeting.count {
            _ = MySQLGreeting(Array(Self.mariadbGreeting.prefix(length)))
        }
        // An error packet: 0xFF, code 1130 ("host is not allowed to connect"), message.
        #expect(MySQLGreeting([0xFF, 0x6A, 0x04] + Array("Host is not allowed".utf8)) == nil)
        #expect(MySQLGreeting(Array(Self.mariadbGreeting.prefix(20))) == nil)
    }
}

extension MySQLLensTests {
    /// A whole conversation: greeting, login, an auth switch answered, OK, two commands.
    private static func conversation() -> (client: [UInt8], upstream: [[UInt8]]) {
        let login = MySQLPacketFramer.frame(pymysqlLogin, sequence: 1)
        let switchAnswer = MySQLPacketFramer.frame(Array(repeating: 0x5A, count: 20), sequence: 3)
        let query = MySQLPacketFramer.frame([0x03] + Array("select 2".utf8), sequence: 0)
        let quit = MySQLPacketFramer.frame([0x01], sequence: 0)
        let greeting = MySQLPacketFramer.frame(mariadbGreeting, sequence: 0)
        let authSwitch = MySQLPacketFramer.frame(
            [0xFE] + Array("mysql_native_password".utf8) + [0] + Array(repeating: 0x33, count: 20) + [0],
            sequence: 2
        )
        let ok = MySQLPacketFramer.frame([0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00], sequence: 4)
        return (login + switchAnswer + query + quit, [greeting, authSwitch, ok])
    }

    @Test func followsAConversationThroughItsPhasesSplitAnywhere() throws {
        let (client, upstream) = Self.conversation()
        let loginEnd = 4 + Self.pymysqlLogin.count
        let answerEnd = loginEnd + 24
        for split in 0...client.count {
            var conversation = MySQLConversation()
            _ = try conversation.upstream(upstream[0])
            #expect(conversation.phase == .awaitingLogin)
            // The client's bytes up to the end of its answer, cut at `split`, then the server's switch and OK
            // where the real order puts them.
            var messages: [MySQLConversation.Message] = []
            let cut = min(split, answerEnd)
            messages += try conversation.client(client[..<min(cut, loginEnd)])
            messages += try conversation.client(client[min(cut, loginEnd)..<loginEnd])
            _ = try conversation.upstream(upstream[1])
            messages += try conversation.client(client[loginEnd..<answerEnd])
            _ = try conversation.upstream(upstream[2])
            #expect(conversation.phase == .commands)
            messages += try conversation.client(client[answerEnd..<max(answerEnd, split)])
            messages += try conversation.client(client[max(answerEnd, split)...])
            let login = try #require(MySQLLoginRequest(Self.pymysqlLogin))
            #expect(
                messages.map(\.kind) == [
                    .login(canonical: login.canonical), .authentication,
                    .command(payload: [0x03] + Array("select 2".utf8)), .command(payload: [0x01]),
                ]
            )
        }
    }

    @Test func anSSLRequestStopsTheFollowing() throws {
        var conversation = MySQLConversation()
        _ = try conversation.upstream(MySQLPacketFramer.frame(Self.mariadbGreeting, sequence: 0))
        var request = Array(Self.pymysqlLogin.prefix(MySQLLoginRequest.fixedLength))
        request[1] |= 0x08
        let messages = try conversation.client(MySQLPacketFramer.frame(request, sequence: 1) + [0x16, 0x03, 0x01])
        #expect(messages.map(\.kind) == [.sslRequest])
        #expect(conversation.phase == .encrypted)
        #expect(try conversation.client([0x16, 0x03, 0x01, 0x00]).isEmpty)
    }

    @Test func anErrorInsteadOfAGreetingEndsTheConversation() throws {
        var conversation = MySQLConversation()
        _ = try conversation.upstream(
            MySQLPacketFramer.frame([0xFF, 0x10, 0x04] + Array("Too many".utf8), sequence: 0)
        )
        #expect(conversation.phase == .ended)
        let messages = try conversation.client(MySQLPacketFramer.frame(Self.pymysqlLogin, sequence: 1))
        #expect(messages.map(\.kind) == [.unknown(payload: Self.pymysqlLogin)])
    }
}
