import Foundation
import HTTPTypes
import Hummingbird
import NIOPosix

/// The web inspector's HTTP routes: its page for every page URL, the page's files under `/assets/`, and the JSON
/// API under `/api/` that the page uses and scripts can too (see `docs/web.md`). Everything is read-only.
///
/// Reading the tape blocks, so every API call runs on NIO's thread pool rather than on an event loop or in the
/// cooperative pool.
enum InspectorAPI {
    /// The router over `inspector`'s tape, serving `assets`; with `loopbackOnly`, for an inspector listening on
    /// loopback, only requests naming a loopback host are answered (see ``LoopbackHostMiddleware``).
    static func router(
        for inspector: TapeInspector,
        assets: InspectorAssets,
        loopbackOnly: Bool = true
    ) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ErrorShapeMiddleware())
        if loopbackOnly { router.add(middleware: LoopbackHostMiddleware()) }
        addPages(to: router, assets: assets)
        addSessionRoutes(to: router, inspector: inspector)
        addReportRoutes(to: router, inspector: inspector)
        return router
    }

    // MARK: The page

    private static func addPages(to router: Router<BasicRequestContext>, assets: InspectorAssets) {
        // One page for every URL a user may paste: the page reads the path and shows what it names.
        let page: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            try asset("index.html", from: assets)
        }
        for path in ["/", "/sessions/{id}", "/mismatches", "/mismatches/{n}"] {
            router.get(RouterPath(path), use: page)
        }
        router.get("/assets/{file}") { _, context in
            try asset(try context.parameters.require("file"), from: assets)
        }
    }

    private static func asset(_ name: String, from assets: InspectorAssets) throws -> Response {
        guard let file = assets.file(name) else { throw ControlError(.notFound, "no file \(name)") }
        return Response(
            status: .ok,
            headers: [.contentType: file.contentType, .cacheControl: "no-cache"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: file.contents))
        )
    }

    // MARK: Sessions

    private static func addSessionRoutes(to router: Router<BasicRequestContext>, inspector: TapeInspector) {
        router.get("/api/info") { _, _ in
            try ControlAPI.json(try await offLoop { try inspector.info() })
        }
        router.get("/api/sessions") { request, _ in
            let parameters = try SessionListParameters(queryParameters(of: request))
            return try ControlAPI.json(try await offLoop { try inspector.sessions(parameters) })
        }
        router.get("/api/sessions/{id}") { _, context in
            let id = try sessionID(context)
            return try ControlAPI.json(try await offLoop { try inspector.session(id) })
        }
        router.get("/api/sessions/{id}/events") { request, context in
            let id = try sessionID(context)
            let parameters = queryParameters(of: request)
            // Events are numbered from 0: without `after`, the page starts at the first.
            let after = try SessionListParameters.integer(parameters, "after", in: -1...Int.max) ?? -1
            let limit = try SessionListParameters.integer(parameters, "limit", in: 1...TapeInspector.maximumEvents)
            let preview = try SessionListParameters.integer(parameters, "preview", in: 0...TapeInspector.maximumPreview)
            return try ControlAPI.json(
                try await offLoop {
                    try inspector.events(of: id, after: Int64(after), limit: limit ?? 1000, preview: preview ?? 4096)
                }
            )
        }
        router.get("/api/sessions/{id}/events/{seq}/payload") { _, context in
            let id = try sessionID(context)
            guard let seq = Int64(try context.parameters.require("seq")) else {
                throw ControlError(.badRequest, "invalid event number: use a whole number")
            }
            let payload = try await offLoop { try inspector.payload(of: id, seq: seq) }
            return Response(
                status: .ok,
                headers: [.contentType: "application/octet-stream"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: payload))
            )
        }
        router.get("/api/sessions/{id}/stream") { request, context in
            let id = try sessionID(context)
            let parameters = queryParameters(of: request)
            let directionName = parameters["direction"] ?? Direction.clientToUpstream.rawValue
            guard let direction = Direction(rawValue: directionName) else {
                throw ControlError(
                    .badRequest,
                    "invalid direction '\(directionName)': use client_to_upstream or upstream_to_client"
                )
            }
            let limit =
                try SessionListParameters.integer(parameters, "limit", in: 0...TapeInspector.maximumPreview)
                ?? TapeInspector.maximumPreview
            return try ControlAPI.json(
                try await offLoop { try inspector.stream(of: id, direction: direction, limit: limit) }
            )
        }
        for format in [TapeExporter.Format.pcapng, .jsonl] {
            router.get(RouterPath("/api/sessions/{id}/export.\(format.rawValue)")) { _, context in
                let id = try sessionID(context)
                let file = try await offLoop { try inspector.export(id, format: format) }
                return download(file, name: "session-\(id).\(format.rawValue)", format: format)
            }
        }
    }

    /// Streams an export's file in pieces, closing it at the end.
    private static func download(_ file: FileHandle, name: String, format: TapeExporter.Format) -> Response {
        let size = (try? file.seekToEnd()).map(Int.init)
        try? file.seek(toOffset: 0)
        let contentType = format == .pcapng ? "application/vnd.tcpdump.pcap" : "application/x-ndjson"
        var headers: HTTPFields = [.contentType: contentType, .contentDisposition: "attachment; filename=\"\(name)\""]
        if let size { headers[.contentLength] = "\(size)" }
        let body = ResponseBody { writer in
            defer { try? file.close() }
            while let chunk = try await offLoop({ try file.read(upToCount: 1 << 16) }), !chunk.isEmpty {
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    // MARK: The report

    private static func addReportRoutes(to router: Router<BasicRequestContext>, inspector: TapeInspector) {
        router.get("/api/mismatches") { _, _ in
            try ControlAPI.json(inspector.mismatches())
        }
        router.get("/api/mismatches/{n}") { _, context in
            guard let index = Int(try context.parameters.require("n")), index > 0 else {
                throw ControlError(.badRequest, "invalid mismatch number: use a whole number from 1")
            }
            return try ControlAPI.json(try await offLoop { try inspector.mismatch(index) })
        }
    }

    // MARK: Helpers

    private static func sessionID(_ context: BasicRequestContext) throws -> Int64 {
        let text = try context.parameters.require("id")
        guard let id = Int64(text), id > 0 else {
            throw ControlError(.badRequest, "invalid session id '\(text)': use a whole number from 1")
        }
        return id
    }

    private static func queryParameters(of request: Request) -> [String: String] {
        var parameters: [String: String] = [:]
        for (name, value) in request.uri.queryParameters { parameters[String(name)] = String(value) }
        return parameters
    }

    /// Runs blocking tape work on NIO's thread pool; a tape that cannot be read answers 500 with its reason.
    private static func offLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await NIOThreadPool.singleton.runIfActive(body)
        } catch let error as TapedeckError {
            throw ControlError(error.code == .invalidArgument ? .badRequest : .failed, error.message)
        }
    }
}
