/// The environment variables that tell a command where Tapedeck's routes listen.
///
/// Every route gets `TAPEDECK_<ROUTE>_ADDR`, plus `_HOST` and `_PORT` for TCP or UDP or `_SOCKET` for a Unix socket,
/// where `<ROUTE>` is the route's name in upper case with `-` and `.` as `_`. When there is a single route it
/// also gets the short names `TAPEDECK_ADDR`, `TAPEDECK_HOST`, `TAPEDECK_PORT` (or `TAPEDECK_SOCKET`).
///
/// ```swift
/// RouteEnvironment.variables(for: [BoundRoute(name: "pg", address: .tcp(host: "127.0.0.1", port: 54321))])
/// // ["TAPEDECK_ADDR": "127.0.0.1:54321", "TAPEDECK_HOST": "127.0.0.1", "TAPEDECK_PORT": "54321",
/// //  "TAPEDECK_PG_ADDR": "127.0.0.1:54321", "TAPEDECK_PG_HOST": "127.0.0.1", "TAPEDECK_PG_PORT": "54321"]
/// ```
public enum RouteEnvironment {
    /// The variables for `routes`.
    public static func variables(for routes: [BoundRoute]) -> [String: String] {
        var variables: [String: String] = [:]
        for route in routes {
            variables.merge(self.variables(for: route.address, prefix: "TAPEDECK_\(variableName(route.name))_")) { $1 }
        }
        if routes.count == 1 {
            variables.merge(self.variables(for: routes[0].address, prefix: "TAPEDECK_")) { $1 }
        }
        return variables
    }

    /// A route name as it appears in a variable name: `redis-cache` becomes `REDIS_CACHE`.
    public static func variableName(_ route: String) -> String {
        String(route.uppercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
    }

    private static func variables(for address: Endpoint, prefix: String) -> [String: String] {
        switch address {
        case .tcp(let host, let port):
            return [prefix + "ADDR": "\(address)", prefix + "HOST": host, prefix + "PORT": "\(port)"]
        case .unix(let path):
            return [prefix + "ADDR": "\(address)", prefix + "SOCKET": path]
        case .udp(let host, let port):
            // HOST:PORT without the `udp:` prefix: what a statsd or DNS client takes; the route says it is UDP.
            let address = Endpoint.tcp(host: host, port: port)
            return [prefix + "ADDR": "\(address)", prefix + "HOST": host, prefix + "PORT": "\(port)"]
        }
    }
}
