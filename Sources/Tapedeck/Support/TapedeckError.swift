/// The one error type Tapedeck throws for problems a user can fix.
///
/// Its ``description`` is a single line that names the thing involved, for example
/// `cannot listen on 127.0.0.1:5432: address already in use`, so command-line front ends can print it as is.
public struct TapedeckError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The broad category of a ``TapedeckError``.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidAddress = "invalid address"
            case invalidConfiguration = "invalid configuration"
            case listenFailed = "listen failed"
            case upstreamFailed = "upstream failed"
            case invalidArgument = "invalid argument"
            case tapeUnreadable = "tape unreadable"
            case tapeUnwritable = "tape unwritable"
            case tapeFromNewerVersion = "tape from a newer version"
            case recordingFailed = "recording failed"
            case replayMismatch = "replay mismatch"
            case commandNotRun = "command not run"
            case outputUnwritable = "output unwritable"
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// An address such as `HOST:PORT` or `unix:/path` could not be parsed or resolved.
        public static let invalidAddress = Code(.invalidAddress)
        /// A configuration file is missing, unreadable or malformed.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A listener could not be bound.
        public static let listenFailed = Code(.listenFailed)
        /// An upstream connection could not be made.
        public static let upstreamFailed = Code(.upstreamFailed)
        /// A value given to the library is out of range or malformed.
        public static let invalidArgument = Code(.invalidArgument)
        /// A tape is missing, unreadable, corrupt or not a tape at all.
        public static let tapeUnreadable = Code(.tapeUnreadable)
        /// A tape cannot be created or written.
        public static let tapeUnwritable = Code(.tapeUnwritable)
        /// A tape was written by a newer Tapedeck, in a format this build does not know.
        public static let tapeFromNewerVersion = Code(.tapeFromNewerVersion)
        /// Recording stopped because the tape could not be written; the recording is incomplete.
        public static let recordingFailed = Code(.recordingFailed)
        /// A replay served a connection the tape had no session for, or left a required session unused.
        public static let replayMismatch = Code(.replayMismatch)
        /// A command to run inside Tapedeck could not be found or started.
        public static let commandNotRun = Code(.commandNotRun)
        /// An output file or stream (an export, a report, standard output) could not be written in full.
        public static let outputUnwritable = Code(.outputUnwritable)

        public var description: String { base.rawValue }
    }

    /// What kind of problem this is.
    public var code: Code
    /// The one-line explanation shown to the user.
    public var message: String

    /// Creates an error with a category and a one-line message.
    ///
    /// Messages quote what users and files said (an address, a duration, a config key), which may hold a line
    /// break or a terminal escape: control characters are escaped here, once for every message, so that an
    /// error is always the one line it promises to be.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = TerminalText.escape(message)
    }

    public var description: String { message }
}
