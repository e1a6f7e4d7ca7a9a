import NIOCore
import NIOPosix

extension SessionOutcome {
    /// How a failed upstream connect is recorded: refused, timed out, or failed for another reason.
    init(connectError error: any Error) {
        switch error {
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            self = .upstreamRefused
        case let error as NIOConnectionError:
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            self = refused ? .upstreamRefused : .connectFailed
        case ChannelError.connectTimeout:
            self = .connectTimeout
        default:
            self = .connectFailed
        }
    }
}
