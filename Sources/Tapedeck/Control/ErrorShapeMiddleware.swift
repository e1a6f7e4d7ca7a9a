import Foundation
import Hummingbird

/// Answers every error in Toxiproxy's shape, `{"error": "proxy not found: redis", "status": 404}`, whatever threw
/// it: the API's own refusals, and Hummingbird's (no such endpoint, a body too large).
struct ErrorShapeMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as ControlError {
            return try Self.response(error.message, status: error.status)
        } catch let error as HTTPError {
            let message =
                error.body
                ?? "\(error.status.reasonPhrase.lowercased()): \(request.method) \(request.uri.path)"
            return try Self.response(message, status: error.status.code)
        } catch let error as any HTTPResponseError {
            return try Self.response("\(error)", status: error.status.code)
        } catch {
            return try Self.response("\(error)", status: 500)
        }
    }

    /// The error body and status.
    static func response(_ message: String, status: Int) throws -> Response {
        struct Body: Encodable {
            var error: String
            var status: Int
        }
        return try ControlAPI.json(Body(error: message, status: status), status: .init(code: status))
    }
}
