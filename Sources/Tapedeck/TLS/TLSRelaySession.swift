import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Puts TLS into one relayed session where the route asks for it, at the place the session's bytes show TLS
/// starting: the client's first byte, or after a protocol's own upgrade (PostgreSQL's `SSLRequest`, SMTP's
/// `STARTTLS`, MySQL's SSL request).
///
/// A ``TLSGate`` sits in front of each side's ``RelayHandler`` and hands it every read. Until TLS starts, bytes
/// pass (and feed a ``TLSStartRecognizer``); from the start of TLS they are held while the client's ClientHello
/// arrives. With the name and protocols it asks for, the session originates TLS to the upstream (passing them on),
/// then completes the client's handshake with a leaf for that name and the protocol the upstream chose, and lets
/// the held bytes through the new TLS handler. The relay handlers, and so the recording, see only plaintext.
///
/// Lives on the session's event loop; the two gates and the handshake callbacks call it there.
final class TLSRelaySession {
    private enum Phase {
        /// Bytes pass and are watched for the start of TLS.
        case watching
        /// TLS has started; the client's ClientHello is being gathered.
        case awaitingClientHello
        /// The upstream's handshake is under way.
        case handshakingUpstream
        /// The client's handshake is under way.
        case handshakingClient
        /// TLS is in place where the mode wants it; bytes pass.
        case established
        /// The session stays plaintext; bytes pass.
        case plaintext
        /// A handshake failed; the session is being closed.
        case failed
        /// Originating for a PostgreSQL client: Tapedeck sent the upstream an `SSLRequest` and waits for its `S`.
        case originateAsked
    }

    private let route: Route
    private let contexts: TLSContexts
    private let recorder: SessionRecorder?
    private let logger: Logger
    private var phase = Phase.watching
    private var recognizer = TLSStartRecognizer()
    private var clientPassed = 0
    private var heldClient: ByteBuffer?
    private var heldUpstream: ByteBuffer?
    private var client: (any Channel)?
    private var upstream: (any Channel)?
    private var clientHello: TLSHello.ClientHello?
    private var record: SessionTLSRecord?
    private var upstreamTLS: NIOSSLHandler?
    /// The first bytes of what may be a PostgreSQL `SSLRequest`, held back while terminating until it is whole.
    private var postgresPrefix: ByteBuffer?
    /// Watches the client's handshake for an alert in the clear, the client's real reason when it fails.
    private var clientAlerts: TLSAlertSniffer?

    private var mode: TLSSettings.Mode { route.tls.mode }

    init(route: Route, contexts: TLSContexts, recorder: SessionRecorder?, logger: Logger) {
        self.route = route
        self.contexts = contexts
        self.recorder = recorder
        self.logger = logger
    }

    /// The gate for the client's pipeline, in front of its relay handler.
    func clientGate() -> TLSGate { TLSGate(session: self, side: .client) }

    /// The handler for the upstream's pipeline, in front of its relay handler.
    func upstreamGate() -> TLSGate { TLSGate(session: self, side: .upstream) }

    // MARK: Reads from either side

    /// The gate of `side` read `buffer`: returns what passes on to the relay now; the rest is held.
    fileprivate func read(_ buffer: ByteBuffer, from side: RelayHandler.Side, channel: any Channel) -> ByteBuffer? {
        switch side {
        case .client: client = channel
        case .upstream: upstream = channel
        }
        switch phase {
        case .established, .plaintext:
            return buffer
        case .failed:
            return nil
        case .awaitingClientHello:
            // TLS has started but no TLS handler is in place yet: these are TLS bytes, for the handler to come.
            hold(buffer, from: side)
            if side == .client { clientHelloArrived() }
            return nil
        case .handshakingUpstream:
            // The client waits for its handshake, which follows the upstream's; what it sends meanwhile is TLS.
            // The upstream's bytes come out of its TLS handler, and so do a plaintext client's when originating,
            // unless a PostgreSQL startup waits for the handshake: then the client's bytes queue behind it.
            guard side == .client, mode == .intercept || heldClient != nil else { return buffer }
            hold(buffer, from: side)
            return nil
        case .originateAsked:
            guard side == .upstream else {
                hold(buffer, from: side)
                return nil
            }
            originateAnswered(buffer)
            return nil
        case .handshakingClient:
            // Both sides' bytes come out of TLS handlers now (or a plaintext upstream): plaintext, to relay.
            return buffer
        case .watching:
            return watch(buffer, from: side)
        }
    }

