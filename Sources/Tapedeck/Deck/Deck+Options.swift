import Logging
import NIOCore
import NIOPosix

extension Deck {
    /// How a deck records and replays, beyond its mode.
    public struct Options: Sendable {
        /// A label stored with a recording run.
        public var label: String?
        /// Whether recording starts a fresh tape instead of appending a run to an existing one. The fresh tape
        /// is recorded beside the old one (`<tape>.recording`) and replaces it once the recording is complete,
        /// so a recording that fails or never starts leaves the old tape as it was.
        public var overwrite: Bool
        /// How fast replay plays the upstream's part.
        public var pace: ReplayPace
        /// Whether a recorded session may serve more than one connection in replay.
        public var repeatSessions: Bool
        /// The event loops to serve on.
        public var group: any EventLoopGroup
        /// Where the deck logs.
        public var logger: Logger
        /// Called once, from the tape's writer thread, if the tape cannot be written; ``Deck/stop(drainTimeout:)``
        /// then throws the same error. Without it, the failure is logged as an error.
        public var onRecordingFailure: (@Sendable (TapedeckError) -> Void)?
        /// Called with each warning the user must see whatever the log level, such as a listener beyond
        /// loopback; without it, warnings are logged at `warning` level. The command line prints them on stderr.
        public var onWarning: (@Sendable (String) -> Void)?
        /// How long open connections may go on when a graceful shutdown stops the deck's ``Deck/run()``, before
        /// they are reset.
        public var drainTimeout: Duration
        /// Secrets by name, for replay: what redacted upstream spans whose rule names one are replayed as, and
        /// the password a SCRAM login needs (`postgres-password`). Never stored.
        public var secrets: [String: String] = [:]
        /// Where the local certificate authority lives (made there on first use), for routes and tapes that
        /// speak TLS; nil for ``CertificateAuthority/defaultDirectory(environment:)``.
        public var certificateAuthorityDirectory: String?
        /// The toxics of the deck's routes (see ``FaultRegistry``): faults applied to live, recorded and replayed
        /// traffic. Without it the relays carry no fault stage at all.
        public var faults: FaultRegistry?
        /// Where to serve the control API (Toxiproxy's REST API and Tapedeck's own, see ``ControlAPI``); `nil`
        /// for none. With it, each route has a server of its own that the API can create, delete, disable and
        /// switch, and the deck may start with no route at all. Loopback unless told otherwise.
        public var api: Endpoint?
        /// Where to serve the web inspector over the deck's tape (see ``InspectorServer``), showing sessions as they
        /// are recorded and a replay's mismatches as they happen; `nil` for none. Loopback unless told otherwise.
        public var web: Endpoint?
        /// Toxics to put on the routes as the deck starts (a fault file), once their names are known; a deck given
        /// a plan without ``faults`` makes a registry with seed 0.
        public var faultPlan: FaultPlan?
        /// How old a replayed session may be, and what replay does about older ones (see ``TapeExpiry``); `nil`
        /// for no limit.
        public var expiry: TapeExpiry?

        /// Creates options: append to the tape, replay fast, each session served once, 5 seconds to drain.
        public init(
            label: String? = nil,
            overwrite: Bool = false,
            pace: ReplayPace = .fast,
            repeatSessions: Bool = false,
            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
            logger: Logger = Logger(label: "tapedeck"),
            onRecordingFailure: (@Sendable (TapedeckError) -> Void)? = nil,
            onWarning: (@Sendable (String) -> Void)? = nil,
            drainTimeout: Duration = .seconds(5)
        ) {
            self.label = label
            self.overwrite = overwrite
            self.pace = pace
            self.repeatSessions = repeatSessions
            self.group = group
            self.logger = logger
            self.onRecordingFailure = onRecordingFailure
            self.onWarning = onWarning
            self.drainTimeout = drainTimeout
        }

        /// Says a warning the user must see: to ``onWarning`` when set, else to the log at `warning` level.
        func warn(_ warning: String) {
            if let onWarning {
                onWarning(warning)
            } else {
                logger.warning("\(warning)")
            }
        }

        /// These options, logging to `logger`.
        public func with(logger: Logger) -> Options {
            var options = self
            options.logger = logger
            return options
        }
    }
}
