import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Checks whether the services a tape was recorded against still answer as recorded (`tapedeck drift`).
///
/// Each recorded session's client bytes go to the live upstream again, exchange by exchange: the client's bytes
/// up to where the recorded upstream answered, then the live answer, judged against the recorded one with the
/// tape's volatile and redaction rules applied (see ``DriftAnswer``), and so on to the end, which must come as it
/// did. Sessions go in their recorded order, one at a time unless `parallel` says otherwise, since sessions often
/// depend on the state earlier ones left in the upstream.
///
/// ```swift
/// let report = try await DriftCheck.run(tape: tape, options: .init(upstream: try Endpoint(parsing: "127.0.0.1:6379")))
/// for result in report.results where result.status != .unchanged { print(result) }
/// ```
public enum DriftCheck {
    /// How a drift check runs.
    public struct Options: Sendable {
        /// The upstream for every route; the tape's recorded upstream when nil (and `upstreams` names none).
        public var upstream: Endpoint?
        /// The configured routes (`--config`), whose upstreams go ahead of `upstream` (see ``route(named:)``).
        public var routes: [Route]
        /// How many sessions run at once; 1 keeps the recorded order strictly.
        public var parallel: Int
        /// How long a connect, or an answer, may take.
        public var timeout: Duration
        /// Only these sessions, by id; every session when nil.
        public var sessions: Set<Int64>?
        /// The TLS settings toward upstreams of sessions recorded with TLS to the upstream, unless a route of
        /// `routes` gives its own: whose certificates to trust.
        public var tls: TLSSettings
        /// Rules applied besides the tape's own (`--volatile`, `--redact`, `--preset`), to every route.
        public var rules: [Rule] = []
        /// Whether the report keeps each session's live events (``DriftCheck/record(_:from:to:overwrite:)`` needs
        /// them); a check alone keeps only the verdicts, so its memory does not grow with the tape.
        public var keepsConversations = false
        /// Whether a session goes on after its first difference, to the end of its conversation: for a new
        /// recording of it; a check alone stops there.
        public var continueAfterChange = false

        /// The configured route for a route of the tape: the one of its name, or the only one configured, as
        /// replay serves a tape's only route whatever its name.
        func route(named name: String) -> Route? {
            routes.first { $0.name == name } ?? (routes.count == 1 ? routes[0] : nil)
        }

        /// Creates options.
        public init(
            upstream: Endpoint? = nil,
            routes: [Route] = [],
            parallel: Int = 1,
            timeout: Duration = .seconds(5),
            sessions: Set<Int64>? = nil,
            tls: TLSSettings = TLSSettings(mode: .originate)
        ) {
            self.upstream = upstream
            self.routes = routes
            self.parallel = parallel
            self.timeout = timeout
            self.sessions = sessions
            self.tls = tls
        }
    }

    /// What a drift check found, session by session, in the tape's order.
    public struct Report: Sendable {
        /// One result per session checked.
        public var results: [DriftResult]
        /// The live sessions, for `--record`, by session id (their events only with
        /// ``Options/keepsConversations``).
        var live: [Int64: DriftLiveSession]
        /// Whether ``live`` holds the sessions' events.
        var keptConversations = false

        /// Whether any session changed or failed.
        public var drifted: Bool { results.contains { $0.status != .unchanged } }

        /// How many sessions have `status`.
        public func count(_ status: DriftResult.Status) -> Int { results.count(where: { $0.status == status }) }
    }

    /// One session to re-issue, and where. Its events are read when its turn comes, so a check holds only the
    /// sessions under way in memory, not the tape.
    struct Job: Sendable {
        var session: Int64
        var route: String
        var isDatagram: Bool
        var rules: CompiledRules
        var upstream: Endpoint
        var tls: TLSJob?
        /// Why it cannot be re-issued, when it cannot.
        var refusal: String?
        /// Go on after the first difference (see ``Options/continueAfterChange``).
        var continueAfterChange = false
    }

    /// How a session spoke TLS to its upstream, to do it again.
    struct TLSJob: Sendable {
        var settings: TLSSettings
        var serverName: String?
        var applicationProtocols: [String]
    }

