import HTTPTypes
import Hummingbird

/// Refuses requests that name a host other than a loopback one, for an inspector listening on loopback.
///
/// A web page on any site can make a browser send requests to 127.0.0.1, but cannot read the answers: they are
/// of another origin. Unless the page's own name is made to resolve to 127.0.0.1 (DNS rebinding): its requests
/// then reach the inspector as same-origin, and it could read the tape. Those requests carry the site's name in
/// their `Host` header, so answering only requests for `localhost`, `127.x.x.x` or `[::1]` shuts that out, as
/// Jupyter and mitmweb do. Requests without a `Host` (HTTP/1.0 tools) are not from browsers and pass.
struct LoopbackHostMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        // HTTP/1.1's Host header arrives as the request's authority; a request built by hand may carry the header
        // as well. Either one naming another host is refused.
        for host in [request.head.authority, request.headers[Self.hostHeader]].compactMap(\.self)
        where !Self.isLoopback(host) {
            throw ControlError(
                .forbidden,
                "the inspector answers requests for localhost, 127.0.0.1 or [::1], not for '\(host)'"
            )
        }
        return try await next(request, context)
    }

    private static let hostHeader = HTTPField.Name("Host")!

    /// Whether a `Host` value (`127.0.0.1:8080`, `localhost`, `[::1]:80`) names the loopback interface.
    static func isLoopback(_ host: String) -> Bool {
        var name = Substring(host.lowercased())
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            return name[name.index(after: name.startIndex)..<close] == "::1"
        }
        if let colon = name.lastIndex(of: ":") { name = name[..<colon] }
        if name == "localhost" || name.hasSuffix(".localhost") { return true }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}