    private func watch(_ buffer: ByteBuffer, from side: RelayHandler.Side) -> ByteBuffer? {
        if mode == .originate { return watchOriginating(buffer, from: side) }
        var buffer = buffer
        if mode == .terminate, side == .client {
            switch answerPostgresUpgrade(buffer) {
            case .handled: return nil
            case .notUpgrade(let bytes): buffer = bytes
            }
        }
        let bytes = Data(buffer.readableBytesView)
        let decision = side == .client ? recognizer.client(bytes) : recognizer.upstream(bytes)
        switch decision {
        case .undecided:
            // A lone first byte 0x16 may be a ClientHello: it must not reach the upstream as plaintext.
            if side == .client, clientPassed == 0, bytes == Data([0x16]) {
                hold(buffer, from: side)
                return nil
            }
            if side == .client { clientPassed += buffer.readableBytes }
            return buffer
        case .plaintext:
            phase = .plaintext
            // A client that speaks first without TLS or an upgrade, on a route that terminates its TLS.
            if side == .client, mode.terminatesClientTLS {
                var pending = heldClient ?? ByteBuffer()
                heldClient = nil
                var copy = buffer
                pending.writeBuffer(&copy)
                fail(
                    "the client did not start TLS (its first bytes: \(Self.excerpt(pending))); "
                        + "route '\(route.name)' has --tls \(mode.rawValue)",
                    client: true
                )
                return nil
            }
            return release(buffer, side: side)
        case .tls(let upgrade, let clientOffset, let upstreamOffset):
            record = SessionTLSRecord(
                sessionID: 0,
                mode: mode == .intercept ? .intercept : .terminate,
                upgrade: upgrade.rawValue,
                clientOffset: Int64(clientOffset),
                upstreamOffset: Int64(upstreamOffset)
            )
            phase = .awaitingClientHello
            var buffer = release(buffer, side: side) ?? ByteBuffer()
            // What precedes the start of TLS in this read passes; the rest is TLS, held.
            let before = side == .client ? max(0, clientOffset - clientPassed) : 0
            if side == .client {
                clientPassed += min(before, buffer.readableBytes)
            }
            var passing = buffer.readSlice(length: min(before, buffer.readableBytes)) ?? ByteBuffer()
            if side == .upstream {
                // The upstream's answer to the upgrade passes whole; bytes after it are TLS from the upstream.
                passing = buffer
                buffer = ByteBuffer()
            }
            if buffer.readableBytes > 0 {
                hold(buffer, from: side)
                if side == .client { clientHelloArrived() }
            }
            return passing.readableBytes > 0 ? passing : nil
        }
    }

    // MARK: Originating

    private static let postgresSSLRequest = TLSStartRecognizer.sslRequest
    private static let postgresGSSRequest = TLSStartRecognizer.gssEncryptionRequest

    /// How long a connected upstream waits for the client's first bytes before TLS starts anyway: a client that
    /// waits for a greeting says nothing, and the upstream says nothing before a handshake.
    static let originateQuietTime = TimeAmount.milliseconds(100)

