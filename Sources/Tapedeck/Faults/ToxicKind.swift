/// What a toxic does, in Toxiproxy's names (`latency`, `reset_peer`, …), plus `down` for a whole route and the
/// datagram faults of UDP routes.
public enum ToxicKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// Delays each chunk by `latency` ms, plus or minus up to `jitter` ms; a FIN or reset is delayed like data.
    case latency
    /// Passes at most `rate` KB/s (1 KB = 1,000 bytes, as in Toxiproxy).
    case bandwidth
    /// Delays the end of the stream (FIN or close) by `delay` ms.
    case slowClose = "slow_close"
    /// Passes nothing; closes the connection after `timeout` ms, or with 0 holds the data until the toxic is
    /// removed.
    case timeout
    /// Resets the connection (RST) after `timeout` ms.
    case resetPeer = "reset_peer"
    /// Cuts each chunk into pieces of `average_size` ± `size_variation` bytes, `delay` µs apart.
    case slicer
    /// Passes `bytes` bytes, then closes the connection.
    case limitData = "limit_data"
    /// Takes the whole route down: new connections are refused and open ones reset.
    case down
    /// UDP: drops datagrams with a `probability`, in bursts as `correlation` says.
    case loss
    /// UDP: sends datagrams twice with a `probability`.
    case duplicate
    /// UDP: holds a datagram back with a `probability`, so the next one overtakes it.
    case reorder

    /// Whether the toxic works on datagrams (UDP routes) rather than streams.
    public var isDatagramOnly: Bool {
        switch self {
        case .loss, .duplicate, .reorder: return true
        default: return false
        }
    }

    /// Whether the toxic applies to UDP routes: the datagram faults, `latency` and `down`.
    public var appliesToDatagrams: Bool {
        isDatagramOnly || self == .latency || self == .down
    }

    /// Whether the toxic applies to stream routes (TCP, Unix sockets).
    public var appliesToStreams: Bool {
        !isDatagramOnly
    }
}

/// Which way the bytes a toxic acts on flow, in Toxiproxy's terms.
public enum ToxicStream: String, Sendable, Hashable, Codable, CaseIterable {
    /// From the client to the upstream.
    case upstream
    /// From the upstream to the client; Toxiproxy's default.
    case downstream

    /// The tape's direction of the bytes this stream carries.
    public var direction: Direction {
        switch self {
        case .upstream: return .clientToUpstream
        case .downstream: return .upstreamToClient
        }
    }
}
