/// A route as Toxiproxy's API shows a proxy: `{name, listen, upstream, enabled, toxics}`.
public struct ProxyState: Sendable, Hashable, Encodable {
    /// The route's name.
    public var name: String
    /// The address it listens on: the bound one once bound (port 0 replaced), as Toxiproxy reports it.
    public var listen: String
    /// The upstream, or empty for a route that only replays.
    public var upstream: String
    /// Whether the route is enabled; a `down` toxic takes it down without changing this, as in Toxiproxy.
    public var enabled: Bool
    /// Its toxics, in the order added.
    public var toxics: [Toxic]
}
