/// The state of one half of a relay, as a value: what its peer did, what the relay did to its connection, and
/// whether its reads are held back.
///
/// ``RelayHandler`` feeds it what happens (a read requested, the peer's FIN or reset, the partner's FIN or end,
/// writability, the tape's budget, queued writes drained, the linger time up, the channel gone) and carries out
/// what it answers. Facts only a channel knows, such as whether it is active, come in as arguments, so the machine
/// is tested without a channel.
///
/// ```swift
/// var machine = RelayStateMachine()
/// _ = machine.readRequested(partnerWritable: false, tapeHasRoom: true)  // .hold: the partner is full
/// if machine.partnerBecameWritable() {
///     _ = machine.readRequested(partnerWritable: true, tapeHasRoom: true)  // .read
/// }
/// _ = machine.partnerHalfClosed()  // .shutOutputAfterQueuedWrites
/// ```
struct RelayStateMachine {
    /// What this side's peer did to its end of the connection.
    enum Peer: Hashable {
        /// Still sending.
        case open
        /// Sent FIN: shut down its write half.
        case halfClosed
        /// Reset the connection (a read failed with ECONNRESET or similar); this outranks an earlier FIN.
        case reset
    }

    /// What the relay did to this side's connection.
    enum Connection: Hashable {
        /// Relaying both ways.
        case open
        /// The partner ended before this channel was active; it ends the same way once it is.
        case partnerEndDeferred(reset: Bool)
        /// The relay shut this side's output down, forwarding the partner's FIN.
        case outputShut
        /// The relay closed this side, because its partner ended or at shutdown; this outranks a shut output.
        case closed
    }

    /// Whether reads from this side's socket are held back.
    enum Reading: Hashable {
        /// Reads go to the socket.
        case flowing(tapeWakeUpArmed: Bool)
        /// A read waits for the partner to drain or the tape to have room.
        case held(tapeWakeUpArmed: Bool)
    }

    /// What to do with a read this side's pipeline asked for.
    enum ReadAction: Hashable {
        /// Pass the read on to the socket.
        case read
        /// Hold it; the partner's writability or an already armed tape wake-up will ask again.
        case hold
        /// Hold it, and ask the tape's budget to call back once it has room.
        case holdUntilTapeHasRoom
    }

    /// What to do to this side's connection.
    enum Action: Hashable {
        /// Nothing.
        case none
        /// Shut the output down once every byte queued before it is written (see ``shutdownDrained()``).
        case shutOutputAfterQueuedWrites
        /// Shut the output down now.
        case shutOutput
        /// Close once every queued byte is written (see ``closeDrained(reset:channelIsActive:)``), or reset when
        /// the linger time runs out first (see ``lingerTimedOut(channelIsActive:)``).
        case closeAfterQueuedWrites(reset: Bool)
        /// Close now; with `reset`, arm `SO_LINGER` 0 first so the peer sees RST rather than FIN.
        case close(reset: Bool)
    }

    /// What the recording and the partner are told once this side's channel is gone.
    struct Ending: Hashable {
        /// The peer's FIN came without an `inputClosed` of its own (NIO folds a FIN that arrives after the output
        /// was shut into the close), so the recording must add it.
        var peerHalfClosedUnseen: Bool
        /// The recording calls this side's end a reset.
        var recordedAsReset: Bool
        /// The peer ended the connection, not the relay; only then is the end an event on tape.
        var byPeer: Bool
        /// The partner must be reset rather than closed cleanly.
        var resetPartner: Bool
    }

    private(set) var peer = Peer.open
    private(set) var connection = Connection.open
    private(set) var reading = Reading.flowing(tapeWakeUpArmed: false)
    /// The relay was asked to reset this side, even if the channel could no longer be closed: the partner must
    /// then be reset too.
    private(set) var resetAsked = false

    init() {}
}

// MARK: Reading

extension RelayStateMachine {
    /// This side's pipeline asked for a read: pass it on only while the partner can take more and the tape has
    /// room, so a fast sender never makes the relay buffer the difference.
    ///
    /// - Parameters:
    ///   - partnerWritable: Whether the partner's channel is writable (true when there is no partner).
    ///   - tapeHasRoom: Whether the tape writer can take more bytes (true when not recording).
    mutating func readRequested(partnerWritable: Bool, tapeHasRoom: Bool) -> ReadAction {
        let armed: Bool
        switch reading {
        case .flowing(let tapeWakeUpArmed), .held(let tapeWakeUpArmed): armed = tapeWakeUpArmed
        }
        guard partnerWritable else {
            reading = .held(tapeWakeUpArmed: armed)
            return .hold
        }
        guard tapeHasRoom else {
            reading = .held(tapeWakeUpArmed: true)
            // One wake-up at a time: the budget keeps every callback it is given until the writer catches up.
            return armed ? .hold : .holdUntilTapeHasRoom
        }
        reading = .flowing(tapeWakeUpArmed: armed)
        return .read
    }

