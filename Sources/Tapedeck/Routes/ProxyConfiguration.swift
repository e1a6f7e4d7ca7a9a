import Foundation
import Yams

/// The routes a proxy serves, as read from a YAML or JSON file.
///
/// ```yaml
/// routes:
///   - name: postgres
///     listen: 127.0.0.1:15432
///     upstream: 127.0.0.1:5432
///   - name: redis
///     listen: unix:/tmp/redis-proxy.sock
///     upstream: 127.0.0.1:6379
///     connect_timeout: 2s
/// ```
///
/// A file whose name ends in `.json` is read as JSON with the same fields; anything else is read as YAML.
public struct ProxyConfiguration: Sendable, Hashable {
    /// The routes, in the order the file lists them.
    public var routes: [Route]
    /// How old a replayed session may be and what replay does about older ones: the file's top-level `max_age`
    /// and `on_expired` keys; `nil` without `max_age`.
    public var expiry: TapeExpiry?

    /// Creates a configuration from routes, checking that their names are usable and unique.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidConfiguration` on an empty list, a bad or repeated name.
    public init(routes: [Route]) throws {
        guard !routes.isEmpty else {
            throw TapedeckError(.invalidConfiguration, "no routes: give at least one route")
        }
        var seen = Set<String>()
        for route in routes {
            guard Self.isValidName(route.name) else {
                throw TapedeckError(
                    .invalidConfiguration,
                    "invalid route name '\(route.name)': use letters, digits, '-', '_' or '.'"
                )
            }
            guard seen.insert(route.name).inserted else {
                throw TapedeckError(.invalidConfiguration, "route name '\(route.name)' is used twice")
            }
            // A zero timeout fails every connect, and port 0 is no upstream: either would reset every client.
            guard route.connectTimeout > .zero else {
                throw TapedeckError(
                    .invalidConfiguration,
                    "route '\(route.name)': the connect timeout must be more than 0, as 5s"
                )
            }
            if let upstream = route.upstream, upstream.isDatagram != route.listen.isDatagram {
                let (udp, stream) = route.listen.isDatagram ? (route.listen, upstream) : (upstream, route.listen)
                throw TapedeckError(
                    .invalidConfiguration,
                    "route '\(route.name)': \(udp) carries datagrams but \(stream) a stream; give both as udp:HOST:PORT "
                        + "or neither"
                )
            }
            if route.isDatagram, route.tls.mode != .off {
                throw TapedeckError(
                    .invalidConfiguration,
                    "route '\(route.name)': TLS runs over streams, not UDP; drop the TLS settings of this route"
                )
            }
            if route.isDatagram, route.udpIdleTimeout <= .zero {
                throw TapedeckError(
                    .invalidConfiguration,
                    "route '\(route.name)': the UDP idle timeout must be more than 0, as 30s"
                )
            }
            if let upstream = route.upstream, upstream.port == 0 {
                throw TapedeckError(
                    .invalidConfiguration,
                    "route '\(route.name)': upstream \(upstream) has port 0; give the port the upstream listens on"
                )
            }
        }
        self.routes = routes
    }

