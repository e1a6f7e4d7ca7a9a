import Foundation

/// Bytes the upstream sent in one recorded step: held in memory, or left in the tape and read when they are due.
///
/// Small replies are held, so a request-response replay never waits on the tape; a bulk transfer is left in the
/// tape, so replaying it takes as much memory as a few of its reads, not the transfer.
enum UpstreamBytes: Sendable, Equatable {
    /// The bytes themselves.
    case inline(Data)
    /// Where they are in the tape.
    case stored(StoredPayload)

    /// How many bytes.
    var count: Int {
        switch self {
        case .inline(let data): return data.count
        case .stored(let payload): return payload.bytes.count
        }
    }

    var isEmpty: Bool { count == 0 }

    /// The bytes when they are held in memory; nil when they are in the tape.
    var heldBytes: Data? {
        if case .inline(let data) = self { return data }
        return nil
    }

    /// The bytes after the first `count`: what is left to send when some were already sent.
    func dropFirst(_ count: Int) -> UpstreamBytes {
        guard count > 0 else { return self }
        switch self {
        case .inline(let data):
            return .inline(data.dropFirst(count))
        case .stored(var payload):
            payload.bytes = min(payload.bytes.upperBound, payload.bytes.lowerBound + count)..<payload.bytes.upperBound
            return .stored(payload)
        }
    }
}
