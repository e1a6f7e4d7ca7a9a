import Foundation

/// A proxy as a request gives it (`POST /proxies`, `POST /populate`, `POST /proxies/{name}`): Toxiproxy's fields,
/// checked one by one so that a bad request says which field is wrong.
struct ProxySpec: Sendable, Decodable {
    /// The fields a proxy has; `toxics` is accepted and ignored, as Toxiproxy does (its Go client sends it).
    static let fields = ["name", "listen", "upstream", "enabled", "toxics"]

    var name: String?
    var listen: String?
    var upstream: String?
    var enabled: Bool?

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Reads the fields, refusing any other, so that a misspelt `upstraem` is an error rather than ignored.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys.map(\.stringValue).sorted() where !Self.fields.contains(key) {
            throw ControlError(
                .badRequest,
                "bad request body: unknown field '\(key)' (fields: \(Self.fields.dropLast().joined(separator: ", ")))"
            )
        }
        func read<T: Decodable>(_ type: T.Type, _ key: String, _ kind: String) throws -> T? {
            do {
                return try container.decodeIfPresent(type, forKey: Key(key))
            } catch {
                throw ControlError(.badRequest, "bad request body: field '\(key)' must be \(kind)")
            }
        }
        name = try read(String.self, "name", "a string")
        listen = try read(String.self, "listen", "a string")
        upstream = try read(String.self, "upstream", "a string")
        enabled = try read(Bool.self, "enabled", "true or false")
    }

    /// Reads a proxy from a request's JSON.
    ///
    /// - Parameter requireAll: Whether `name` and `upstream` must be given (creating), or not (updating).
    /// - Throws: ``ControlError`` (400) for an unknown field, a field of the wrong type, or a missing one.
    static func parse(_ data: Data, requireAll: Bool) throws -> ProxySpec {
        guard try ControlAPI.parseJSON(data) is [String: Any] else {
            throw ControlError(.badRequest, "bad request body: expected a JSON object")
        }
        let spec: ProxySpec
        do {
            spec = try JSONDecoder().decode(ProxySpec.self, from: data)
        } catch let error as ControlError {
            throw error
        } catch {
            throw ControlError(.badRequest, "bad request body: \(ProxyConfiguration.reason(error))")
        }
        if requireAll {
            guard let name = spec.name, !name.isEmpty else {
                throw ControlError(.badRequest, "missing required field: name")
            }
            guard let upstream = spec.upstream, !upstream.isEmpty else {
                throw ControlError(.badRequest, "missing required field: upstream")
            }
        }
        return spec
    }

    /// The route this proxy is: listening on loopback, any free port, unless `listen` says otherwise.
    ///
    /// - Throws: ``ControlError`` (400) for a bad name or address.
    func route() throws -> Route {
        let listenText = listen.flatMap { $0.isEmpty ? nil : $0 }
        let route = Route(
            name: name ?? "",
            listen: try listenText.map(ControlAPI.parseAddress) ?? Route.defaultListen,
            upstream: try upstream.map(ControlAPI.parseAddress)
        )
        do {
            _ = try ProxyConfiguration(routes: [route])
        } catch let error as TapedeckError {
            throw ControlError(.badRequest, error.message)
        }
        return route
    }
}