    /// Originating: the client's first bytes say where the upstream's TLS starts. A PostgreSQL client's
    /// `SSLRequest` is answered `N` here (the client speaks plaintext), and its startup waits until Tapedeck has
    /// asked the upstream for TLS with an `SSLRequest` of its own; anything else starts TLS at once.
    private func watchOriginating(_ buffer: ByteBuffer, from side: RelayHandler.Side) -> ByteBuffer? {
        guard side == .client else { return buffer }
        var pending = release(buffer, side: .client) ?? buffer
        while pending.readableBytes > 0 {
            let head = Array(pending.readableBytesView.prefix(8))
            if head.count < 8, head.starts(with: [0, 0]) || head == [0] {
                // Perhaps a PostgreSQL message's length: wait for the rest of its header.
                hold(pending, from: .client)
                return nil
            }
            if head == Self.postgresSSLRequest || head == Self.postgresGSSRequest {
                let asked = pending.readSlice(length: 8)!
                let answer = ByteBuffer(string: "N")
                recorder?.recordData(asked, from: .clientToUpstream)
                recorder?.recordData(answer, from: .upstreamToClient)
                clientPassed += 8
                client?.writeAndFlush(answer, promise: nil)
                // The client's startup follows once it has read the answer.
                if pending.readableBytes == 0 { return nil }
                continue
            }
            if head.count == 8, head[4...] == [0, 3, 0, 0], let upstream {
                // A startup message: the upstream hears an SSLRequest first, and the startup after TLS.
                hold(pending, from: .client)
                phase = .originateAsked
                upstream.writeAndFlush(ByteBuffer(bytes: Self.postgresSSLRequest), promise: nil)
                return nil
            }
            break
        }
        startOriginating(upgrade: "direct")
        return pending.readableBytes > 0 ? pending : nil
    }

    /// The upstream's answer to Tapedeck's `SSLRequest`.
    private func originateAnswered(_ buffer: ByteBuffer) {
        guard buffer.readableBytesView.first == UInt8(ascii: "S") else {
            fail(
                "the upstream refused TLS: it answered \(Self.excerpt(buffer)) to PostgreSQL's SSLRequest "
                    + "(route '\(route.name)' has --tls originate)",
                client: true
            )
            return
        }
        startOriginating(upgrade: "postgres")
    }

    /// Puts the TLS handler in front of the upstream's pipeline; its handshake starts at once.
    private func startOriginating(upgrade: String) {
        guard let upstream else { return }
        phase = .handshakingUpstream
        let serverName = Self.serverName(for: route)
        record = SessionTLSRecord(
            sessionID: 0,
            mode: .originate,
            upgrade: upgrade,
            clientOffset: Int64(clientPassed),
            upstreamOffset: 0
        )
        record?.serverName = serverName
        do {
            try addUpstreamTLS(to: upstream, applicationProtocols: [], serverName: serverName)
        } catch {
            fail("cannot originate TLS to the upstream: \(TLSFailure.describe(error))", client: false)
        }
    }

    /// A held lone first byte, and `buffer`, as one.
    private func release(_ buffer: ByteBuffer, side: RelayHandler.Side) -> ByteBuffer? {
        guard side == .client, var pending = heldClient else { return buffer }
        heldClient = nil
        var copy = buffer
        pending.writeBuffer(&copy)
        return pending
    }

    /// Terminating TLS for a PostgreSQL client: its `SSLRequest` is answered `S` here, since the plaintext
    /// upstream would refuse it; both are recorded as the client saw them, so replay answers the same.
    ///
    /// - Returns: `handled` when the bytes are (part of) an `SSLRequest`, answered or still arriving; otherwise
    ///   the bytes to go on with: `buffer`, after any part of a request held back before it.
    private func answerPostgresUpgrade(_ buffer: ByteBuffer) -> PostgresUpgrade {
        guard clientPassed == 0, let client else { return .notUpgrade(buffer) }
        var pending = postgresPrefix ?? ByteBuffer()
        postgresPrefix = nil
        var copy = buffer
        pending.writeBuffer(&copy)
        let head = Array(pending.readableBytesView.prefix(8))
        guard Self.postgresSSLRequest.starts(with: head) else { return .notUpgrade(pending) }
        guard head.count == 8 else {
            // Part of an SSLRequest: wait for the rest before anything reaches the upstream.
            postgresPrefix = pending
            return .handled
        }
        let asked = pending.readSlice(length: 8)!
        recorder?.recordData(asked, from: .clientToUpstream)
        let answer = ByteBuffer(string: "S")
        recorder?.recordData(answer, from: .upstreamToClient)
        client.writeAndFlush(answer, promise: nil)
        record = SessionTLSRecord(
            sessionID: 0,
            mode: .terminate,
            upgrade: "postgres",
            clientOffset: 8,
            upstreamOffset: 1
        )
        phase = .awaitingClientHello
        clientPassed = 8
        if pending.readableBytes > 0 {
            hold(pending, from: .client)
            clientHelloArrived()
        }
        return .handled
    }

