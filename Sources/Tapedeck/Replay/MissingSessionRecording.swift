/// What replay needs to record a session the tape is missing: the recorder. Each route's real upstream and
/// connect timeout are its ``Route/upstream`` and ``Route/connectTimeout``.
///
/// Like a VCR cassette's "new episodes" mode: a connection no recorded session matches is relayed to the real
/// upstream and recorded as a new session, for the next replay to serve.
public struct MissingSessionRecording: Sendable {
    /// Where new sessions are recorded; usually a recorder on the tape being replayed.
    public var recorder: Recorder

    /// Creates the settings for recording missing sessions.
    public init(recorder: Recorder) {
        self.recorder = recorder
    }
}
