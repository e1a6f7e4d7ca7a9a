import NIOCore

/// Payloads for the workloads.
enum Payload {
    /// Pseudo-random bytes (xorshift), the same on every run, so that nothing about the payload is special and
    /// SQLite cannot compress or deduplicate it away.
    static func bytes(count: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count)
        var state: UInt32 = 2_463_534_242
        for _ in 0..<count {
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            buffer.writeInteger(UInt8(truncatingIfNeeded: state))
        }
        return buffer
    }
}
