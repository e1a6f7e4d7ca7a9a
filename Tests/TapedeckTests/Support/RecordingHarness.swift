import Foundation
import NIOCore

@testable import Tapedeck

/// A temporary directory removed when the test is done with it.
final class TemporaryDirectory: Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("tapedeck-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String {
        url.appendingPathComponent(name).path
    }

    /// Writes `routes.yaml` with two routes, `alpha` and `beta`, both to `upstream`; returns its path.
    func twoRouteConfig(upstream: Endpoint) throws -> String {
        let config = path("routes.yaml")
        try Data(
            "routes:\n  - {name: alpha, upstream: \"\(upstream)\"}\n  - {name: beta, upstream: \"\(upstream)\"}\n".utf8
        )
        .write(to: URL(fileURLWithPath: config))
        return config
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}

/// Records through an in-process proxy into `tapePath`, runs `body` with the proxy's address, then shuts the
/// proxy down and finishes the tape.
func withRecordingProxy<T>(
    upstream: Endpoint,
    listen: Endpoint = Route.defaultListen,
    tapePath: String,
    overwrite: Bool = false,
    label: String? = nil,
    connectTimeout: Duration = .seconds(5),
    _ body: (Endpoint) async throws -> T
) async throws -> T {
    let route = Route(listen: listen, upstream: upstream, connectTimeout: connectTimeout)
    let tape = try Tape(recordingAt: tapePath, overwrite: overwrite)
    let recorder = try Recorder(tape: tape, routes: [route], label: label)
    let server = ProxyServer(configuration: try ProxyConfiguration(routes: [route]), recorder: recorder)
    let address = try await server.start()[0].address
    do {
        let result = try await body(address)
        await server.shutdown(drainTimeout: .seconds(5))
        try await recorder.finish()
        return result
    } catch {
        await server.shutdown(drainTimeout: .zero)
        try? await recorder.finish()
        throw error
    }
}

extension Array where Element == EventRecord {
    /// The concatenated data payloads sent in one direction.
    func bytes(_ direction: Direction) -> Data {
        var data = Data()
        for event in self where event.direction == direction && event.kind == .data {
            data.append(event.payload ?? Data())
        }
        return data
    }

    /// The kinds of events that are not data, as "direction kind", in order.
    var markers: [String] {
        filter { $0.kind != .data }.map {
            "\($0.direction == .clientToUpstream ? "client" : "upstream") \($0.kind.rawValue)"
        }
    }
}

extension ByteBuffer {
    var data: Data { Data(readableBytesView) }
}

/// Records one exchange, `request` and the upstream's reply, through a recording deck into `tape`: a tape to
/// replay, or one for a later recording to replace.
func recordExchange(
    _ request: String,
    into tape: String,
    upstream: Endpoint,
    route: String = Route.defaultName
)
    async throws
{
    let recording = try await Deck.start(.record, tape: tape, routes: [Route(name: route, upstream: upstream)])
    _ = try await TestClient.exchange(recording.address, request)
    try await recording.stop()
}
