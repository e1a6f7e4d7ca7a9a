/// A route's name and the address its listener actually bound, with port 0 replaced by the chosen port.
public struct BoundRoute: Sendable, Hashable {
    /// The route's name.
    public var name: String
    /// The address the listener is bound to.
    public var address: Endpoint

    /// Creates a bound route.
    public init(name: String, address: Endpoint) {
        self.name = name
        self.address = address
    }
}
