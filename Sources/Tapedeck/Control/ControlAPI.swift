import Foundation
import Hummingbird

/// The control API: Toxiproxy's REST API over a deck's routes, so that Toxiproxy's client libraries drive
/// Tapedeck unchanged, and Tapedeck's own endpoints under `/tapedeck/`.
///
/// Every route is a Toxiproxy "proxy" named after it. The endpoints, fields, status codes and error bodies
/// (`{"error": "proxy not found: redis", "status": 404}`) are Toxiproxy's; `docs/api/openapi.yaml` describes them.
///
/// ```swift
/// let app = Application(router: ControlAPI.router(for: plane))
/// try await app.test(.router) { client in
///     try await client.execute(uri: "/proxies", method: .get) { #expect($0.status == .ok) }
/// }
/// ```
public enum ControlAPI {
    /// The URL of the API served on `address`: `http://127.0.0.1:8474`, or `unix:/path` for a Unix socket.
    public static func url(of address: Endpoint) -> String {
        switch address {
        case .tcp, .udp: return "http://\(Endpoint.tcp(host: address.host ?? "", port: address.port ?? 0))"
        case .unix: return "\(address)"
        }
    }

    /// The most a request body may hold.
    static let bodyLimit = 1 << 20

    /// The API's router over `plane`'s routes.
    public static func router(for plane: ControlPlane) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ErrorShapeMiddleware())
        addToxiproxyRoutes(to: router, plane: plane)
        addTapedeckRoutes(to: router, plane: plane)
        return router
    }

    // MARK: Toxiproxy's endpoints

    private static func addToxiproxyRoutes(to router: Router<BasicRequestContext>, plane: ControlPlane) {
        router.get("/version") { _, _ in
            try json(["version": tapedeckVersion], contentType: "application/json;charset=utf-8")
        }
        router.post("/reset") { _, _ in
            try await plane.reset()
            return Response(status: .noContent)
        }
        router.get("/proxies") { _, _ in
            var byName: [String: ProxyState] = [:]
            for proxy in await plane.proxies() { byName[proxy.name] = proxy }
            return try json(byName)
        }
        router.post("/proxies") { request, _ in
            let spec = try ProxySpec.parse(try await body(request), requireAll: true)
            return try json(try await plane.create(try spec.route(), enabled: spec.enabled ?? true), status: .created)
        }
        router.post("/populate") { request, _ in
            let specs = try await populateSpecs(request)
            let routes = try specs.map { (route: try $0.route(), enabled: $0.enabled ?? true) }
            let (proxies, error) = await plane.populate(routes)
            guard let error else { return try json(["proxies": proxies], status: .created) }
            return try json(
                PopulateFailure(error: error.message, status: error.status, proxies: proxies),
                status: .init(code: error.status)
            )
        }
        router.get("/proxies/{proxy}") { _, context in
            try json(try await plane.proxy(named: try context.parameters.require("proxy")))
        }
        router.on("/proxies/{proxy}", method: .post, use: updateProxy(plane))
        router.on("/proxies/{proxy}", method: .patch, use: updateProxy(plane))
        router.delete("/proxies/{proxy}") { _, context in
            try await plane.delete(try context.parameters.require("proxy"))
            return Response(status: .noContent)
        }
        router.get("/proxies/{proxy}/toxics") { _, context in
            try json(try await plane.faults(of: try context.parameters.require("proxy")).toxics)
        }
        router.post("/proxies/{proxy}/toxics") { request, context in
            let name = try context.parameters.require("proxy")
            let faults = try await plane.faults(of: name)
            let toxic = try decodeToxic(try await body(request))
            do {
                try faults.add(toxic)
            } catch {
                throw ControlError.from(error)
            }
            // A `down` toxic takes the route down before the answer, not some time after.
            await plane.refresh(name)
            return try json(toxic)
        }
        router.get("/proxies/{proxy}/toxics/{toxic}") { _, context in
            let faults = try await plane.faults(of: try context.parameters.require("proxy"))
            let name = try context.parameters.require("toxic")
            guard let toxic = faults.toxics.first(where: { $0.name == name }) else {
                throw ControlError.from(RouteFaults.ChangeError.notFound(name))
            }
            return try json(toxic)
        }
        router.on("/proxies/{proxy}/toxics/{toxic}", method: .post, use: updateToxic(plane))
        router.on("/proxies/{proxy}/toxics/{toxic}", method: .patch, use: updateToxic(plane))
        router.delete("/proxies/{proxy}/toxics/{toxic}") { _, context in
            let name = try context.parameters.require("proxy")
            do {
                try await plane.faults(of: name).remove(try context.parameters.require("toxic"))
            } catch let error as RouteFaults.ChangeError {
                throw ControlError.from(error)
            }
            await plane.refresh(name)
            return Response(status: .noContent)
        }
    }

    private static func updateProxy(
        _ plane: ControlPlane
    ) -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { request, context in
            let name = try context.parameters.require("proxy")
            // 404 before the body is looked at, as in Toxiproxy.
            _ = try await plane.proxy(named: name)
            let spec = try ProxySpec.parse(try await body(request), requireAll: false)
            return try json(
                try await plane.update(
                    name,
                    listen: try spec.listen.map(parseAddress),
                    upstream: try spec.upstream.map(parseAddress),
                    enabled: spec.enabled
                )
            )
        }
    }

    private static func updateToxic(
        _ plane: ControlPlane
    ) -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { request, context in
            let name = try context.parameters.require("proxy")
            let faults = try await plane.faults(of: name)
            let toxicName = try context.parameters.require("toxic")
            guard let current = faults.toxics.first(where: { $0.name == toxicName }) else {
                throw ControlError.from(RouteFaults.ChangeError.notFound(toxicName))
            }
            let changed = try ToxicUpdate.apply(try await object(request), to: current)
            let updated: Toxic
            do {
                updated = try faults.update(toxicName) { $0 = changed }
            } catch {
                throw ControlError.from(error)
            }
            await plane.refresh(name)
            return try json(updated)
        }
    }

    // MARK: Tapedeck's endpoints

    private static func addTapedeckRoutes(to router: Router<BasicRequestContext>, plane: ControlPlane) {
        router.get("/tapedeck/mode") { _, _ in
            let modes = plane.routeModes.mapValues(\.rawValue)
            return try json(DeckModes(mode: plane.settings.mode.rawValue, routes: modes))
        }
        router.get("/tapedeck/sessions") { _, _ in
            do {
                return try json(["routes": try await plane.sessions()])
            } catch {
                throw ControlError.from(error)
            }
        }
        router.get("/tapedeck/report") { _, _ in
            let report = await plane.replayReport() ?? ReplayReport()
            var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any] ?? [:]
            let log = plane.settings.faults.log
            object["faults"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(log.fired))
            object["faults_total"] = log.total
            return try jsonObject(object)
        }
        router.post("/tapedeck/routes/{name}/mode") { request, context in
            let name = try context.parameters.require("name")
            let object = try await object(request)
            if let unknown = object.keys.first(where: { $0 != "mode" }) {
                throw ControlError(.badRequest, "bad request body: unknown field '\(unknown)' (fields: mode)")
            }
            guard let text = object["mode"] as? String else {
                throw ControlError(.badRequest, "missing required field: mode (record, replay or proxy)")
            }
            guard let mode = try? TapedeckMode(parsing: text), mode != .auto else {
                throw ControlError(.badRequest, "invalid mode '\(text)': use record, replay, record-missing or proxy")
            }
            let proxy = try await plane.setMode(name, mode)
            return try json(RouteMode(name: proxy.name, mode: mode.rawValue, listen: proxy.listen))
        }
    }

    // MARK: Reading requests

    /// The request's body, whole.
    static func body(_ request: Request) async throws -> Data {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: bodyLimit)
        } catch {
            throw ControlError(.badRequest, "bad request body: larger than \(bodyLimit) bytes")
        }
        return Data(buffer.readableBytesView)
    }

    /// The request's body as a JSON object.
    ///
    /// - Throws: ``ControlError`` (400) for a body that is not one.
    static func object(_ request: Request) async throws -> [String: Any] {
        let data = try await body(request)
        guard let object = try parseJSON(data) as? [String: Any] else {
            throw ControlError(.badRequest, "bad request body: expected a JSON object")
        }
        return object
    }

    static func parseJSON(_ data: Data) throws -> Any {
        guard !data.isEmpty else { throw ControlError(.badRequest, "bad request body: empty, expected JSON") }
        do {
            return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw ControlError(.badRequest, "bad request body: not valid JSON")
        }
    }

    /// `POST /populate`'s body: an array of proxies (Toxiproxy's), or `{"proxies": [...]}`.
    private static func populateSpecs(_ request: Request) async throws -> [ProxySpec] {
        let parsed = try parseJSON(try await body(request))
        let list: [Any]
        if let array = parsed as? [Any] {
            list = array
        } else if let object = parsed as? [String: Any], object.count == 1, let array = object["proxies"] as? [Any] {
            list = array
        } else {
            throw ControlError(.badRequest, "bad request body: expected an array of proxies")
        }
        var specs: [ProxySpec] = []
        // Every proxy is checked before any is created, as in Toxiproxy.
        for (index, item) in list.enumerated() {
            do {
                let data = try JSONSerialization.data(withJSONObject: item, options: [.fragmentsAllowed])
                specs.append(try ProxySpec.parse(data, requireAll: true))
            } catch let error as ControlError {
                throw ControlError(error.kind, "\(error.message) at proxy \(index + 1)")
            }
        }
        return specs
    }

    static func decodeToxic(_ data: Data) throws -> Toxic {
        _ = try parseJSON(data)
        do {
            return try JSONDecoder().decode(Toxic.self, from: data)
        } catch {
            throw ControlError(.badRequest, "bad request body: \(ProxyConfiguration.reason(error))")
        }
    }

    static func parseAddress(_ text: String) throws -> Endpoint {
        do {
            return try Endpoint(parsing: text)
        } catch let error as TapedeckError {
            throw ControlError(.badRequest, error.message)
        }
    }

    // MARK: Writing responses

    static func json(
        _ value: some Encodable,
        status: HTTPResponse.Status = .ok,
        contentType: String = "application/json"
    ) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Response(
            status: status,
            headers: [.contentType: contentType],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value)))
        )
    }

    static func jsonObject(_ object: [String: Any], status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    private struct PopulateFailure: Encodable {
        var error: String
        var status: Int
        var proxies: [ProxyState]
    }

    private struct DeckModes: Encodable {
        var mode: String
        var routes: [String: String]
    }

    private struct RouteMode: Encodable {
        var name: String
        var mode: String
        var listen: String
    }
}
