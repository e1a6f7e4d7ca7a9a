import Atomics
import NIOConcurrencyHelpers
import NIOCore

/// Bounds the bytes read from sockets but not yet committed to the tape.
///
/// Relays reserve what they read; the tape writer releases it after each commit. Above the high mark relays
/// stop reading (the kernel's receive windows then slow the peers) until the writer brings the total below the
/// low mark. Memory stays bounded when the disk falls behind, and nothing is dropped.
final class RecordingBudget: Sendable {
    let highMark: Int
    let lowMark: Int
    private let pending = ManagedAtomic<Int>(0)
    private let waiters = NIOLockedValueBox<[@Sendable () -> Void]>([])

    init(highMark: Int = 64 << 20, lowMark: Int = 32 << 20) {
        self.highMark = highMark
        self.lowMark = lowMark
    }

    /// Bytes held right now.
    var pendingBytes: Int { pending.load(ordering: .relaxed) }

    /// Whether a relay may read more.
    var hasRoom: Bool { pending.load(ordering: .relaxed) < highMark }

    /// What a queued payload costs: the memory it pins, which is its whole buffer, not just the bytes read.
    static func cost(of buffer: ByteBuffer) -> Int {
        max(buffer.readableBytes, buffer.capacity)
    }

    func reserve(_ bytes: Int) {
        pending.wrappingIncrement(by: bytes, ordering: .relaxed)
    }

    /// Gives bytes back and wakes paused relays once the total is below the low mark.
    func release(_ bytes: Int) {
        let now = pending.wrappingDecrementThenLoad(by: bytes, ordering: .relaxed)
        guard now < lowMark else { return }
        let ready = waiters.withLockedValue { waiters in
            defer { waiters = [] }
            return waiters
        }
        for resume in ready { resume() }
    }

    /// Runs `resume` once there is room again (at once if there already is).
    ///
    /// Registration and the re-check happen under the same lock the writer takes to wake waiters, so a release
    /// that lands in between cannot be missed.
    func whenRoom(_ resume: @escaping @Sendable () -> Void) {
        let runNow = waiters.withLockedValue { waiters in
            if pending.load(ordering: .relaxed) < lowMark { return true }
            waiters.append(resume)
            return false
        }
        if runNow { resume() }
    }
}
