import Foundation

/// A many-producer, one-consumer queue whose consumer is a thread that may block.
///
/// Producers are event loops and must never wait; they append under a short lock. The consumer takes
/// everything queued at once, which is what lets the tape writer batch inserts into one transaction. Producers
/// wake a sleeping consumer only once enough work has gathered (or for an urgent item), so a trickle of small
/// events costs one wake-up and one commit per interval rather than one each.
///
/// `@unchecked Sendable` is safe here: every stored property is either immutable or read and written only while
/// `condition` is locked.
final class WorkQueue<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []
    private var weight = 0
    private var consumerWaiting = false
    private var closed = false
    private let wakeWeight: Int
    private let wakeCount: Int

    /// - Parameters:
    ///   - wakeWeight: Total weight (bytes, for the tape writer) that is worth waking the consumer for.
    ///   - wakeCount: Number of items that is worth waking the consumer for.
    init(wakeWeight: Int = 1 << 20, wakeCount: Int = 32_768) {
        self.wakeWeight = wakeWeight
        self.wakeCount = wakeCount
    }

    /// Appends an item. A sleeping consumer is woken only if the item is `urgent` or enough has gathered;
    /// otherwise it finds the item when its wait runs out.
    func append(_ item: Element, weight itemWeight: Int = 0, urgent: Bool = false) {
        condition.lock()
        items.append(item)
        weight += itemWeight
        let wake = consumerWaiting && (urgent || weight >= wakeWeight || items.count >= wakeCount)
        if wake { consumerWaiting = false }
        condition.unlock()
        if wake { condition.signal() }
    }

    /// Marks the queue closed: the consumer drains what is left and then sees `nil`.
    func close() {
        condition.lock()
        closed = true
        consumerWaiting = false
        condition.unlock()
        condition.signal()
    }

    /// Takes every queued item, first waiting up to `timeout` unless enough has gathered already (or the queue
    /// is closed). Returns `[]` if nothing came, `nil` once the queue is closed and empty.
    func takeAll(waitingUpTo timeout: TimeInterval) -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        if !closed && timeout > 0 && weight < wakeWeight && items.count < wakeCount {
            consumerWaiting = true
            let deadline = Date(timeIntervalSinceNow: timeout)
            // A signal ends the wait early; spurious wake-ups just wait again.
            while consumerWaiting && !closed && condition.wait(until: deadline) {}
            consumerWaiting = false
        }
        if items.isEmpty { return closed ? nil : [] }
        var taken: [Element] = []
        taken.reserveCapacity(items.count)
        swap(&taken, &items)
        weight = 0
        return taken
    }
}
