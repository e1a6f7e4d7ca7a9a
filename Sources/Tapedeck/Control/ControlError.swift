/// Why the control plane refused a change, in the terms of Toxiproxy's API, which answers each with its status.
public struct ControlError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of refusal, which picks the HTTP status.
    public enum Kind: Sendable, Hashable {
        /// The request is malformed or asks for something impossible: 400.
        case badRequest
        /// No proxy (route) or toxic of that name: 404.
        case notFound
        /// A proxy or toxic of that name exists already: 409.
        case conflict
        /// The request is refused whatever it asks: 403.
        case forbidden
        /// Something failed while carrying it out, such as a listener that cannot bind: 500, as in Toxiproxy.
        case failed
    }

    /// The kind of refusal.
    public var kind: Kind
    /// One line saying what was refused and why.
    public var message: String

    /// Creates a refusal.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The HTTP status Toxiproxy answers this refusal with.
    public var status: Int {
        switch kind {
        case .badRequest: return 400
        case .notFound: return 404
        case .conflict: return 409
        case .forbidden: return 403
        case .failed: return 500
        }
    }

    public var description: String { message }

    /// Toxiproxy's message for a missing proxy.
    static func proxyNotFound(_ name: String) -> ControlError {
        ControlError(.notFound, "proxy not found: \(name)")
    }

    /// The refusal for an error thrown while carrying out a change: bad input for Tapedeck's argument and address
    /// errors, a failure for the rest (a port in use, a tape that cannot be read).
    static func from(_ error: any Error) -> ControlError {
        if let error = error as? ControlError { return error }
        if let error = error as? RouteFaults.ChangeError { return from(error) }
        guard let error = error as? TapedeckError else { return ControlError(.failed, "\(error)") }
        switch error.code {
        case .invalidAddress, .invalidArgument, .invalidConfiguration: return ControlError(.badRequest, error.message)
        default: return ControlError(.failed, error.message)
        }
    }

    /// The refusal a toxic change meets, with Toxiproxy's status for each.
    static func from(_ error: RouteFaults.ChangeError) -> ControlError {
        switch error {
        case .exists(let name): return ControlError(.conflict, "toxic already exists: \(name)")
        case .notFound(let name): return ControlError(.notFound, "toxic not found: \(name)")
        case .invalid(let why): return ControlError(.badRequest, why)
        }
    }
}