    /// Reads a configuration file.
    ///
    /// - Parameters:
    ///   - path: The file to read; `.json` files are JSON, all others YAML.
    ///   - defaultConnectTimeout: The connect timeout for routes that do not set one.
    ///   - defaultUDPIdleTimeout: The UDP idle timeout for routes that do not set one.
    ///   - dns: Whether every route carries DNS (`--dns`), whatever its `dns` key says.
    ///   - lens: The protocol lens of routes without a `protocol` key (`--protocol`).
    ///   - requireUpstream: Whether every route must name an upstream: the mode's ``TapedeckMode/needsUpstream``;
    ///     replay can do without.
    /// - Throws: ``TapedeckError`` with code `invalidConfiguration` and a one-line message naming the file.
    public static func load(
        path: String,
        defaultConnectTimeout: Duration = Route.defaultConnectTimeout,
        defaultUDPIdleTimeout: Duration = Route.defaultUDPIdleTimeout,
        dns: Bool = false,
        lens: ProtocolLens = .auto,
        requireUpstream: Bool = true
    ) throws -> ProxyConfiguration {
        let data: Data
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw TapedeckError(.invalidConfiguration, "cannot read config '\(path)': it is a directory, not a file")
        }
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TapedeckError(.invalidConfiguration, "cannot read config '\(path)': \(Self.reason(error))")
        }
        return try parse(
            data,
            path: path,
            defaultConnectTimeout: defaultConnectTimeout,
            defaultUDPIdleTimeout: defaultUDPIdleTimeout,
            dns: dns,
            lens: lens,
            requireUpstream: requireUpstream
        )
    }

    /// Parses configuration text; `path` decides the format and names the file in errors.
    static func parse(
        _ data: Data,
        path: String,
        defaultConnectTimeout: Duration = Route.defaultConnectTimeout,
        defaultUDPIdleTimeout: Duration = Route.defaultUDPIdleTimeout,
        dns: Bool = false,
        lens: ProtocolLens = .auto,
        requireUpstream: Bool = true
    ) throws -> ProxyConfiguration {
        func invalid(_ why: String) -> TapedeckError {
            TapedeckError(.invalidConfiguration, "invalid config '\(path)': \(why)")
        }
        let file: FileFormat
        do {
            if path.lowercased().hasSuffix(".json") {
                file = try JSONDecoder().decode(FileFormat.self, from: data)
            } else {
                guard let text = String(data: data, encoding: .utf8) else {
                    throw TapedeckError(.invalidConfiguration, "not UTF-8 text")
                }
                file = try YAMLDecoder().decode(FileFormat.self, from: text)
            }
        } catch let error as TapedeckError {
            throw invalid(error.message)
        } catch {
            throw invalid(Self.reason(error))
        }
        guard let entries = file.routes, !entries.isEmpty else { throw invalid("no routes: add a 'routes:' list") }
        var routes: [Route] = []
        for (index, entry) in entries.enumerated() {
            let label = entry.name.map { "route '\($0)'" } ?? "route \(index + 1)"
            if requireUpstream, entry.upstream == nil { throw invalid("\(label) has no 'upstream'") }
            do {
                let timeout = try entry.connectTimeout.map(DurationText.parse) ?? defaultConnectTimeout
                let idle = try entry.udpIdleTimeout.map(DurationText.parse) ?? defaultUDPIdleTimeout
                routes.append(
                    Route(
                        name: entry.name ?? (entries.count == 1 ? Route.defaultName : "route\(index + 1)"),
                        listen: try entry.listen.map(Endpoint.init(parsing:)) ?? Route.defaultListen,
                        upstream: try entry.upstream.map(Endpoint.init(parsing:)),
                        connectTimeout: timeout,
                        rules: try (entry.rules ?? []).enumerated().flatMap { position, rule in
                            do {
                                return try RuleList.fromEntry(rule)
                            } catch let error as TapedeckError {
                                throw TapedeckError(.invalidConfiguration, "rule \(position + 1): \(error.message)")
                            }
                        }.uniqued(),
                        tls: try entry.tlsSettings(),
                        dns: dns || (entry.dns ?? false),
                        udpIdleTimeout: idle,
                        lens: try entry.protocolName.map(ProtocolLens.init(parsing:)) ?? lens
                    )
                )
            } catch let error as TapedeckError {
                throw invalid("\(label): \(error.message)")
            }
        }
        do {
            var configuration = try ProxyConfiguration(routes: routes)
            configuration.expiry = try file.expiry()
            return configuration
        } catch let error as TapedeckError {
            throw invalid(error.message)
        }
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.unicodeScalars.allSatisfy {
                $0.isASCII
                    && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0))
            }
    }

    /// A one-line reason for a decoding or file error; Foundation and Yams messages can span lines.
    static func reason(_ error: any Error) -> String {
        let text: String
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.keyNotFound(_, let context), DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            let underlying = (context.underlyingError.map { "\($0)" } ?? context.debugDescription)
            text = path.isEmpty ? underlying : "\(path): \(context.debugDescription)"
        case let error as CocoaError where error.code == .fileReadNoSuchFile:
            text = "no such file"
        case let error as CocoaError where error.code == .fileReadNoPermission:
            text = "permission denied"
        case let error as CocoaError:
            // Foundation's description of a file error is a multi-line dump; the POSIX reason is the news.
            if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError,
                underlying.domain == NSPOSIXErrorDomain
            {
                text = String(cString: strerror(Int32(underlying.code))).lowercased()
            } else {
                text = "cannot read the file (\(error.code.rawValue))"
            }
        default:
            text = "\(error)"
        }
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// The file's shape; every field optional so that a missing one gets a clear message of ours, and unknown
    /// keys refused so that a typo (`upstrem`) is not silently ignored.
    private struct FileFormat: Decodable {
        struct RouteEntry: Decodable {
            var name: String?
            var listen: String?
            var upstream: String?
            var connectTimeout: String?
            var rules: [[String: String]]?
            var tls: String?
            var upstreamCA: String?
            var insecureUpstream: Bool?
            var certificate: String?
            var key: String?
            var dns: Bool?
            var udpIdleTimeout: String?
            /// The `protocol` key: a lens name (see ``ProtocolLens``).
            var protocolName: String?

            /// The entry's TLS keys as settings.
            func tlsSettings() throws -> TLSSettings {
                let mode: TLSSettings.Mode? = try tls.map {
                    try FileFormat.choice(
                        $0,
                        key: "tls",
                        is: "a mode",
                        expected: "off, intercept, terminate or originate"
                    )
                }
                return TLSSettings(
                    mode: mode ?? .off,
                    upstreamCA: upstreamCA,
                    insecureUpstream: insecureUpstream ?? false,
                    certificate: certificate,
                    key: key
                )
            }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: AnyKey.self)
                try AnyKey.refuseUnknown(
                    in: container,
                    known: [
                        "name", "listen", "upstream", "connect_timeout", "rules", "tls", "upstream_ca",
                        "insecure_upstream", "cert", "key", "dns", "udp_idle_timeout", "protocol",
                    ]
                )
                protocolName = try container.decodeIfPresent(String.self, forKey: AnyKey("protocol"))
                dns = try container.decodeIfPresent(Bool.self, forKey: AnyKey("dns"))
                let idleKey = AnyKey("udp_idle_timeout")
                if let seconds = try? container.decodeIfPresent(Double.self, forKey: idleKey) {
                    udpIdleTimeout = String(seconds)
                } else {
                    udpIdleTimeout = try container.decodeIfPresent(String.self, forKey: idleKey)
                }
                tls = try container.decodeIfPresent(String.self, forKey: AnyKey("tls"))
                upstreamCA = try container.decodeIfPresent(String.self, forKey: AnyKey("upstream_ca"))
                insecureUpstream = try container.decodeIfPresent(Bool.self, forKey: AnyKey("insecure_upstream"))
                certificate = try container.decodeIfPresent(String.self, forKey: AnyKey("cert"))
                key = try container.decodeIfPresent(String.self, forKey: AnyKey("key"))
                rules = try container.decodeIfPresent([[String: String]].self, forKey: AnyKey("rules"))
                name = try container.decodeIfPresent(String.self, forKey: AnyKey("name"))
                listen = try container.decodeIfPresent(String.self, forKey: AnyKey("listen"))
                upstream = try container.decodeIfPresent(String.self, forKey: AnyKey("upstream"))
                let timeoutKey = AnyKey("connect_timeout")
                if let seconds = try? container.decodeIfPresent(Double.self, forKey: timeoutKey) {
                    connectTimeout = String(seconds)
                } else {
                    connectTimeout = try container.decodeIfPresent(String.self, forKey: timeoutKey)
                }
            }
        }

        var routes: [RouteEntry]?
        var maxAge: String?
        var onExpired: String?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            try AnyKey.refuseUnknown(in: container, known: ["routes", "max_age", "on_expired"])
            routes = try container.decodeIfPresent([RouteEntry].self, forKey: AnyKey("routes"))
            maxAge = try container.decodeIfPresent(String.self, forKey: AnyKey("max_age"))
            onExpired = try container.decodeIfPresent(String.self, forKey: AnyKey("on_expired"))
        }

        /// `text` as the value of `Choice` it names, or the error that says which key, what it is not, and what
        /// it expects.
        static func choice<Choice: RawRepresentable<String>>(
            _ text: String,
            key: String,
            is noun: String,
            expected: String
        ) throws -> Choice {
            guard let value = Choice(rawValue: text) else {
                throw TapedeckError(.invalidConfiguration, "\(key): '\(text)' is not \(noun) (expected \(expected))")
            }
            return value
        }

        /// The expiry policy the top-level keys give: `max_age`, and `on_expired` (warn by default).
        func expiry() throws -> TapeExpiry? {
            let action: TapeExpiry.Action? = try onExpired.map {
                try Self.choice($0, key: "on_expired", is: "an action", expected: "warn, fail or record")
            }
            guard let maxAge else {
                if action != nil {
                    throw TapedeckError(.invalidConfiguration, "on_expired needs max_age, as max_age: 30d")
                }
                return nil
            }
            let age: Duration
            do {
                age = try DurationText.parse(maxAge)
            } catch let error as TapedeckError {
                throw TapedeckError(.invalidConfiguration, "max_age: \(error.message)")
            }
            guard age > .zero else { throw TapedeckError(.invalidConfiguration, "max_age must be more than 0, as 30d") }
            return TapeExpiry(maxAge: age, action: action ?? .warn)
        }
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }

        static func refuseUnknown(in container: KeyedDecodingContainer<AnyKey>, known: Set<String>) throws {
            if let unknown = container.allKeys.first(where: { !known.contains($0.stringValue) }) {
                throw TapedeckError(
                    .invalidConfiguration,
                    "unknown key '\(unknown.stringValue)' (expected one of: \(known.sorted().joined(separator: ", ")))"
                )
            }
        }
    }
}