    /// What ``answerPostgresUpgrade(_:)`` did with the client's first bytes.
    private enum PostgresUpgrade {
        case handled
        case notUpgrade(ByteBuffer)
    }

    private func hold(_ buffer: ByteBuffer, from side: RelayHandler.Side) {
        var copy = buffer
        switch side {
        case .client:
            if heldClient == nil { heldClient = ByteBuffer() }
            heldClient!.writeBuffer(&copy)
        case .upstream:
            if heldUpstream == nil { heldUpstream = ByteBuffer() }
            heldUpstream!.writeBuffer(&copy)
        }
    }

    // MARK: Handshakes

    /// More of the client's TLS arrived: once its ClientHello is whole, the handshakes begin.
    private func clientHelloArrived() {
        guard phase == .awaitingClientHello, let held = heldClient else { return }
        switch TLSHello.parseClientHello(held.readableBytesView) {
        case .incomplete:
            return
        case .invalid(let why):
            fail(
                "the client did not send a TLS ClientHello where TLS starts (\(why); its bytes: "
                    + "\(Self.excerpt(held)))",
                client: true
            )
        case .complete(let hello):
            clientHello = hello
            record?.serverName = hello.serverName
            if mode == .intercept {
                startUpstreamTLS(hello)
            } else {
                startClientTLS(applicationProtocol: nil)
            }
        }
    }

    /// Originates TLS to the upstream with the client's name and protocols, once the upstream is connected.
    private func startUpstreamTLS(_ hello: TLSHello.ClientHello) {
        guard let upstream, upstream.isActive else {
            // The upstream's gate calls back when it is connected.
            return
        }
        phase = .handshakingUpstream
        do {
            try addUpstreamTLS(
                to: upstream,
                applicationProtocols: hello.applicationProtocols,
                serverName: hello.serverName ?? Self.serverName(for: route)
            )
        } catch {
            fail("cannot originate TLS to the upstream: \(TLSFailure.describe(error))", client: false)
            return
        }
        if let held = heldUpstream {
            heldUpstream = nil
            upstream.pipeline.fireChannelRead(held)
            upstream.pipeline.fireChannelReadComplete()
        }
    }

    /// Puts a TLS client handler first in the upstream's pipeline (its handshake starts at once), and in front of
    /// it, when recording, the sniffer that reads the version and cipher the tape keeps.
    private func addUpstreamTLS(to upstream: any Channel, applicationProtocols: [String], serverName: String?) throws {
        let handler = try NIOSSLClientHandler(
            context: try contexts.client(applicationProtocols: applicationProtocols, settings: route.tls),
            serverHostname: serverName
        )
        upstreamTLS = handler
        try upstream.pipeline.syncOperations.addHandler(handler, position: .first)
        if recorder != nil {
            try upstream.pipeline.syncOperations.addHandler(
                TLSServerHelloSniffer { [weak self] in self?.upstreamHello($0) },
                position: .first
            )
        }
    }

    /// The upstream's gate saw its channel become active.
    fileprivate func upstreamActive(_ channel: any Channel) {
        upstream = channel
        if phase == .awaitingClientHello, let clientHello, mode == .intercept { startUpstreamTLS(clientHello) }
        if mode == .originate, phase == .watching {
            channel.eventLoop.assumeIsolated().scheduleTask(in: Self.originateQuietTime) { [self] in
                if phase == .watching, heldClient == nil, clientPassed == 0 { startOriginating(upgrade: "direct") }
            }
        }
    }

    private func upstreamHello(_ hello: TLSHello.ServerHello) {
        record?.version = hello.version
        record?.cipher = hello.cipher
    }

