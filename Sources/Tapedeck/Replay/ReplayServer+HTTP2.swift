extension ReplayServer {
    /// The sessions of a route that its HTTP/2 book serves, so that the byte-level catalog's report leaves them
    /// out.
    static func http2SessionIDs(_ book: HTTP2ReplayBook?) -> Set<Int64> {
        Set(book?.sessionIDs ?? [])
    }
}
