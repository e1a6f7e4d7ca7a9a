import Foundation

/// A real nginx serving a temporary directory on a loopback port, in the foreground, stopped by its PID; over
/// TLS (and HTTP/2, if asked) when given a certificate.
final class NginxServer: Sendable {
    static let executable = ["/usr/sbin/nginx"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let curl = ["/usr/bin/curl"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var isInstalled: Bool { executable != nil && curl != nil }

    let port: Int
    let root: String
    private let directory: String
    private let server: ChildProcess

    /// Serves `files` (name → contents); with `tls`, over TLS with that PEM certificate and key, and with `http2`
    /// also HTTP/2 for clients that ask for it (ALPN); without `tls`, `http2` serves HTTP/2 in the clear to clients
    /// that know it beforehand (h2c, prior knowledge) and HTTP/1.1 no more.
    init(files: [String: Data], tls: (certificate: String, key: String)? = nil, http2: Bool = false) async throws {
        guard let executable = Self.executable else { throw TestProcessError("nginx is not installed") }
        directory = "/tmp/tapedeck-nginx-\(UUID().uuidString.prefix(8))"
        root = directory + "/www"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for (name, contents) in files { try contents.write(to: URL(fileURLWithPath: root + "/" + name)) }
        let directory = self.directory
        let root = self.root
        let listenOptions = (tls == nil ? "" : " ssl") + (http2 ? " http2" : "")
        let certificateLines =
            tls.map { "ssl_certificate \($0.certificate);\n            ssl_certificate_key \($0.key);" } ?? ""
        (port, server) = try await startListening { port in
            let config = """
                daemon off;
                master_process off;
                pid \(directory)/nginx.pid;
                error_log \(directory)/error.log;
                events { worker_connections 128; }
                http {
                    access_log off;
                    client_body_temp_path \(directory)/body;
                    proxy_temp_path \(directory)/proxy;
                    fastcgi_temp_path \(directory)/fastcgi;
                    uwsgi_temp_path \(directory)/uwsgi;
                    scgi_temp_path \(directory)/scgi;
                    default_type application/octet-stream;
                    keepalive_timeout 10s;
                    server {
                        listen 127.0.0.1:\(port)\(listenOptions);
                        \(certificateLines)
                        root \(root);
                    }
                }
                """
            try Data(config.utf8).write(to: URL(fileURLWithPath: directory + "/nginx.conf"))
            return try ChildProcess(
                [executable, "-c", directory + "/nginx.conf", "-p", directory],
                outputPath: directory + "/stdout.log"
            )
        }
    }

    func stop() {
        server.stop(SIGQUIT)
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }

    /// Fetches `paths` from `port` with one curl invocation, so they share a keep-alive connection.
    static func curl(port: Int, _ paths: [String]) throws -> Data {
        try curl(base: "http://127.0.0.1:\(port)", paths).bodies
    }

    /// Fetches `paths` under `base` (`https://localhost:PORT`, say) with one curl invocation and `options`
    /// (`--cacert FILE`, say), so they share a keep-alive connection; returns the bodies, one after the other, and
    /// what curl printed (with `-w`, say).
    static func curl(base: String, _ paths: [String], options: [String] = []) throws -> (bodies: Data, output: String) {
        guard let curl else { throw TestProcessError("curl is not installed") }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("curl-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try ChildProcess.run(
            [curl, "-sS", "--fail", "--max-time", "30"] + options + ["-o", output]
                + paths.dropFirst().flatMap { ["-o", output + "-\($0.hashValue)"] } + paths.map { base + $0 }
        )
        guard result.status == 0 else { throw TestProcessError("curl exited \(result.status): \(result.output)") }
        var data = try Data(contentsOf: URL(fileURLWithPath: output))
        for path in paths.dropFirst() {
            let file = output + "-\(path.hashValue)"
            data.append(try Data(contentsOf: URL(fileURLWithPath: file)))
            try? FileManager.default.removeItem(atPath: file)
        }
        return (data, result.output)
    }
}
