import NIOCore
import NIOPosix

/// The socket options every UDP socket of Tapedeck gets, set synchronously as a channel is initialized.
enum DatagramSocket {
    /// The largest UDP payload over IPv4 (65,535 minus the IP and UDP headers): every read has room for it, since
    /// a datagram longer than the buffer would be cut short without a word.
    static let maximumDatagram = 65_507
    /// Room each read gets: the largest datagram, rounded up.
    static let readSize = 65_536
    /// Datagrams one vector read (`recvmmsg`) takes at most.
    static let vectorReadCount = 16
    /// How much may wait to be sent on a UDP socket before it counts as full.
    static let writeWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 1 << 20, high: 4 << 20)

    /// The receive buffer a listening socket asks for, so that a burst waits in the kernel rather than being
    /// dropped there; the kernel caps it at its `rmem_max`.
    static let listenerReceiveBuffer = 4 << 20

    /// `datagram` in a buffer of its own size when it sits in a much larger receive buffer.
    ///
    /// A read lands in a 64 KiB slice of a buffer the socket reuses for the next read once nothing else holds it;
    /// a datagram forwarded or recorded in place would hold it, and every read would then allocate (and fault in)
    /// a fresh one. Copying a small datagram costs far less than that.
    static func compacted(_ datagram: ByteBuffer) -> ByteBuffer {
        let count = datagram.readableBytes
        guard datagram.capacity > 2 * count + 1024 else { return datagram }
        var copy = ByteBufferAllocator().buffer(capacity: count)
        copy.writeImmutableBuffer(datagram)
        return copy
    }

    /// Sets the read buffer and, for a listening socket, vector reads and a large receive buffer.
    ///
    /// - Parameter vectorReads: Whether to read many datagrams per system call. Each read then takes
    ///   ``vectorReadCount`` times ``readSize`` bytes, which a listener can afford and a socket per flow cannot.
    ///   - receiveBuffer: Whether to ask for ``listenerReceiveBuffer`` with vector reads.
    static func setOptions(on channel: any Channel, vectorReads: Bool, receiveBuffer: Bool = true) throws {
        guard let options = channel.syncOptions else { return }
        // A socket counts as full, and its datagrams are dropped, only when this much waits for the kernel: NIO's
        // default (64 KiB) would call it full behind a single datagram of the largest size.
        try options.setOption(ChannelOptions.writeBufferWaterMark, value: writeWaterMark)
        if vectorReads {
            try options.setOption(
                ChannelOptions.recvAllocator,
                value: FixedSizeRecvByteBufferAllocator(capacity: readSize * vectorReadCount)
            )
            try options.setOption(ChannelOptions.datagramVectorReadMessageCount, value: vectorReadCount)
            guard receiveBuffer else { return }
            try options.setOption(
                ChannelOptions.socketOption(.so_rcvbuf),
                value: SocketOptionValue(listenerReceiveBuffer)
            )
        } else {
            try options.setOption(
                ChannelOptions.recvAllocator,
                value: FixedSizeRecvByteBufferAllocator(capacity: readSize)
            )
        }
    }
}
