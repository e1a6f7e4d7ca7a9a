import Foundation
import NIOCore
import NIOHPACK

/// Decodes a recorded HTTP/2 session, both directions, into its streams: the requests and the responses as a
/// client and an upstream meant them, free of what the connection added (frame boundaries, padding, HPACK state,
/// stream ids, PINGs, flow control).
///
/// A channel-free state machine: feed it the session's data events in recording order (the client's stream begins
/// with the 24-byte preface), then read ``streams``. Each direction has its own frame reader and HPACK decoder, fed
/// in order, HEADERS joined with their CONTINUATIONs, so the dynamic table evolves exactly as the peer's did. The
/// decoders allow a dynamic table far larger than any `SETTINGS_HEADER_TABLE_SIZE`: an encoder evicts its oldest
/// entries first, so every entry it refers to sits at the same index in a larger table, and size updates inside a
/// block are followed as sent.
///
/// A tape cut short, or bytes that are not HTTP/2, stop the decoding of that direction (``failure`` says why):
/// what was decoded before stays, and nothing traps.
///
/// ```swift
/// var decoder = HTTP2SessionDecoder(sessionID: 1)
/// for event in events where event.kind == .data { decoder.feed(event.payload!, from: event.direction) }
/// for stream in decoder.streams { print(stream.key.line, stream.response.count) }
/// ```
struct HTTP2SessionDecoder: Sendable {
    /// The largest dynamic table and header list the decoders accept: far beyond what peers announce.
    static let maximumTableSize = 1 << 20

    /// One direction's reading state.
    private struct Side: Sendable {
        var reader: HTTP2FrameReader
        var hpack: HPACKDecoder
        /// The header block being gathered: its stream, its fragments so far, END_STREAM, whether it is a push
        /// promise (decoded only to keep the table in step), and where its first frame started.
        var block: (streamID: UInt32, bytes: [UInt8], endStream: Bool, isPush: Bool, offset: Int)?
        /// Bytes of this direction consumed by whole frames (and the preface) so far.
        var consumed: Int

        init(expectingPreface: Bool) {
            reader = HTTP2FrameReader(expectingPreface: expectingPreface)
            hpack = HPACKDecoder(
                allocator: ByteBufferAllocator(),
                maxDynamicTableSize: HTTP2SessionDecoder.maximumTableSize,
                maxHeaderListSize: HTTP2SessionDecoder.maximumTableSize
            )
            consumed = expectingPreface ? HTTP2FrameReader.preface.count : 0
        }

        /// Why this side stopped being read, once it did.
        var failure: String?

        /// Gathers a header block's fragments; returns the block once its END_HEADERS frame is in, with its
        /// stream, END_STREAM, whether it is a push promise, and where it started. A CONTINUATION out of place
        /// fails the side.
        mutating func gather(
            _ frame: HTTP2WireFrame,
            offset: Int
        ) -> (bytes: [UInt8], streamID: UInt32, endStream: Bool, isPush: Bool, offset: Int)? {
            switch frame.kind {
            case .headers:
                guard block == nil, let content = frame.content else {
                    failure = "a HEADERS frame inside another header block, or a malformed one"
                    return nil
                }
                block = (frame.streamID, Array(content), frame.has(HTTP2WireFrame.Flag.endStream), false, offset)
            case .pushPromise:
                guard block == nil, let content = HTTP2SessionDecoder.promiseFragment(frame) else {
                    failure = "a malformed PUSH_PROMISE"
                    return nil
                }
                block = (frame.streamID, content, false, true, offset)
            default:
                guard block?.streamID == frame.streamID else {
                    failure = "a CONTINUATION frame outside a header block"
                    return nil
                }
                block!.bytes.append(contentsOf: frame.payload)
                guard block!.bytes.count <= HTTP2SessionDecoder.maximumTableSize else {
                    failure = "a header block of more than \(HTTP2SessionDecoder.maximumTableSize) bytes"
                    return nil
                }
            }
            guard frame.has(HTTP2WireFrame.Flag.endHeaders), let gathered = block else { return nil }
            block = nil
            return (gathered.bytes, gathered.streamID, gathered.endStream, gathered.isPush, gathered.offset)
        }

        /// A whole header block through this side's HPACK decoder, which it changes as the peer's changed.
        mutating func decode(_ bytes: [UInt8]) -> HPACKHeaders? {
            var buffer = ByteBuffer(bytes: bytes)
            do {
                return try hpack.decodeHeaders(from: &buffer)
            } catch {
                failure = "a header block HPACK cannot decode (\(error))"
                return nil
            }
        }
    }