    /// The partner's channel became writable again.
    ///
    /// - Returns: Whether a read was held and must be asked for again (through ``readRequested(partnerWritable:tapeHasRoom:)``,
    ///   which checks the tape too).
    mutating func partnerBecameWritable() -> Bool {
        guard case .held(let armed) = reading else { return false }
        reading = .flowing(tapeWakeUpArmed: armed)
        return true
    }

    /// The tape's budget called back: it has room again, and the wake-up is spent.
    ///
    /// - Returns: Whether a read was held and must be asked for again.
    mutating func tapeHasRoom() -> Bool {
        guard case .held = reading else {
            reading = .flowing(tapeWakeUpArmed: false)
            return false
        }
        reading = .flowing(tapeWakeUpArmed: false)
        return true
    }
}

// MARK: Ending

extension RelayStateMachine {
    /// The peer sent FIN. The relay forwards it to the partner whatever the state: the partner decides.
    mutating func inputClosed() {
        if peer == .open { peer = .halfClosed }
    }

    /// A read on this side failed because the peer reset the connection.
    mutating func peerReset() {
        peer = .reset
    }

    /// The relay resets this side on its own initiative: at shutdown, when the drain time is up, or when the
    /// upstream cannot be reached.
    mutating func resetRequested(channelIsActive: Bool) -> Action {
        resetAsked = true
        return close(reset: true, channelIsActive: channelIsActive)
    }

    /// The partner's peer sent FIN: shut this side's output down, once every byte before it is written.
    ///
    /// Shutting down at once could drop queued writes (on a channel whose input is closed, NIO makes
    /// `close(mode: .output)` a full close) or abort a connect still in progress, so the handler waits for the
    /// queue unless the channel is active and has nothing queued.
    mutating func partnerHalfClosed() -> Action {
        if case .closed = connection { return .none }
        return .shutOutputAfterQueuedWrites
    }

    /// Every byte queued before the partner's FIN is written: now shut the output down.
    mutating func shutdownDrained() -> Action {
        if case .closed = connection { return .none }
        connection = .outputShut
        return .shutOutput
    }

    /// The partner's connection is gone: end this side the same way, a reset as a reset and an orderly close as
    /// an orderly close after the queued bytes. A channel that is not active yet ends once it is.
    mutating func partnerEnded(reset: Bool, channelIsActive: Bool) -> Action {
        switch connection {
        case .closed:
            return .none
        case .outputShut where !channelIsActive:
            // Shut, then gone before the partner: it never becomes active again, so nothing is left to do.
            return .none
        case .open, .partnerEndDeferred, .outputShut:
            guard channelIsActive else {
                connection = .partnerEndDeferred(reset: reset)
                return .none
            }
            return .closeAfterQueuedWrites(reset: reset)
        }
    }

    /// This side's channel is active (or the handler joined an active one): act on a partner's end that came
    /// before.
    mutating func channelBecameActive() -> Action {
        guard case .partnerEndDeferred(let reset) = connection else { return .none }
        connection = .open
        return .closeAfterQueuedWrites(reset: reset)
    }

    /// Every byte queued before a close is written.
    mutating func closeDrained(reset: Bool, channelIsActive: Bool) -> Action {
        close(reset: reset, channelIsActive: channelIsActive)
    }

    /// The peer took none of the queued bytes for the linger time: a peer that stopped reading must not hold the
    /// connection open for ever, so it is reset.
    mutating func lingerTimedOut(channelIsActive: Bool) -> Action {
        close(reset: true, channelIsActive: channelIsActive)
    }

    /// This side's channel went down: work out how it ended, for the recording and for the partner.
    ///
    /// A channel that went down without the relay shutting or closing it went down abnormally and counts as
    /// reset: NIO closes a channel after a failed write without an `errorCaught`.
    func channelInactive() -> Ending {
        let closedByRelay: Bool
        let endedByRelay: Bool
        switch connection {
        case .closed: (closedByRelay, endedByRelay) = (true, true)
        case .outputShut: (closedByRelay, endedByRelay) = (false, true)
        case .open, .partnerEndDeferred: (closedByRelay, endedByRelay) = (false, false)
        }
        let recordedAsReset = peer == .reset || !endedByRelay
        let resetPartner = recordedAsReset || resetAsked
        return Ending(
            peerHalfClosedUnseen: !closedByRelay && peer == .open && !resetPartner,
            recordedAsReset: recordedAsReset,
            byPeer: !closedByRelay,
            resetPartner: resetPartner
        )
    }

    /// Closes this side unless it is already closed, or no longer (or not yet) active.
    private mutating func close(reset: Bool, channelIsActive: Bool) -> Action {
        guard channelIsActive else { return .none }
        if case .closed = connection { return .none }
        connection = .closed
        return .close(reset: reset)
    }
}
