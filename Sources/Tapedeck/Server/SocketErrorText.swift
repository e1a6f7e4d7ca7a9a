import Foundation
import NIOCore
import NIOPosix

/// Socket errors as one short lowercase reason: `connection refused`, `address already in use`.
enum SocketErrorText {
    /// The reason for `error`, for a log line or a one-line error.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)).lowercased()
        case let error as NIOConnectionError:
            if let first = error.connectionErrors.first { return describe(first.error) }
            if let dns = error.dnsAAAAError ?? error.dnsAError { return "cannot resolve host: \(dns)" }
            return "cannot connect"
        case let error as ChannelError:
            if case .connectTimeout(let amount) = error {
                return "connect timed out after \(DurationText.format(.nanoseconds(amount.nanoseconds)))"
            }
            return "\(error)"
        case let error as SocketAddressError:
            return "cannot resolve: \(error)"
        default:
            return "\(error)"
        }
    }
}
