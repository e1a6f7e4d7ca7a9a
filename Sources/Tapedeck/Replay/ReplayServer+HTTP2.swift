extension ReplayServer {
    /// Whether replay serves a route's connections through the HTTP/2 lens: when the lens was named (`--protocol
    /// http2`, or recorded with the route), or, left to recognition, when the route's first recorded client began
    /// with the HTTP/2 client preface. A connection of such a route that does not begin with the preface is still
    /// served byte for byte.
    static func servesHTTP2(_ route: Route, tape: Tape) throws -> Bool {
        switch route.lens {
        case .http2: return true
        case .auto: return try tape.routeBeginsWithHTTP2Preface(route.name)
        case .raw, .mysql, .websocket: return false
        }
    }

    /// The sessions of a route that its HTTP/2 book serves, so that the byte-level catalog's report leaves them
    /// out.
    static func http2SessionIDs(_ book: HTTP2ReplayBook?) -> Set<Int64> {
        Set(book?.sessionIDs ?? [])
    }
}
