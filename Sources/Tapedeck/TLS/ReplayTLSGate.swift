import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Serves TLS on a replayed connection where the recording had it, in front of the ``ReplayHandler``: the
/// client's first bytes, or what follows an upgrade the tape answers as recorded (PostgreSQL's `S`, SMTP's
/// `220` to `STARTTLS`), are watched with a ``TLSStartRecognizer``; from the start of TLS the gate gathers the
/// ClientHello and completes the handshake itself, with a leaf for the name the client asked for (or the
/// recorded one) and the recorded application protocol. The replay handler then matches plaintext, as recorded.
/// No upstream is ever dialled.
final class ReplayTLSGate: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case watching
        case awaitingClientHello
        case handshaking
        case passing
    }

    private let route: String
    private let settings: TLSSettings
    private let profile: ReplayTLSProfile
    private let contexts: TLSContexts
    private let logger: Logger
    private var phase = Phase.watching
    private var recognizer = TLSStartRecognizer()
    private var clientSeen = 0
    private var held: ByteBuffer?
    /// Watches the client's handshake for an alert in the clear, the client's real reason when it fails.
    private var alerts: TLSAlertSniffer?
    /// What the tape answered before the client's handshake, on a route whose sessions all start with TLS: it
    /// was said inside TLS, so it waits for the TLS handler.
    private var heldWrites: [(NIOAny, EventLoopPromise<Void>?)] = []

    /// - Parameter route: The route replayed; a fixed certificate in its settings (`--cert`) is served in place of
    ///   the CA's leaves.
    init(route: Route, profile: ReplayTLSProfile, contexts: TLSContexts, logger: Logger) {
        self.route = route.name
        self.settings = route.tls.certificate != nil ? route.tls : TLSSettings(mode: .intercept)
        self.profile = profile
        self.contexts = contexts
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch phase {
        case .passing, .handshaking:
            context.fireChannelRead(data)
        case .awaitingClientHello:
            hold(buffer)
            helloArrived(context: context)
        case .watching:
            let bytes = Data(buffer.readableBytesView)
            switch recognizer.client(bytes) {
            case .undecided:
                if clientSeen == 0, bytes == Data([0x16]) {
                    hold(buffer)
                    return
                }
                clientSeen += buffer.readableBytes
                context.fireChannelRead(data)
            case .plaintext:
                phase = .passing
                releaseWrites(context: context)
                context.fireChannelRead(wrapInboundOut(releasing(buffer)))
            case .tls(_, let clientOffset, _):
                phase = .awaitingClientHello
                var all = releasing(buffer)
                let before = min(max(0, clientOffset - clientSeen), all.readableBytes)
                if before > 0, let passing = all.readSlice(length: before) {
                    clientSeen += before
                    context.fireChannelRead(wrapInboundOut(passing))
                }
                if all.readableBytes > 0 {
                    hold(all)
                    helloArrived(context: context)
                }
            }
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if profile.directOnly, phase == .watching || phase == .awaitingClientHello {
            heldWrites.append((data, promise))
            return
        }
        if phase == .watching {
            // What the tape answers: an upgrade's `S` or `220` decides that TLS starts next.
            if case .tls = recognizer.upstream(Data(unwrapOutboundIn(data).readableBytesView)) {
                phase = .awaitingClientHello
            }
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        // Held writes are flushed when they are let go.
        if heldWrites.isEmpty { context.flush() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        releaseWrites(context: context)
        context.fireChannelInactive()
    }

    /// Lets held writes go on, through the TLS handler once it is in place.
    private func releaseWrites(context: ChannelHandlerContext) {
        guard !heldWrites.isEmpty else { return }
        let writes = heldWrites
        heldWrites = []
        for (data, promise) in writes { context.write(data, promise: promise) }
        context.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, phase == .handshaking {
            phase = .passing
            if let alerts {
                context.pipeline.syncOperations.removeHandler(alerts, promise: nil)
                self.alerts = nil
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A client that closes without ending TLS first: the `inputClosed` that follows says all there is.
        if case NIOSSLError.uncleanShutdown = error { return }
        if phase == .handshaking {
            phase = .passing
            let reason =
                alerts?.alert.map { "the peer sent alert: \(TLSFailure.alertName($0))" }
                ?? TLSFailure.describe(error)
            let hint =
                TLSFailure.peerDistrustsCertificate(reason)
                ? "; make the client trust Tapedeck's CA (tapedeck ca path)" : ""
            logger.warning(
                "TLS failed, closing the client",
                metadata: [
                    "tapedeck.route": "\(route)",
                    "tapedeck.reason": "the client's TLS handshake failed: \(reason)\(hint)",
                ]
            )
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    private func hold(_ buffer: ByteBuffer) {
        var copy = buffer
        if held == nil { held = ByteBuffer() }
        held!.writeBuffer(&copy)
    }

    private func releasing(_ buffer: ByteBuffer) -> ByteBuffer {
        guard var pending = held else { return buffer }
        held = nil
        var copy = buffer
        pending.writeBuffer(&copy)
        return pending
    }

    /// Once the ClientHello is whole, puts a TLS handler in front and lets the held bytes through it.
    private func helloArrived(context: ChannelHandlerContext) {
        guard let bytes = held else { return }
        switch TLSHello.parseClientHello(bytes.readableBytesView) {
        case .incomplete:
            return
        case .invalid(let why):
            logger.warning(
                "TLS failed, closing the client",
                metadata: [
                    "tapedeck.route": "\(route)",
                    "tapedeck.reason":
                        "the client did not send a TLS ClientHello where the recording's TLS starts (\(why))",
                ]
            )
            held = nil
            phase = .passing
            context.close(promise: nil)
        case .complete(let hello):
            held = nil
            phase = .handshaking
            let name = hello.serverName ?? profile.serverNames.first ?? "localhost"
            // The recorded protocol the client offers too; the most used first, as recorded.
            let protocols = profile.applicationProtocols.filter(hello.applicationProtocols.contains)
            do {
                let tlsContext = try contexts.server(
                    name: name,
                    applicationProtocols: Array(protocols.prefix(1)),
                    settings: settings
                )
                try context.pipeline.syncOperations.addHandler(
                    NIOSSLServerHandler(context: tlsContext),
                    position: .first
                )
                let sniffer = TLSAlertSniffer()
                try context.pipeline.syncOperations.addHandler(sniffer, position: .first)
                alerts = sniffer
            } catch {
                logger.warning(
                    "TLS failed, closing the client",
                    metadata: ["tapedeck.route": "\(route)", "tapedeck.reason": "\(TLSFailure.describe(error))"]
                )
                context.close(promise: nil)
                return
            }
            context.pipeline.fireChannelRead(bytes)
            context.pipeline.fireChannelReadComplete()
            releaseWrites(context: context)
        }
    }
}
