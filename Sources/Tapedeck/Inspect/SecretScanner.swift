import Foundation

/// Finds likely secrets in a tape: `tapedeck scan`, for a CI job that refuses a fixture holding a password.
///
/// It reads every session's two streams, each as one stream (the data payloads joined in order), with:
/// - the presets' rules whose spans are secrets: the `http-auth`, `redis-auth` and `postgres-password` redact
///   rules, and `aws-sigv4`'s signature and `X-Amz-Security-Token`. Rules that only mark what changes (UUIDs,
///   timestamps) are not secrets and are not run;
/// - patterns of its own: AWS access key ids, private key blocks, JWTs, bearer tokens, SMTP `AUTH` credentials.
///
/// A span that is all `*` is the placeholder the recorder wrote for a redacted secret, and not a finding. Where
/// two detectors find a secret at the same place of a stream, one finding has the more specific ``SecretKind``.
///
/// ```swift
/// let findings = try SecretScanner().findings(in: try Tape(readingAt: "fixtures/api.tape"))
/// if !findings.isEmpty { print("\(findings.count) likely secrets") }
/// ```
public struct SecretScanner: Sendable {
    let detectors: [SecretDetector]
    let limits: SecretStream.Limits

    /// Creates a scanner with every detector.
    ///
    /// - Throws: ``TapedeckError`` if a built-in pattern does not compile, which a test rules out.
    public init() throws {
        try self.init(limits: SecretStream.Limits())
    }

    /// Creates a scanner that cuts streams into chunks as `limits` says: tests use small ones.
    init(limits: SecretStream.Limits) throws {
        detectors = try SecretDetector.all()
        self.limits = limits
    }

    /// Calls `body` with each finding of the tape, streaming: session by session, and in event order within one.
    ///
    /// - Throws: ``TapedeckError`` if the tape cannot be read, or what `body` throws.
    public func forEachFinding(in tape: Tape, _ body: (SecretFinding) throws -> Void) throws {
        var session: SessionScan?
        try tape.forEachEventInOrder { event in
            if var finished = session, finished.id != event.sessionID {
                session = nil
                try finished.finish().forEach(body)
            }
            if session == nil { session = SessionScan(id: event.sessionID, detectors: detectors, limits: limits) }
            // In place: a copy would share the stream's buffers, and appending to them would copy them all.
            session?.add(event)
        }
        if var session { try session.finish().forEach(body) }
    }

    /// Every finding of the tape, in the order ``forEachFinding(in:_:)`` gives them.
    public func findings(in tape: Tape) throws -> [SecretFinding] {
        var findings: [SecretFinding] = []
        try forEachFinding(in: tape) { findings.append($0) }
        return findings
    }
}

/// The scan of one session: its two streams, who spoke first, and whether the upstream is challenging.
struct SessionScan {
    let id: Int64
    private let detectors: [SecretDetector]
    private var client: SecretStream
    private var upstream: SecretStream
    /// The direction of the session's first data.
    private var firstSpeaker: Direction?
    private var challenge = ChallengeTracker()
    private var found: [(Direction, SecretStream.Candidate)] = []

    init(id: Int64, detectors: [SecretDetector], limits: SecretStream.Limits) {
        self.id = id
        self.detectors = detectors
        client = SecretStream(direction: .clientToUpstream, limits: limits)
        upstream = SecretStream(direction: .upstreamToClient, limits: limits)
    }

    /// Adds an event; its payload joins its direction's stream, and whole chunks are scanned.
    mutating func add(_ event: EventRecord) {
        guard event.kind == .data, let payload = event.payload, !payload.isEmpty else { return }
        if firstSpeaker == nil { firstSpeaker = event.direction }
        switch event.direction {
        case .clientToUpstream:
            client.append(payload, seq: event.seq, afterChallenge: challenge.lastLineIsChallenge)
            found += client.scanChunks(detectors, firstSpeaker: firstSpeaker).map { (.clientToUpstream, $0) }
        case .upstreamToClient:
            // Only a server that greets first challenges (see SecretDetector.Condition.afterChallenge).
            if firstSpeaker == .upstreamToClient { challenge.read(payload) }
            upstream.append(payload, seq: event.seq, afterChallenge: false)
            found += upstream.scanChunks(detectors, firstSpeaker: firstSpeaker).map { (.upstreamToClient, $0) }
        }
    }

    /// Scans what is left and returns the session's findings in event order.
    mutating func finish() -> [SecretFinding] {
        found += client.scanRest(detectors, firstSpeaker: firstSpeaker).map { (.clientToUpstream, $0) }
        found += upstream.scanRest(detectors, firstSpeaker: firstSpeaker).map { (.upstreamToClient, $0) }
        return found.sorted { ($0.1.seq, $0.1.offset) < ($1.1.seq, $1.1.offset) }.map { direction, candidate in
            SecretFinding(
                sessionID: id,
                seq: candidate.seq,
                offset: candidate.offset,
                direction: direction,
                kind: candidate.kind,
                excerpt: candidate.excerpt
            )
        }
    }
}

/// Whether the upstream's last complete line is an SMTP `334` challenge (`334 VXNlcm5hbWU6`), read as the
/// upstream's bytes arrive: the client's next lines answer it with credentials.
struct ChallengeTracker {
    private(set) var lastLineIsChallenge = false
    /// The first bytes of the line in progress, enough to tell a challenge.
    private var lineStart: [UInt8] = []

    /// Reads the upstream's next bytes.
    mutating func read(_ payload: Data) {
        payload.withUnsafeBytes { bytes in
            guard let lastNewline = bytes.lastIndex(of: UInt8(ascii: "\n")) else {
                keep(bytes[...])
                return
            }
            if let previous = bytes[..<lastNewline].lastIndex(of: UInt8(ascii: "\n")) {
                lastLineIsChallenge = Self.isChallenge(bytes[(previous + 1)..<lastNewline])
            } else {
                keep(bytes[..<lastNewline])
                lastLineIsChallenge = Self.isChallenge(lineStart)
            }
            lineStart = []
            keep(bytes[(lastNewline + 1)...])
        }
    }

    private mutating func keep(_ bytes: some Collection<UInt8>) {
        lineStart += bytes.prefix(max(0, 4 - lineStart.count))
    }

    /// `334`, then a space, the end of the line, or nothing.
    static func isChallenge(_ line: some Collection<UInt8>) -> Bool {
        let start = Array(line.prefix(4))
        guard start.starts(with: "334".utf8) else { return false }
        return start.count == 3 || start[3] == UInt8(ascii: " ") || start[3] == UInt8(ascii: "\r")
    }
}