    /// The upstream's handshake is done: note what it negotiated and who it is, then serve the client.
    fileprivate func upstreamHandshakeCompleted(applicationProtocol: String?) {
        guard phase == .handshakingUpstream else { return }
        // Describing the upstream's certificate (DER, SHA-256, a parse for its subject) is for the tape only.
        if recorder != nil, let certificate = upstreamTLS?.peerCertificate,
            let described = TLSContexts.describe(certificate)
        {
            record?.upstreamSubject = described.subject
            record?.upstreamFingerprint = described.fingerprint
        }
        record?.applicationProtocol = applicationProtocol
        if mode == .originate {
            phase = .established
            finishRecord()
            if let held = heldClient, let client {
                // The PostgreSQL startup that waited for TLS, through the client's relay as if read now.
                heldClient = nil
                client.pipeline.fireChannelRead(held)
                client.pipeline.fireChannelReadComplete()
            }
            return
        }
        startClientTLS(applicationProtocol: applicationProtocol)
    }

    /// Completes the client's handshake with a leaf for the name it asked for, choosing the upstream's protocol.
    private func startClientTLS(applicationProtocol: String?) {
        guard let client, var held = heldClient else { return }
        heldClient = nil
        phase = .handshakingClient
        let name = clientHello?.serverName ?? Self.serverName(for: route) ?? route.upstream?.host ?? "localhost"
        do {
            let context = try contexts.server(
                name: name,
                applicationProtocols: applicationProtocol.map { [$0] } ?? [],
                settings: route.tls
            )
            try client.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context), position: .first)
            let sniffer = TLSAlertSniffer()
            try client.pipeline.syncOperations.addHandler(sniffer, position: .first)
            clientAlerts = sniffer
        } catch {
            fail("cannot serve TLS to the client: \(TLSFailure.describe(error))", client: true)
            return
        }
        client.pipeline.fireChannelRead(held.readSlice(length: held.readableBytes)!)
        client.pipeline.fireChannelReadComplete()
    }

    /// The client's handshake is done: the session is plaintext to the relay from here on.
    fileprivate func clientHandshakeCompleted(applicationProtocol: String?) {
        guard phase == .handshakingClient else { return }
        phase = .established
        if let clientAlerts, let client {
            client.pipeline.syncOperations.removeHandler(clientAlerts, promise: nil)
            self.clientAlerts = nil
        }
        if mode == .terminate {
            record?.applicationProtocol = applicationProtocol
        }
        finishRecord()
    }

    private func finishRecord() {
        if let record { recorder?.recordTLS(record) }
    }

    /// A side's TLS failed (or its gate caught another error while handshaking).
    fileprivate func handshakeFailed(_ error: any Error, side: RelayHandler.Side) {
        switch phase {
        case .handshakingUpstream where side == .upstream, .handshakingClient where side == .client:
            var reason = TLSFailure.describe(error)
            if side == .client, let alert = clientAlerts?.alert {
                reason = "the peer sent alert: \(TLSFailure.alertName(alert))"
            }
            if side == .client {
                let hint =
                    TLSFailure.peerDistrustsCertificate(reason)
                    ? "; the client does not trust the certificate served: make it trust Tapedeck's CA "
                        + "(tapedeck ca path)" : ""
                fail("the client's TLS handshake failed: \(reason)\(hint)", client: true)
            } else {
                let hint =
                    reason.contains("certificate verify failed")
                    ? " (give its CA with --upstream-ca FILE, or skip verification with --insecure-upstream)" : ""
                fail("the upstream's TLS handshake failed: \(reason)\(hint)", client: false)
            }
        default:
            return
        }
    }

    /// Says why the session cannot go on, records it, and closes the client (and so, through the relay, the
    /// upstream).
    private func fail(_ why: String, client clientSide: Bool) {
        guard phase != .failed else { return }
        phase = .failed
        heldClient = nil
        heldUpstream = nil
        logger.warning(
            "TLS failed, closing the client",
            metadata: [
                "tapedeck.route": "\(route.name)",
                "tapedeck.client": "\(client?.remoteAddress.map { "\(Endpoint($0))" } ?? "?")",
                "tapedeck.reason": "\(why)",
            ]
        )
        var failed =
            record
            ?? SessionTLSRecord(
                sessionID: 0,
                mode: SessionTLSRecord.Mode(rawValue: mode.rawValue) ?? .intercept,
                upgrade: "direct",
                clientOffset: Int64(clientPassed),
                upstreamOffset: 0
            )
        failed.failure = why
        recorder?.recordTLS(failed)
        recorder?.markTLSFailed()
        // Both sides go now; the relay handlers record how each ended. The upstream's TLS, if it got that far,
        // is dropped rather than shut down: a TLS shutdown waits for the upstream's answer, which nobody needs.
        client?.close(promise: nil)
        if let upstream, let upstreamTLS {
            upstream.pipeline.syncOperations.removeHandler(upstreamTLS, promise: nil)
        }
        upstream?.close(promise: nil)
    }

    /// Lets go of both channels once the session is over.
    fileprivate func channelGone(side: RelayHandler.Side) {
        switch side {
        case .client: client = nil
        case .upstream: upstream = nil
        }
    }

    /// The name to ask the upstream for when the client named none: the route's upstream host, unless it is an
    /// address (SNI carries names only).
    static func serverName(for route: Route) -> String? {
        guard let host = route.upstream?.host, CertificateAuthority.ipAddressBytes(host) == nil else { return nil }
        return host
    }

    /// The first bytes of a stream, escaped, for a log line.
    static func excerpt(_ buffer: ByteBuffer) -> String {
        let bytes = buffer.readableBytesView.prefix(16)
        return "\""
            + bytes.map { byte -> String in
                (0x20..<0x7F).contains(byte) && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
                    ? String(UnicodeScalar(byte)) : String(format: "\\x%02x", byte)
            }.joined() + (buffer.readableBytes > 16 ? "…" : "") + "\""
    }
}

