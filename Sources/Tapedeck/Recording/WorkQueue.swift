import Foundation

/// A many-producer, one-consumer queue whose consumer is a thread that may block.
///
/// Producers are event loops and must never wait; they append under a short lock. The consumer takes
/// everything queued at once, which is what lets the tape writer batch inserts into one transaction.
///
/// `@unchecked Sendable` is safe here: every stored property is either immutable or read and written only while
/// `condition` is locked.
final class WorkQueue<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []
    private var consumerWaiting = false
    private var closed = false

    /// Appends an item; wakes the consumer only if it is asleep, so a busy consumer costs producers no syscall.
    func append(_ item: Element) {
        condition.lock()
        items.append(item)
        let wake = consumerWaiting
        condition.unlock()
        if wake { condition.signal() }
    }

    /// Marks the queue closed: the consumer drains what is left and then sees `nil`.
    func close() {
        condition.lock()
        closed = true
        condition.unlock()
        condition.signal()
    }

    /// Takes every queued item, waiting up to `timeout` for the first. Returns `[]` on timeout, `nil` once the
    /// queue is closed and empty.
    func takeAll(waitingUpTo timeout: TimeInterval) -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        if items.isEmpty && !closed && timeout > 0 {
            consumerWaiting = true
            _ = condition.wait(until: Date(timeIntervalSinceNow: timeout))
            consumerWaiting = false
        }
        if items.isEmpty { return closed ? nil : [] }
        var taken: [Element] = []
        taken.reserveCapacity(items.count)
        swap(&taken, &items)
        return taken
    }
}
