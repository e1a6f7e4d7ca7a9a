/// One fault on a route's traffic, in Toxiproxy's shape: a named `type` acting on one `stream` (direction) of
/// a share (`toxicity`) of the connections, with its `attributes`, plus Tapedeck's ``ToxicPlacement``.
///
/// It encodes and decodes as Toxiproxy's JSON, so its clients read and write it unchanged:
///
/// ```json
/// {"name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1,
///  "attributes": {"latency": 100, "jitter": 10}}
/// ```
///
/// The placement fields (`session`, `exchange`, `offset`, `match`, `match_regex`, `count`, `recorded_session`) go
/// in `attributes` too, where a Toxiproxy client passes whatever it is given; fault files may also give them, and
/// the attributes, beside `type`.
public struct Toxic: Sendable, Hashable {
    /// The toxic's name, unique on its route; defaults to `TYPE_STREAM`, as in Toxiproxy.
    public var name: String
    /// What it does.
    public var kind: ToxicKind
    /// Which way the bytes it acts on flow.
    public var stream: ToxicStream
    /// The share of connections (or, on UDP routes, flows) it acts on, from 0 to 1, drawn per connection from
    /// the deck's seeded random source.
    public var toxicity: Double
    /// Its settings.
    public var attributes: ToxicAttributes
    /// Where and when it acts.
    public var placement: ToxicPlacement

    /// Creates a toxic.
    ///
    /// - Parameters:
    ///   - name: Its name; `nil` for `TYPE_STREAM`.
    ///   - kind: What it does.
    ///   - stream: Which way the bytes it acts on flow; downstream by default, as in Toxiproxy.
    ///   - toxicity: The share of connections it acts on; all by default.
    ///   - attributes: Its settings.
    ///   - placement: Where and when it acts; everywhere by default.
    public init(
        name: String? = nil,
        kind: ToxicKind,
        stream: ToxicStream = .downstream,
        toxicity: Double = 1,
        attributes: ToxicAttributes = ToxicAttributes(),
        placement: ToxicPlacement = ToxicPlacement()
    ) {
        self.name = name ?? "\(kind.rawValue)_\(stream.rawValue)"
        self.kind = kind
        self.stream = stream
        self.toxicity = toxicity
        self.attributes = attributes
        self.placement = placement
    }

    /// Checks the whole toxic: a usable name, a toxicity from 0 to 1, and its attributes and placement.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument` naming what is wrong.
    public func validate() throws {
        guard !name.isEmpty, TerminalText.firstControlCharacter(in: name) == nil, !name.contains("/") else {
            throw TapedeckError(.invalidArgument, "invalid toxic name '\(name)': use printable text without '/'")
        }
        guard toxicity >= 0, toxicity <= 1 else {
            throw TapedeckError(.invalidArgument, "toxic '\(name)': toxicity is a share from 0 to 1, not \(toxicity)")
        }
        do {
            try attributes.validate(for: kind)
            try placement.validate()
        } catch let error as TapedeckError {
            throw TapedeckError(.invalidArgument, "toxic '\(name)': \(error.message)")
        }
    }
}

// MARK: Toxiproxy's JSON

