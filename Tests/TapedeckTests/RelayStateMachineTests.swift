import Testing

@testable import Tapedeck

/// The relay's decisions without a channel: every fact a channel would know is an argument.
///
/// Each answer is taken into a local before it is checked: `#expect` evaluates a member call on a copy, where a
/// mutating event cannot run.
struct RelayStateMachineTests {
    // MARK: Backpressure

    @Test func readsGoThroughWhileThePartnerIsWritableAndTheTapeHasRoom() {
        var machine = RelayStateMachine()
        let first = machine.readRequested(partnerWritable: true, tapeHasRoom: true)
        let second = machine.readRequested(partnerWritable: true, tapeHasRoom: true)
        #expect(first == .read)
        #expect(second == .read)
        #expect(machine.reading == .flowing(tapeWakeUpArmed: false))
    }

    @Test func aReadWaitsForAFullPartnerAndIsAskedForAgainOnceItDrains() {
        var machine = RelayStateMachine()
        let held = machine.readRequested(partnerWritable: false, tapeHasRoom: true)
        #expect(held == .hold)
        #expect(machine.reading == .held(tapeWakeUpArmed: false))

        let retry = machine.partnerBecameWritable()
        #expect(retry, "the held read must be asked for again")
        let resumed = machine.readRequested(partnerWritable: true, tapeHasRoom: true)
        #expect(resumed == .read)
        let retryAgain = machine.partnerBecameWritable()
        #expect(!retryAgain, "nothing is held any more")
    }

    @Test func roomWithNothingHeldAsksForNothing() {
        var machine = RelayStateMachine()
        let afterPartner = machine.partnerBecameWritable()
        let afterTape = machine.tapeHasRoom()
        #expect(!afterPartner)
        #expect(!afterTape)
        #expect(machine.reading == .flowing(tapeWakeUpArmed: false))
    }

    @Test func aReadOverTheTapeBudgetPausesAndArmsOneWakeUp() {
        var machine = RelayStateMachine()
        let paused = machine.readRequested(partnerWritable: true, tapeHasRoom: false)
        #expect(paused == .holdUntilTapeHasRoom)
        #expect(machine.reading == .held(tapeWakeUpArmed: true))

        let again = machine.readRequested(partnerWritable: true, tapeHasRoom: false)
        #expect(again == .hold, "one wake-up at a time: the budget keeps every callback it is given")
    }

    @Test func theTapeWakeUpResumesTheHeldRead() {
        var machine = RelayStateMachine()
        _ = machine.readRequested(partnerWritable: true, tapeHasRoom: false)
        let retry = machine.tapeHasRoom()
        #expect(retry, "the held read must be asked for again")
        #expect(machine.reading == .flowing(tapeWakeUpArmed: false))

        let resumed = machine.readRequested(partnerWritable: true, tapeHasRoom: true)
        #expect(resumed == .read)
        let pausedAgain = machine.readRequested(partnerWritable: true, tapeHasRoom: false)
        #expect(pausedAgain == .holdUntilTapeHasRoom, "the wake-up was spent: a new pause arms a new one")
    }

    @Test func aReadResumedBecauseThePartnerDrainedStillWaitsForTheTape() {
        var machine = RelayStateMachine()
        let held = machine.readRequested(partnerWritable: false, tapeHasRoom: false)
        #expect(held == .hold, "the partner is full: the tape is not even asked")

        let retry = machine.partnerBecameWritable()
        #expect(retry)
        let paused = machine.readRequested(partnerWritable: true, tapeHasRoom: false)
        #expect(paused == .holdUntilTapeHasRoom)

        let retryForTape = machine.tapeHasRoom()
        #expect(retryForTape)
        let resumed = machine.readRequested(partnerWritable: true, tapeHasRoom: true)
        #expect(resumed == .read)
    }

    @Test func aWakeUpStillArmedWhenReadsFlowAgainIsNotArmedTwice() {
        var machine = RelayStateMachine()
        _ = machine.readRequested(partnerWritable: true, tapeHasRoom: false)
        // The tape drops below its high mark but not yet below its low mark, where the wake-up would come.
        let held = machine.readRequested(partnerWritable: false, tapeHasRoom: true)
        #expect(held == .hold)
        let retry = machine.partnerBecameWritable()
        #expect(retry)
        let resumed = machine.readRequested(partnerWritable: true, tapeHasRoom: true)
        #expect(resumed == .read)
        #expect(machine.reading == .flowing(tapeWakeUpArmed: true))

        let pausedAgain = machine.readRequested(partnerWritable: true, tapeHasRoom: false)
        #expect(pausedAgain == .hold, "the earlier wake-up is still armed")
        let retryForTape = machine.tapeHasRoom()
        #expect(retryForTape)
    }

    // MARK: Half-close

    @Test func thePartnersFinShutsTheOutputAfterQueuedWrites() {
        var machine = RelayStateMachine()
        let halfClose = machine.partnerHalfClosed()
        #expect(halfClose == .shutOutputAfterQueuedWrites)
        #expect(machine.connection == .open, "not shut until the queued bytes are written")

        let drained = machine.shutdownDrained()
        #expect(drained == .shutOutput)
        #expect(machine.connection == .outputShut)
    }

