import Foundation
import Logging
import NIOCore

/// Serves DNS over TCP from the tape on a route marked as DNS: reads the client's length-prefixed queries and
/// answers each with the recorded answer to the same question, fitted to the live query's id and letter case,
/// whatever connection or order the queries were recorded in (RFC 7766 lets a client pipeline them).
///
/// A query the tape never saw is a mismatch and gets SERVFAIL. The connection closes once the client has closed
/// its side and every answer is out.
final class DNSStreamReplayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let route: String
    private let book: DatagramReplayBook
    private let ledger: ReplayLedger
    private let logger: Logger
    private var framer = DNSStreamFramer()
    private var client = "unknown"
    private var answeredFrom: Int64?
    private var mismatched = false
    private var reported = false

    init(route: String, book: DatagramReplayBook, ledger: ReplayLedger, logger: Logger) {
        self.route = route
        self.book = book
        self.ledger = ledger
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        client = context.remoteAddress.map { "\(Endpoint($0))" } ?? "unknown"
        ledger.connectionOpened()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        for query in framer.feed(buffer.readableBytesView) {
            answer(query, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .inputClosed = event as? ChannelEvent else { return context.fireUserInboundEventTriggered(event) }
        // The client has said all it will: close once what was written is out.
        let flushed = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: flushed)
        flushed.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        report()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func answer(_ query: [UInt8], context: ChannelHandlerContext) {
        guard let question = DNSQuestion(message: query) else {
            return mismatch(query, reason: "a message on a DNS route that is not a DNS query", context: context)
        }
        guard let recorded = book.nextAnswer(to: question.key) else {
            var reason = "a DNS query the tape never saw: \(question.key.name) type \(question.type)"
            if let closest = book.closestQuestion(to: question.key) {
                reason +=
                    " (closest recorded: \(closest.key.name) type \(closest.key.type), session \(closest.sessionID))"
            }
            mismatch(query, reason: reason, context: context)
            if let failure = DNSQuestion.serverFailure(answering: query) { write(failure, context: context) }
            return
        }
        answeredFrom = recorded.sessionID
        guard
            let reply = recorded.fitted(to: query, nameRange: question.nameRange, allocator: context.channel.allocator)
        else {
            return
        }
        write(Array(reply.readableBytesView), context: context)
    }

    private func write(_ message: [UInt8], context: ChannelHandlerContext) {
        guard let framed = DNSStreamFramer.frame(message) else { return }
        context.write(wrapOutboundOut(ByteBuffer(bytes: framed)), promise: nil)
    }

    private func mismatch(_ query: [UInt8], reason: String, context: ChannelHandlerContext) {
        mismatched = true
        ledger.mismatched(
            route: route,
            client: client,
            closestSession: book.closestQuestion(
                to: DNSQuestion(message: query)?.key ?? .init(name: "", type: 0, queryClass: 0)
            )?.sessionID,
            offset: 0,
            expected: Data(),
            actual: Data(query.prefix(64)),
            reason: reason,
            logger: logger
        )
    }

    private func report() {
        guard !reported else { return }
        reported = true
        if !mismatched, let answeredFrom {
            ledger.replayed(ReplayReport.Replayed(route: route, session: answeredFrom, client: client))
        }
    }
}
