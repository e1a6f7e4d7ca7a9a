import Tapedeck

/// Why a long-running command should stop, from whichever source asks first.
final class StopRequests: Sendable {
    enum Reason: Sendable {
        case signal
        case recordingFailed(TapedeckError)
    }

    private let stream: AsyncStream<Reason>
    private let continuation: AsyncStream<Reason>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Reason.self)
    }

    func request(_ reason: Reason) {
        continuation.yield(reason)
    }

    func next() async -> Reason {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next() ?? .signal
    }
}
