import Testing

@testable import Tapedeck

struct EndpointTests {
    @Test(arguments: [
        ("127.0.0.1:5432", Endpoint.tcp(host: "127.0.0.1", port: 5432)),
        ("localhost:0", .tcp(host: "localhost", port: 0)),
        ("db.example:5432", .tcp(host: "db.example", port: 5432)),
        ("[::1]:6379", .tcp(host: "::1", port: 6379)),
        ("[fe80::1%lo]:80", .tcp(host: "fe80::1%lo", port: 80)),
        ("unix:/tmp/x.sock", .unix(path: "/tmp/x.sock")),
        ("unix:relative.sock", .unix(path: "relative.sock")),
    ])
    func parsesEveryAddressForm(text: String, expected: Endpoint) throws {
        let endpoint = try Endpoint(parsing: text)
        #expect(endpoint == expected)
        #expect(endpoint.description == text)
    }

    @Test(arguments: [
        ("127.0.0.1", "expected HOST:PORT or unix:/path"),
        ("127.0.0.1:", "port must be a number from 0 to 65535"),
        ("127.0.0.1:65536", "port must be a number from 0 to 65535"),
        ("127.0.0.1:-1", "port must be a number from 0 to 65535"),
        ("127.0.0.1:http", "port must be a number from 0 to 65535"),
        (":80", "missing host before ':'"),
        ("::1:80", "put an IPv6 address in brackets, as [::1]:PORT"),
        ("[::1:80", "missing ']' after IPv6 address"),
        ("[::1]80", "expected ':PORT' after ']'"),
        ("[]:80", "brackets must hold an IPv6 address"),
        ("unix:", "missing socket path after 'unix:'"),
        ("a b:80", "host contains characters a host name cannot hold"),
    ])
    func refusesMalformedAddressesWithAReason(text: String, reason: String) {
        let error = #expect(throws: TapedeckError.self) { try Endpoint(parsing: text) }
        #expect(error?.code == .invalidAddress)
        #expect(error?.description == "invalid address '\(text)': \(reason)")
    }

    @Test func refusesUnixPathsTooLongForSockaddr() {
        let path = "/" + String(repeating: "a", count: 120)
        #expect(throws: TapedeckError.self) { try Endpoint(parsing: "unix:" + path) }
    }

    @Test func knowsWhatIsLoopback() throws {
        #expect(try Endpoint(parsing: "127.0.0.1:1").isLoopback)
        #expect(try Endpoint(parsing: "127.9.9.9:1").isLoopback)
        #expect(try Endpoint(parsing: "[::1]:1").isLoopback)
        #expect(try Endpoint(parsing: "localhost:1").isLoopback)
        #expect(try Endpoint(parsing: "unix:/x").isLoopback)
        #expect(try !Endpoint(parsing: "0.0.0.0:1").isLoopback)
        #expect(try !Endpoint(parsing: "[::]:1").isLoopback)
        #expect(try !Endpoint(parsing: "db.example:1").isLoopback)
    }
}

struct DurationTextTests {
    @Test(arguments: [
        ("5", Duration.seconds(5)), ("5s", .seconds(5)), ("250ms", .milliseconds(250)),
        ("1.5s", .milliseconds(1500)), ("2m", .seconds(120)), ("0", .zero),
    ])
    func parsesDurations(text: String, expected: Duration) throws {
        #expect(try DurationText.parse(text) == expected)
    }

    @Test(arguments: ["", "s", "-1s", "5x", "fast", "nan"])
    func refusesBadDurations(text: String) {
        let error = #expect(throws: TapedeckError.self) { try DurationText.parse(text) }
        #expect(error?.description.hasPrefix("invalid duration '\(text)'") == true)
    }

    @Test func formatsShortest() throws {
        #expect(DurationText.format(.seconds(5)) == "5s")
        #expect(DurationText.format(.milliseconds(300)) == "300ms")
        #expect(DurationText.format(.seconds(30 * 86_400)) == "30d")
        #expect(DurationText.format(.seconds(7_200)) == "2h")
        #expect(DurationText.format(.seconds(90)) == "90s")
        #expect(DurationText.format(.zero) == "0s")
        for text in ["30d", "2h", "90s", "1500ms", "0s"] {
            #expect(try DurationText.format(DurationText.parse(text)) == text)
        }
    }
}

/// Errors print as one line on stderr, whatever text they quote.
struct TapedeckErrorTests {
    @Test func controlCharactersInTheQuotedTextAreEscapedNotPrinted() throws {
        let address = #expect(throws: TapedeckError.self) { try Endpoint(parsing: "a\nb") }
        #expect(address?.description == "invalid address 'a\\nb': expected HOST:PORT or unix:/path")
        let duration = #expect(throws: TapedeckError.self) { try DurationText.parse("5\r\n") }
        #expect(duration?.description.hasPrefix("invalid duration '5\\r\\n'") == true)
        let pace = #expect(throws: TapedeckError.self) { try ReplayPace(parsing: "2\u{1B}[2Jx") }
        #expect(pace?.description.hasPrefix("invalid pace '2\\x1b[2Jx'") == true)
        let other = TapedeckError(.invalidArgument, "one\u{0B}two\u{0C}three\u{85}four")
        #expect(other.description == "one\\x0btwo\\x0cthree\\x85four")
    }
}