/// One side's gate of a ``TLSRelaySession``: in front of the side's ``RelayHandler``, it passes on what the
/// session lets through and tells the session about handshakes.
final class TLSGate: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var session: TLSRelaySession?
    private let side: RelayHandler.Side

    fileprivate init(session: TLSRelaySession, side: RelayHandler.Side) {
        self.session = session
        self.side = side
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if side == .upstream, context.channel.isActive { session?.upstreamActive(context.channel) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if side == .upstream { session?.upstreamActive(context.channel) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session else { return context.fireChannelRead(data) }
        if let passing = session.read(unwrapInboundIn(data), from: side, channel: context.channel) {
            context.fireChannelRead(wrapInboundOut(passing))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted(let applicationProtocol) = event {
            switch side {
            case .client: session?.clientHandshakeCompleted(applicationProtocol: applicationProtocol)
            case .upstream: session?.upstreamHandshakeCompleted(applicationProtocol: applicationProtocol)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A peer that closes its connection without ending TLS first (many clients do) is an end of input, as a
        // FIN is without TLS: NIOSSL says so with the `inputClosed` that follows, which the relay handles.
        if case NIOSSLError.uncleanShutdown = error { return }
        session?.handshakeFailed(error, side: side)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        session?.channelGone(side: side)
        session = nil
        context.fireChannelInactive()
    }
}

/// Reads the upstream's ServerHello as it passes, for the version and cipher suite the tape records, then steps
/// out of the pipeline.
final class TLSServerHelloSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var seen = ByteBuffer()
    private let found: (TLSHello.ServerHello) -> Void

    init(found: @escaping (TLSHello.ServerHello) -> Void) {
        self.found = found
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        seen.writeBuffer(&buffer)
        context.fireChannelRead(data)
        switch TLSHello.parseServerHello(seen.readableBytesView) {
        case .incomplete where seen.readableBytes < TLSHello.maximumMessageLength:
            return
        case .complete(let hello):
            found(hello)
        default:
            break
        }
        seen = ByteBuffer()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
