import NIOCore
import Tapedeck
import TapedeckTesting
import XCTest

/// The XCTest helper, used as users use it: started in `setUp`, stopped and checked after `tearDown`.
///
/// Replays `fixtures/XCTestHelperTests/testPingsRedis.tape`, recorded from a real redis-server on port 6379
/// with `TAPEDECK_MODE=record swift test --filter testPingsRedis`.
final class XCTestHelperTests: XCTestCase {
    private var deck: Deck!

    override func setUp() async throws {
        deck = try await startTapedeck(upstream: "127.0.0.1:6379", requireAll: true)
    }

    func testPingsRedis() async throws {
        let ping = try await TestClient.exchange(deck.address, "*1\r\n$4\r\nPING\r\n")
        XCTAssertEqual(ping.reply, "+PONG\r\n")
        let echo = try await TestClient.exchange(deck.address, "*2\r\n$4\r\nECHO\r\n$5\r\ntapes\r\n")
        XCTAssertEqual(echo.reply, "$5\r\ntapes\r\n")
    }
}