    /// The session decoded.
    let sessionID: Int64
    private var client = Side(expectingPreface: true)
    private var upstream = Side(expectingPreface: false)
    /// The streams, in the order their requests began.
    private(set) var streams: [HTTP2RecordedStream] = []
    private var indexOfStream: [UInt32: Int] = [:]
    /// Why a direction stopped being decoded, if one did.
    private(set) var failure: String?
    /// How an HTTP/1.1 beginning is being read: a client that asks to upgrade to h2c (its request becomes stream
    /// 1) and the upstream's `101 Switching Protocols` before its frames.
    private var upgrade = Upgrade.undecided([])

    private enum Upgrade: Sendable {
        /// The client's first bytes, until they show a preface or an upgrade request.
        case undecided([UInt8])
        /// Upgraded: the preface the client sends after the 101 is still to be skipped (it was fed already, before
        /// stream 1's frames), and the upstream's 101 head still to be skipped.
        case upgraded(prefaceLeft: Int, upstreamHead: [UInt8]?)
        /// Frames from the first byte, or done with the upgrade.
        case none
    }

    init(sessionID: Int64) {
        self.sessionID = sessionID
    }

    /// Whether the client's stream began as HTTP/2 (its preface); false once it turned out not to.
    var isHTTP2: Bool {
        client.consumed >= HTTP2FrameReader.preface.count && client.reader.failed == nil
            || !streams.isEmpty
    }

    /// Takes the next bytes one side sent.
    ///
    /// - Parameters:
    ///   - offsetNanoseconds: When they were recorded, since the session began.
    mutating func feed(_ bytes: some Collection<UInt8>, from direction: Direction, at offsetNanoseconds: Int64 = 0) {
        var bytes = Array(bytes)
        switch (direction, upgrade) {
        case (.clientToUpstream, .undecided(var held)):
            held += bytes
            let preface = HTTP2FrameReader.preface
            if held.count < preface.count, held.elementsEqual(preface.prefix(held.count)) {
                upgrade = .undecided(held)
                return
            }
            if held.starts(with: preface) || held.first.map({ !(0x41...0x5A).contains($0) }) == true {
                // The preface, or not an HTTP/1.1 request (a method is upper-case letters).
                upgrade = .none
                bytes = held
                break
            }
            guard let end = HTTP2UpgradeRequest.headLength(in: held) else {
                upgrade = held.count > HTTP2UpgradeRequest.maximumHeadLength ? .none : .undecided(held)
                if held.count > HTTP2UpgradeRequest.maximumHeadLength { bytes = held } else { return }
                break
            }
            guard let request = HTTP2UpgradeRequest(head: held[..<end]) else {
                upgrade = .none
                bytes = held
                break
            }
            guard held.count >= end + request.contentLength else {
                upgrade = .undecided(held)
                return
            }
            // Stream 1 as if sent as frames right after the preface; the preface the client sends after the 101
            // is skipped when it comes.
            upgrade = .upgraded(prefaceLeft: HTTP2FrameReader.preface.count, upstreamHead: [])
            let body = held[end..<(end + request.contentLength)]
            feedFrames(
                HTTP2FrameReader.preface + request.frames(body: body),
                from: .clientToUpstream,
                at: offsetNanoseconds
            )
            bytes = Array(held[(end + request.contentLength)...])
        case (.clientToUpstream, .upgraded(let prefaceLeft, let head)) where prefaceLeft > 0:
            let skipped = min(prefaceLeft, bytes.count)
            upgrade = .upgraded(prefaceLeft: prefaceLeft - skipped, upstreamHead: head)
            bytes.removeFirst(skipped)
        case (.upstreamToClient, .upgraded(let prefaceLeft, .some(var head))):
            head += bytes
            guard let end = HTTP2UpgradeRequest.headLength(in: head) else {
                upgrade = .upgraded(prefaceLeft: prefaceLeft, upstreamHead: head)
                return
            }
            upgrade = .upgraded(prefaceLeft: prefaceLeft, upstreamHead: nil)
            bytes = Array(head[end...])
        default:
            break
        }
        feedFrames(bytes, from: direction, at: offsetNanoseconds)
    }

    private mutating func feedFrames(_ bytes: [UInt8], from direction: Direction, at offsetNanoseconds: Int64) {
        switch direction {
        case .clientToUpstream:
            for frame in client.reader.feed(bytes) where failure == nil {
                let offset = client.consumed
                client.consumed += 9 + frame.payload.count
                clientFrame(frame, offset: offset)
            }
            if let failed = client.reader.failed, failure == nil { failure = "client: \(failed)" }
        case .upstreamToClient:
            for frame in upstream.reader.feed(bytes) where failure == nil {
                upstream.consumed += 9 + frame.payload.count
                upstreamFrame(frame, at: offsetNanoseconds)
            }
            if let failed = upstream.reader.failed, failure == nil { failure = "upstream: \(failed)" }
        }
    }

