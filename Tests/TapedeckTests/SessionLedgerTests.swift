import Foundation
import Testing

@testable import Tapedeck

/// The ledger's claims: each is given back once, whatever its holder does.
struct SessionLedgerTests {
    typealias M = ReplayMatcherTests

    static let twoPings = [
        M.session(1, [M.client("PING\r\n"), M.server("+PONG\r\n"), M.clientHalfClose, M.serverClose]),
        M.session(2, [M.client("PING\r\n"), M.server("+PONG\r\n"), M.clientHalfClose, M.serverClose]),
    ]

    @Test func aClaimedSessionIsNotClaimedAgainUntilItIsGivenBack() throws {
        let catalog = SessionCatalog(scripts: Self.twoPings, repeatable: false)
        let ledger = catalog.ledger
        let first = try #require(ledger.claim(in: catalog.index.all))
        let second = try #require(ledger.claim(in: catalog.index.all))
        #expect(first.script == 0)
        #expect(second.script == 1)
        ledger.release(first)
        let again = try #require(ledger.claim(in: catalog.index.all))
        #expect(again.script == 0)
        #expect(again != first)
    }

    @Test func aClaimGivenBackTwiceIsCountedOnce() throws {
        let catalog = SessionCatalog(scripts: Self.twoPings, repeatable: false)
        let ledger = catalog.ledger
        let first = try #require(ledger.claim(in: catalog.index.all))
        let second = try #require(ledger.claim(in: catalog.index.all))
        ledger.release(first)
        ledger.release(first)
        let third = try #require(ledger.claim(in: catalog.index.all))
        #expect(third.script == 0)
        // Had the second release counted, the claim count would be back at zero and session 1 would look free
        // while `third`'s holder follows it.
        let position = catalog.index.positions[0]
        #expect(ledger.whyTaken(in: position..<(position + 1))?.alreadyReplayed == false)
        #expect(ledger.finish(second))
        #expect(catalog.unusedSessionIDs == [1])
    }

    @Test func finishingAClaimAlreadyGivenBackCountsNoReplay() throws {
        let catalog = SessionCatalog(scripts: Array(Self.twoPings.prefix(1)), repeatable: false)
        let ledger = catalog.ledger
        let claim = try #require(ledger.claim(in: catalog.index.all))
        ledger.release(claim)
        ledger.finish(claim, played: 0..<0)
        #expect(catalog.unusedSessionIDs == [1])
        #expect(ledger.whyTaken(in: catalog.index.all) == nil)
    }

    @Test func aFinishedSessionIsTakenAndSaysWhy() throws {
        let catalog = SessionCatalog(scripts: Array(Self.twoPings.prefix(1)), repeatable: false)
        let ledger = catalog.ledger
        let claim = try #require(ledger.claim(in: catalog.index.all))
        #expect(ledger.whyTaken(in: catalog.index.all)?.alreadyReplayed == false)
        #expect(ledger.finish(claim))
        #expect(ledger.whyTaken(in: catalog.index.all)?.alreadyReplayed == true)
        #expect(ledger.claim(in: catalog.index.all) == nil)
    }
}