    /// Re-issues the tape's sessions and reports what changed.
    ///
    /// - Throws: ``TapedeckError`` when the tape cannot be read, a rule does not compile, or a route has no upstream
    ///   to check against.
    public static func run(
        tape: Tape,
        options: Options,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Report {
        let jobs = try self.jobs(in: tape, options: options)
        let contexts = TLSContexts(authorityDirectory: "")
        var results: [Int64: DriftLiveSession] = [:]
        let width = max(1, options.parallel)
        try await withThrowingTaskGroup(of: DriftLiveSession.self) { tasks in
            var next = 0
            func startNext() {
                guard next < jobs.count else { return }
                let job = jobs[next]
                next += 1
                tasks.addTask {
                    let plan = DriftPlan(
                        sessionID: job.session,
                        route: job.route,
                        events: try tape.events(inSession: job.session),
                        isDatagram: job.isDatagram
                    )
                    var live = try await reissue(
                        job,
                        plan: plan,
                        timeout: options.timeout,
                        contexts: contexts,
                        on: group.next()
                    )
                    // Only a new recording needs what was heard; a check keeps its verdict alone.
                    if !options.keepsConversations { live.events = [] }
                    return live
                }
            }
            for _ in 0..<width { startNext() }
            while let done = try await tasks.next() {
                results[done.result.session] = done
                startNext()
            }
        }
        return Report(
            results: jobs.compactMap { results[$0.session]?.result },
            live: results,
            keptConversations: options.keepsConversations
        )
    }

    /// Writes what `report` heard as a new tape at `path`: the old tape's runs, routes and rules, and each
    /// re-issued session's live conversation (see ``DriftRecording``).
    ///
    /// - Throws: ``TapedeckError`` when the tape cannot be read or the new one written, `path` exists without
    ///   `overwrite`, or the check did not keep its conversations (``Options/keepsConversations``).
    public static func record(_ report: Report, from tape: Tape, to path: String, overwrite: Bool) throws {
        guard report.keptConversations else {
            throw TapedeckError(
                .invalidArgument,
                "the drift check kept no conversations to record: run it with keepsConversations set"
            )
        }
        try DriftRecording.write(report, from: tape, to: path, overwrite: overwrite)
    }

    /// The sessions to re-issue, in recorded order, with their rules and upstreams.
    static func jobs(in tape: Tape, options: Options) throws -> [Job] {
        let routes = try tape.routes()
        var recordedUpstream: [String: String] = [:]
        var datagramRoutes = Set<String>()
        for route in routes {
            recordedUpstream[route.name] = route.upstream
            if (try? Endpoint(parsing: route.listen))?.isDatagram == true { datagramRoutes.insert(route.name) }
        }
        var rules: [String: CompiledRules] = [:]
        var upstreams: [String: Endpoint] = [:]
        func upstream(of route: String) throws -> Endpoint {
            if let found = upstreams[route] { return found }
            let endpoint: Endpoint
            if let configured = options.route(named: route)?.upstream {
                endpoint = configured
            } else if let given = options.upstream {
                endpoint = given
            } else if let text = recordedUpstream[route], !text.isEmpty, let recorded = try? Endpoint(parsing: text) {
                endpoint = recorded
            } else {
                throw TapedeckError(
                    .invalidConfiguration,
                    "route '\(route)' has no upstream to check against: give --upstream ADDR or --config FILE"
                )
            }
            upstreams[route] = endpoint
            return endpoint
        }
        let tlsRecords = try tape.tlsRecords()
        var jobs: [Job] = []
        for session in try tape.sessions() {
            guard let id = session.id, session.outcome != .probe else { continue }
            if let wanted = options.sessions, !wanted.contains(id) { continue }
            let compiled: CompiledRules
            if let found = rules[session.route] {
                compiled = found
            } else {
                compiled = try CompiledRules(
                    (try tape.rules(ofRoute: session.route) + options.rules + Self.connectionRules).uniqued(),
                    direction: .upstreamToClient
                )
                rules[session.route] = compiled
            }
            let isDatagram = datagramRoutes.contains(session.route)
            // A UDP route's upstream given as HOST:PORT is meant as UDP: the tape says the route carries datagrams.
            let endpoint = try upstream(of: session.route)
            var job = Job(
                session: id,
                route: session.route,
                isDatagram: isDatagram,
                rules: compiled,
                upstream: isDatagram ? endpoint.asDatagram : endpoint,
                continueAfterChange: options.continueAfterChange
            )
            if job.upstream.isDatagram != isDatagram {
                job.refusal = "the route was recorded over a stream, but its upstream \(job.upstream) carries datagrams"
            }
            if let tls = tlsRecords[id], tls.mode == .intercept || tls.mode == .originate {
                if tls.upgrade != "direct" {
                    job.refusal =
                        "TLS after a \(tls.upgrade) upgrade: drift re-issues TLS only when it begins with the connection"
                }
                job.tls = TLSJob(
                    settings: options.route(named: session.route)?.tls ?? options.tls,
                    serverName: tls.serverName,
                    applicationProtocols: tls.applicationProtocol.map { [$0] } ?? []
                )
            }
            jobs.append(job)
        }
        return jobs
    }

    /// Re-issues one session.
    static func reissue(
        _ job: Job,
        plan: DriftPlan,
        timeout: Duration,
        contexts: TLSContexts,
        on loop: any EventLoop
    ) async throws -> DriftLiveSession {
        var refused = DriftLiveSession(
            result: .unchanged(session: plan.sessionID, route: plan.route),
            startedAt: WallClock.nowNanoseconds(),
            upstream: "\(job.upstream)"
        )
        if let refusal = job.refusal {
            refused.result.status = .failed
            refused.result.reason = refusal
            return refused
        }
        let promise = loop.makePromise(of: DriftLiveSession.self)
        let connected = connect(job, timeout: timeout, on: loop) { channel in
            if let tls = job.tls {
                let context = try contexts.client(
                    applicationProtocols: tls.applicationProtocols,
                    settings: tls.settings
                )
                try channel.pipeline.syncOperations.addHandler(
                    try NIOSSLClientHandler(context: context, serverHostname: tls.serverName.flatMap(Self.hostName))
                )
            }
            try channel.pipeline.syncOperations.addHandler(
                DriftSessionHandler(
                    plan: plan,
                    rules: job.rules,
                    timeout: timeout.timeAmount,
                    upstream: "\(job.upstream)",
                    continueAfterChange: job.continueAfterChange,
                    promise: promise
                )
            )
        }
        do {
            _ = try await connected.get()
        } catch {
            promise.fail(error)
            refused.outcome = SessionOutcome(connectError: error)
            refused.append(.upstreamToClient, .connectFailed, at: 0)
            if plan.connectFailed {
                // The recording's connect failed too: nothing drifted.
                return refused
            }
            refused.result.status = .failed
            refused.result.reason = "cannot connect to \(job.upstream): \(SocketErrorText.describe(error))"
            return refused
        }
        var live = try await promise.futureResult.get()
        if plan.connectFailed, live.result.status == .unchanged {
            live.result.status = .changed
            live.result.exchange = 1
            live.result.direction = "end"
            live.result.recorded = "the connect failed"
            live.result.live = "the upstream accepted the connection"
        }
        return live
    }

    /// Values an upstream makes anew for every connection, which no recording can hold twice and no user should
    /// have to name: a PostgreSQL upstream's BackendKeyData (its process id and cancel key, between the startup's
    /// parameters and the first ReadyForQuery). Replay never compares what the upstream says, so only drift needs
    /// them; the pattern (the message type, its length 12, eight bytes, then ReadyForQuery) matches nothing else.
    static let connectionRules: [Rule] = [
        Rule(preset: "drift", .volatile, #"K\x00\x00\x00\x0c([\x00-\xff]{8})Z\x00\x00\x00\x05"#, scope: .upstream)
    ]

    /// Opens the session's upstream socket: a stream as every relay opens one, or a UDP socket connected to the
    /// upstream, whose datagrams reach the handler as bytes.
    private static func connect(
        _ job: Job,
        timeout: Duration,
        on loop: any EventLoop,
        initialize: @escaping @Sendable (any Channel) throws -> Void
    ) -> EventLoopFuture<any Channel> {
        guard case .udp(let host, let port) = job.upstream else {
            return UpstreamConnector.connect(to: job.upstream, timeout: timeout, on: loop, initialize: initialize)
        }
        let address: SocketAddress
        do {
            address = try job.upstream.literalAddress ?? SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            return loop.makeFailedFuture(error)
        }
        return DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramPayloadHandler())
                    try initialize(channel)
                }
            }
            .connect(to: address)
    }

    /// A server name as SNI takes it: never an IP address.
    private static func hostName(_ name: String) -> String? {
        name.isEmpty || CertificateAuthority.ipAddressBytes(name) != nil ? nil : name
    }
}