extension Toxic: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private static let topLevelNames: Set<String> = ["name", "type", "stream", "toxicity", "attributes"]

    /// Decodes Toxiproxy's JSON (or the same in YAML), with Tapedeck's fields in `attributes` or beside `type`.
    ///
    /// A field no toxic of the type has is an error naming it, so that a misspelt `latncy` is not silently 0.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let typeName = try container.decode(String.self, forKey: Key("type"))
        guard let kind = ToxicKind(rawValue: typeName) else {
            throw DecodingError.dataCorruptedError(
                forKey: Key("type"),
                in: container,
                debugDescription:
                    "unknown toxic type '\(typeName)' (types: \(ToxicKind.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        var stream = ToxicStream.downstream
        if let streamName = try container.decodeIfPresent(String.self, forKey: Key("stream")) {
            guard let parsed = ToxicStream(rawValue: streamName) else {
                throw DecodingError.dataCorruptedError(
                    forKey: Key("stream"),
                    in: container,
                    debugDescription: "unknown stream '\(streamName)': use upstream or downstream"
                )
            }
            stream = parsed
        }
        let name = try container.decodeIfPresent(String.self, forKey: Key("name")).flatMap { $0.isEmpty ? nil : $0 }
        let toxicity = try container.decodeIfPresent(Double.self, forKey: Key("toxicity")) ?? 1
        var attributes = ToxicAttributes()
        var placement = ToxicPlacement()
        let fields = Set(ToxicAttributes.fields(for: kind))
        func read(_ container: KeyedDecodingContainer<Key>, skipping skipped: Set<String>) throws {
            for key in container.allKeys where !skipped.contains(key.stringValue) {
                let field = key.stringValue
                if ToxicPlacement.fieldNames.contains(field) {
                    try Self.decodePlacement(field, from: container, key: key, into: &placement)
                } else if fields.contains(field) {
                    _ = attributes.set(field, to: try container.decode(Double.self, forKey: key))
                } else {
                    let known = (fields.sorted() + ToxicPlacement.fieldNames.sorted()).joined(separator: ", ")
                    throw DecodingError.dataCorruptedError(
                        forKey: key,
                        in: container,
                        debugDescription: "a \(kind.rawValue) toxic has no field '\(field)' (fields: \(known))"
                    )
                }
            }
        }
        if container.contains(Key("attributes")), try !container.decodeNil(forKey: Key("attributes")) {
            try read(try container.nestedContainer(keyedBy: Key.self, forKey: Key("attributes")), skipping: [])
        }
        // Fault files may put attributes and placement beside `type`; `route` there picks the route.
        try read(container, skipping: Self.topLevelNames.union(["route", "proxy"]))
        self.init(
            name: name,
            kind: kind,
            stream: stream,
            toxicity: toxicity,
            attributes: attributes,
            placement: placement
        )
    }

    private static func decodePlacement(
        _ field: String,
        from container: KeyedDecodingContainer<Key>,
        key: Key,
        into placement: inout ToxicPlacement
    ) throws {
        func whole() throws -> Int {
            let value = try container.decode(Double.self, forKey: key)
            guard value.rounded() == value, abs(value) < 1e15 else {
                throw DecodingError.dataCorruptedError(
                    forKey: key,
                    in: container,
                    debugDescription: "'\(field)' must be a whole number, not \(value)"
                )
            }
            return Int(value)
        }
        switch field {
        case "session": placement.session = try whole()
        case "recorded_session": placement.recordedSession = Int64(try whole())
        case "exchange": placement.exchange = try whole()
        case "offset": placement.offset = try whole()
        case "count": placement.count = try whole()
        case "match": placement.match = Array(try container.decode(String.self, forKey: key).utf8)
        case "match_regex": placement.matchRegex = try container.decode(String.self, forKey: key)
        default: break
        }
    }

    /// Encodes Toxiproxy's JSON: the kind's attributes, and the placement fields that are set, in `attributes`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(name, forKey: Key("name"))
        try container.encode(kind.rawValue, forKey: Key("type"))
        try container.encode(stream.rawValue, forKey: Key("stream"))
        try container.encode(toxicity, forKey: Key("toxicity"))
        var nested = container.nestedContainer(keyedBy: Key.self, forKey: Key("attributes"))
        for field in ToxicAttributes.fields(for: kind) {
            let value = attributes.value(of: field) ?? 0
            if field == "probability" || field == "correlation" {
                try nested.encode(value, forKey: Key(field))
            } else {
                try nested.encode(Int(value), forKey: Key(field))
            }
        }
        if let session = placement.session { try nested.encode(session, forKey: Key("session")) }
        if let recorded = placement.recordedSession { try nested.encode(recorded, forKey: Key("recorded_session")) }
        if let exchange = placement.exchange { try nested.encode(exchange, forKey: Key("exchange")) }
        if let offset = placement.offset { try nested.encode(offset, forKey: Key("offset")) }
        if let match = placement.match {
            try nested.encode(String(decoding: match, as: UTF8.self), forKey: Key("match"))
        }
        if let regex = placement.matchRegex { try nested.encode(regex, forKey: Key("match_regex")) }
        if let count = placement.count { try nested.encode(count, forKey: Key("count")) }
    }
}