    @Test func thePeersFinIsForwardedAndItsLaterCloseIsOrderly() {
        var machine = RelayStateMachine()
        machine.inputClosed()
        #expect(machine.peer == .halfClosed)
        // The other side answers with its own FIN, which shuts this side's output.
        _ = machine.partnerHalfClosed()
        _ = machine.shutdownDrained()
        let ending = machine.channelInactive()
        #expect(
            ending == .init(peerHalfClosedUnseen: false, recordedAsReset: false, byPeer: true, resetPartner: false)
        )
    }

    @Test func aFinFoldedIntoTheCloseAfterOurShutdownIsStillAHalfClose() {
        var machine = RelayStateMachine()
        _ = machine.partnerHalfClosed()
        _ = machine.shutdownDrained()
        // NIO reports the peer's FIN after our shutdown as a close, without `inputClosed`.
        let ending = machine.channelInactive()
        #expect(ending.peerHalfClosedUnseen)
        #expect(!ending.recordedAsReset)
        #expect(!ending.resetPartner)
    }

    // MARK: Close

    @Test func thePartnersCloseClosesThisSideAfterQueuedWrites() {
        var machine = RelayStateMachine()
        let ended = machine.partnerEnded(reset: false, channelIsActive: true)
        #expect(ended == .closeAfterQueuedWrites(reset: false))
        let drained = machine.closeDrained(reset: false, channelIsActive: true)
        #expect(drained == .close(reset: false))
        #expect(machine.connection == .closed)

        let ending = machine.channelInactive()
        #expect(
            ending == .init(peerHalfClosedUnseen: false, recordedAsReset: false, byPeer: false, resetPartner: false)
        )
    }

    @Test func aPartnerEndBeforeThisChannelIsActiveWaitsForIt() {
        var machine = RelayStateMachine()
        let ended = machine.partnerEnded(reset: true, channelIsActive: false)
        #expect(ended == .none)
        #expect(machine.connection == .partnerEndDeferred(reset: true))

        let activated = machine.channelBecameActive()
        #expect(activated == .closeAfterQueuedWrites(reset: true))
        let activatedAgain = machine.channelBecameActive()
        #expect(activatedAgain == .none, "acted on once")
        let drained = machine.closeDrained(reset: true, channelIsActive: true)
        #expect(drained == .close(reset: true))
    }

    @Test func aPeerThatStopsReadingIsResetWhenTheLingerTimeRunsOut() {
        var machine = RelayStateMachine()
        _ = machine.partnerEnded(reset: false, channelIsActive: true)
        let timedOut = machine.lingerTimedOut(channelIsActive: true)
        #expect(timedOut == .close(reset: true))
        let drainedLate = machine.closeDrained(reset: false, channelIsActive: true)
        #expect(drainedLate == .none, "already closed")
    }

    @Test func nothingIsShutOrClosedAgainOnceClosed() {
        var machine = RelayStateMachine()
        _ = machine.partnerEnded(reset: false, channelIsActive: true)
        _ = machine.closeDrained(reset: false, channelIsActive: true)
        let halfClose = machine.partnerHalfClosed()
        let drained = machine.shutdownDrained()
        let ended = machine.partnerEnded(reset: true, channelIsActive: true)
        #expect(halfClose == .none)
        #expect(drained == .none)
        #expect(ended == .none)
        #expect(machine.connection == .closed)
    }

    @Test func aChannelNoLongerActiveIsNotClosed() {
        var machine = RelayStateMachine()
        _ = machine.partnerEnded(reset: false, channelIsActive: true)
        let drained = machine.closeDrained(reset: false, channelIsActive: false)
        #expect(drained == .none)
        #expect(machine.connection == .open)
    }

    @Test func aChannelThatWentDownUnaskedCountsAsReset() {
        // NIO closes a channel after a failed write without an `errorCaught`.
        let ending = RelayStateMachine().channelInactive()
        #expect(
            ending == .init(peerHalfClosedUnseen: false, recordedAsReset: true, byPeer: true, resetPartner: true)
        )
    }

    // MARK: Reset

    @Test func aPeerResetIsRecordedAsAResetAndResetsThePartner() {
        var machine = RelayStateMachine()
        machine.inputClosed()
        machine.peerReset()
        machine.inputClosed()
        #expect(machine.peer == .reset, "a reset outranks a FIN")
        let ending = machine.channelInactive()
        #expect(
            ending == .init(peerHalfClosedUnseen: false, recordedAsReset: true, byPeer: true, resetPartner: true)
        )
    }

    @Test func aResetRequestClosesWithAResetAndThePartnerIsResetToo() {
        var machine = RelayStateMachine()
        let reset = machine.resetRequested(channelIsActive: true)
        #expect(reset == .close(reset: true))
        let ending = machine.channelInactive()
        // The end was ours, so it is no event on tape; the partner is reset all the same.
        #expect(
            ending == .init(peerHalfClosedUnseen: false, recordedAsReset: false, byPeer: false, resetPartner: true)
        )
    }

    @Test func aResetRequestAfterAnOrderlyCloseStillResetsThePartner() {
        var machine = RelayStateMachine()
        _ = machine.partnerEnded(reset: false, channelIsActive: true)
        _ = machine.closeDrained(reset: false, channelIsActive: true)
        let reset = machine.resetRequested(channelIsActive: true)
        #expect(reset == .none, "already closed")
        #expect(machine.channelInactive().resetPartner)
    }

    @Test func aResetRequestAfterTheOutputWasShutResetsThePartner() {
        var machine = RelayStateMachine()
        _ = machine.partnerHalfClosed()
        _ = machine.shutdownDrained()
        // The channel is already going down and cannot be closed again; the partner still hears a reset.
        let reset = machine.resetRequested(channelIsActive: false)
        #expect(reset == .none)
        let ending = machine.channelInactive()
        #expect(ending.resetPartner)
        #expect(!ending.recordedAsReset)
        #expect(!ending.peerHalfClosedUnseen)
    }
}
