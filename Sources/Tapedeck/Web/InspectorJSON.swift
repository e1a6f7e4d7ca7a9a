import Foundation

/// The JSON the web inspector's API answers with; field names are stable (see `docs/web.md`).
enum InspectorJSON {
    /// `GET /api/info`.
    struct Info: Encodable {
        var tape: String
        var mode: String
        var live: Bool
        var format: Int
        var version: String
        var sessions: Int
        var lastSession: Nullable<Int64>
        var routes: [String]
        var labels: [String]
        var outcomes: [String]
        var report: Bool
        var mismatches: Int

        enum CodingKeys: String, CodingKey {
            case tape, mode, live, format, version, sessions, routes, labels, outcomes, report, mismatches
            case lastSession = "last_session"
        }
    }

    /// A session: a row of `tapedeck sessions --json`, with its transport and, for one session, its route's
    /// details, its marked spans and its downloads.
    struct Session: Encodable {
        var summary: SessionSummary
        var transport: String
        var tls: SessionTLSRecord?
        var detail: Detail?

        struct Detail: Encodable {
            var listen: String?
            var protocolName: String?
            var redactedSpans: Int
            var volatileSpans: Int
            var exports: [String: String]

            enum CodingKeys: String, CodingKey {
                case listen, exports
                case protocolName = "protocol"
                case redactedSpans = "redacted_spans"
                case volatileSpans = "volatile_spans"
            }
        }

        private enum CodingKeys: String, CodingKey {
            case transport, tls, start
        }

        func encode(to encoder: any Encoder) throws {
            try summary.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(transport, forKey: .transport)
            try container.encode(InspectFormat.timestamp(summary.startedAt), forKey: .start)
            try container.encodeIfPresent(tls, forKey: .tls)
            try detail?.encode(to: encoder)
        }

        /// `tcp`, `udp` or `unix`: how the client reached the route.
        static func transport(client: String, listen: String?) -> String {
            if client.hasPrefix(Endpoint.udpPrefix) { return "udp" }
            if client.hasPrefix(Endpoint.unixPrefix) || (listen?.hasPrefix(Endpoint.unixPrefix) ?? false) {
                return "unix"
            }
            return "tcp"
        }
    }

    /// `GET /api/sessions`.
    struct SessionPage: Encodable {
        var total: Int
        var offset: Int
        var limit: Int
        var sessions: [Session]
    }

    /// An event of `GET /api/sessions/{id}/events`.
    struct Event: Encodable {
        var seq: Int64
        var offsetNanoseconds: Int64
        var direction: String
        var kind: String
        var size: Int
        var streamOffset: Int64
        var payload: Data?
        var truncated: Bool
        var marks: [SpanMark]

        enum CodingKeys: String, CodingKey {
            case seq, direction, kind, size, payload, truncated, marks
            case offsetNanoseconds = "offset_ns"
            case streamOffset = "stream_offset"
        }
    }

    /// `GET /api/sessions/{id}/events`.
    struct EventPage: Encodable {
        var session: Int64
        var total: Int64
        var next: Nullable<Int64>
        var events: [Event]
    }

    /// `GET /api/sessions/{id}/stream`.
    struct Stream: Encodable {
        var session: Int64
        var direction: String
        var total: Int
        var payload: Data
        var truncated: Bool
        var boundaries: [Int]
        var marks: [SpanMark]
    }

    /// A mismatch of `GET /api/mismatches`.
    struct Mismatch: Encodable {
        var index: Int
        var mismatch: ReplayReport.Mismatch

        private enum CodingKeys: String, CodingKey {
            case index
        }

        func encode(to encoder: any Encoder) throws {
            try mismatch.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
        }
    }

    /// `GET /api/mismatches`.
    struct Mismatches: Encodable {
        var report: Bool
        var summary: String?
        var mismatches: [Mismatch]
    }
}

/// An optional written as JSON `null` when absent, where synthesized encoding would leave the key out: fields
/// whose absence a reader should not have to tell from a typo.
struct Nullable<Wrapped: Encodable & Sendable>: Encodable, Sendable {
    var value: Wrapped?

    init(_ value: Wrapped?) {
        self.value = value
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
}
