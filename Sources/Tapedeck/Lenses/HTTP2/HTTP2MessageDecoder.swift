import Foundation
import NIOHPACK

/// Reads a recorded HTTP/2 session into messages for `--decode`: each stream's request with its decoded headers
/// and body, and the response's headers, data and trailers as they came, tagged with the stream's id.
struct HTTP2MessageDecoder: MessageDecoder {
    private var decoder = HTTP2SessionDecoder(sessionID: 0)
    /// What was already said of each stream, by its index among the decoder's streams.
    private var told: [Told] = []
    private var failureTold = false

    private struct Told: Sendable {
        var requestEnded = false
        var responseParts = 0
    }

    /// Bytes of a body shown under it.
    static let shownBody = 256

    mutating func client(_ bytes: Data) -> [DecodedMessage] {
        decoder.feed(bytes, from: .clientToUpstream)
        return news()
    }

    mutating func upstream(_ bytes: Data) -> [DecodedMessage] {
        decoder.feed(bytes, from: .upstreamToClient)
        return news()
    }

    /// What the decoder learned since it was last asked: new requests, requests ended, response parts.
    private mutating func news() -> [DecodedMessage] {
        var messages: [DecodedMessage] = []
        for (index, stream) in decoder.streams.enumerated() {
            if index == told.count {
                told.append(Told())
                messages.append(
                    DecodedMessage(
                        lens: "http2",
                        from: "client",
                        summary: "stream \(stream.streamID): \(Self.requestLine(stream.requestHeaders))",
                        details: Self.lines(stream.requestHeaders)
                    )
                )
            }
            if stream.requestEnded, !told[index].requestEnded {
                told[index].requestEnded = true
                if !stream.requestBody.isEmpty {
                    messages.append(
                        DecodedMessage(
                            lens: "http2",
                            from: "client",
                            summary: "stream \(stream.streamID): request body, \(stream.requestBody.count) bytes",
                            details: [ByteExcerpt.render(Data(stream.requestBody.prefix(Self.shownBody)))]
                        )
                    )
                }
            }
            while told[index].responseParts < stream.response.count {
                let part = stream.response[told[index].responseParts]
                told[index].responseParts += 1
                messages.append(Self.describe(part, of: stream))
            }
        }
        if let failure = decoder.failure, !failureTold {
            failureTold = true
            messages.append(DecodedMessage(lens: "http2", from: "client", summary: "no longer decoded: \(failure)"))
        }
        return messages
    }

    private static func describe(
        _ part: HTTP2RecordedStream.ResponsePart,
        of stream: HTTP2RecordedStream
    ) -> DecodedMessage {
        let end = part.endStream ? ", end of stream" : ""
        let summary: String
        var details: [String] = []
        switch part.content {
        case .headers(let headers):
            let status = headers.first(name: ":status")
            summary = status.map { "response \($0)" } ?? "trailers"
            details = lines(headers)
        case .data(let bytes):
            summary = "data, \(bytes.count) bytes"
            if !bytes.isEmpty { details = [ByteExcerpt.render(Data(bytes.prefix(shownBody)))] }
        case .reset(let code):
            summary = "reset, error code \(code)"
        }
        return DecodedMessage(
            lens: "http2",
            from: "upstream",
            summary: "stream \(stream.streamID): \(summary)\(end)",
            details: details
        )
    }

    private static func requestLine(_ headers: HPACKHeaders) -> String {
        let method = headers.first(name: ":method") ?? "?"
        let path = headers.first(name: ":path") ?? ""
        let authority = headers.first(name: ":authority").map { " (\($0))" } ?? ""
        return "\(method) \(path)\(authority)"
    }

    private static func lines(_ headers: HPACKHeaders) -> [String] {
        headers.map { "\($0.name): \($0.value)" }
    }
}
