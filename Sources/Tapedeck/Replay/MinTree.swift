/// A segment tree of minimums over positions, where each position holds a value or nothing.
///
/// The session ledger keeps two over the sessions in client-byte order, to find the earliest recorded session
/// of a candidate range that is still unused, or free, in logarithmic time.
struct MinTree: Sendable {
    private var nodes: [Int]
    private let size: Int
    private static let empty = Int.max

    init(leaves: [Int]) {
        var size = 1
        while size < max(1, leaves.count) { size *= 2 }
        self.size = size
        nodes = [Int](repeating: Self.empty, count: 2 * size)
        for (position, value) in leaves.enumerated() { nodes[size + position] = value }
        for node in stride(from: size - 1, to: 0, by: -1) { nodes[node] = min(nodes[2 * node], nodes[2 * node + 1]) }
    }

    func isPresent(at position: Int) -> Bool { nodes[size + position] != Self.empty }

    mutating func remove(at position: Int) { set(Self.empty, at: position) }

    mutating func insert(_ value: Int, at position: Int) { set(value, at: position) }

    private mutating func set(_ value: Int, at position: Int) {
        var node = size + position
        nodes[node] = value
        node /= 2
        while node >= 1 {
            nodes[node] = min(nodes[2 * node], nodes[2 * node + 1])
            node /= 2
        }
    }

    /// The smallest value over `range`, or nil if every position in it is empty.
    func minimum(in range: Range<Int>) -> Int? {
        var low = range.lowerBound + size
        var high = range.upperBound + size
        var result = Self.empty
        while low < high {
            if low & 1 == 1 {
                result = min(result, nodes[low])
                low += 1
            }
            if high & 1 == 1 {
                high -= 1
                result = min(result, nodes[high])
            }
            low /= 2
            high /= 2
        }
        return result == Self.empty ? nil : result
    }
}