    // MARK: The client's frames

    private mutating func clientFrame(_ frame: HTTP2WireFrame, offset: Int) {
        switch frame.kind {
        case .headers, .continuation, .pushPromise:
            guard let block = client.gather(frame, offset: offset), let headers = client.decode(block.bytes) else {
                if let failed = client.failure { failure = "client: \(failed)" }
                return
            }
            let streamID = block.streamID
            let endStream = block.endStream
            if let index = indexOfStream[streamID] {
                streams[index].requestTrailers = headers
                streams[index].requestEnded = streams[index].requestEnded || endStream
            } else {
                indexOfStream[streamID] = streams.count
                streams.append(
                    HTTP2RecordedStream(
                        sessionID: sessionID,
                        streamID: streamID,
                        clientOffset: block.offset,
                        requestHeaders: headers,
                        requestEnded: endStream
                    )
                )
            }
        case .data:
            guard let index = indexOfStream[frame.streamID], let content = frame.content else { return }
            streams[index].requestBody.append(contentsOf: content)
            if frame.has(HTTP2WireFrame.Flag.endStream) { streams[index].requestEnded = true }
        case .resetStream:
            guard let index = indexOfStream[frame.streamID] else { return }
            streams[index].requestReset = true
        default:
            // SETTINGS, PING, WINDOW_UPDATE, PRIORITY, GOAWAY: the connection's business, answered live.
            return
        }
    }

    // MARK: The upstream's frames

    private mutating func upstreamFrame(_ frame: HTTP2WireFrame, at offsetNanoseconds: Int64) {
        switch frame.kind {
        case .headers, .continuation, .pushPromise:
            guard let block = upstream.gather(frame, offset: 0), let headers = upstream.decode(block.bytes) else {
                if let failed = upstream.failure { failure = "upstream: \(failed)" }
                return
            }
            // A push promise is decoded only so that the table stays in step: replay never pushes.
            guard !block.isPush else { return }
            append(.headers(headers), endStream: block.endStream, to: block.streamID, at: offsetNanoseconds)
        case .data:
            guard let content = frame.content else { return }
            append(
                .data(Array(content)),
                endStream: frame.has(HTTP2WireFrame.Flag.endStream),
                to: frame.streamID,
                at: offsetNanoseconds
            )
        case .resetStream:
            guard frame.payload.count == 4 else { return }
            let code = frame.payload.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            append(.reset(code), endStream: false, to: frame.streamID, at: offsetNanoseconds)
        default:
            return
        }
    }

    /// Adds a part to a stream's response, marked with how far the request had come; body bytes right after body
    /// bytes sent at the same point join them.
    private mutating func append(
        _ content: HTTP2RecordedStream.ResponsePart.Content,
        endStream: Bool,
        to streamID: UInt32,
        at offsetNanoseconds: Int64
    ) {
        guard let index = indexOfStream[streamID] else { return }
        let part = HTTP2RecordedStream.ResponsePart(
            content: content,
            endStream: endStream,
            afterRequestBytes: streams[index].requestBody.count,
            afterRequestEnd: streams[index].requestEnded,
            offsetNanoseconds: offsetNanoseconds
        )
        if case .data(let bytes) = content, let last = streams[index].response.last, !last.endStream,
            case .data(let before) = last.content, last.afterRequestBytes == part.afterRequestBytes,
            last.afterRequestEnd == part.afterRequestEnd
        {
            streams[index].response[streams[index].response.count - 1].content = .data(before + bytes)
            streams[index].response[streams[index].response.count - 1].endStream = endStream
            return
        }
        streams[index].response.append(part)
    }
}

extension HTTP2SessionDecoder {
    /// A PUSH_PROMISE's header block fragment, without its padding and promised stream id.
    fileprivate static func promiseFragment(_ frame: HTTP2WireFrame) -> [UInt8]? {
        var start = 0
        var end = frame.payload.count
        if frame.has(HTTP2WireFrame.Flag.padded) {
            guard let padding = frame.payload.first.map(Int.init) else { return nil }
            start = 1
            end -= padding
        }
        start += 4
        return start <= end ? Array(frame.payload[start..<end]) : nil
    }

    /// Decodes one recorded session from its events in order.
    static func decode(sessionID: Int64, events: [EventRecord]) -> HTTP2SessionDecoder {
        var decoder = HTTP2SessionDecoder(sessionID: sessionID)
        for event in events where event.kind == .data {
            guard let payload = event.payload else { continue }
            decoder.feed(payload, from: event.direction, at: event.offsetNanoseconds)
        }
        return decoder
    }
}
