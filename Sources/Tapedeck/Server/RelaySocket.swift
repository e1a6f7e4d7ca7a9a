import NIOCore

/// The socket settings of every relayed connection, client or upstream, in the proxy and in replay's
/// record-missing handoff alike.
enum RelaySocket {
    /// How long a side whose partner has gone may take none of the bytes queued for it before it is reset: a
    /// client still reading a long answer slowly (or paused for a while in a loaded test run) keeps every byte;
    /// one that stopped reading frees its connection.
    static let lingerTimeout = TimeAmount.seconds(30)

    /// Reads start small and grow with the traffic: NIO keeps one receive buffer per channel between reads, so
    /// the initial size is what every idle connection costs.
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 128, maximum: 256 << 10)

    /// Sets the options every relayed channel needs, synchronously, before it is registered.
    static func setOptions(on channel: any Channel, autoRead: Bool) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        try options.setOption(ChannelOptions.recvAllocator, value: receiveAllocator)
        if !autoRead { try options.setOption(ChannelOptions.autoRead, value: false) }
    }
}
