import Foundation
import Testing

@testable import Tapedeck

/// The parsers' fuzz harnesses, the ones `scripts/fuzz` runs under libFuzzer for minutes, run here for a few
/// seconds on every test run: over their seed corpus (`Fuzz/Corpus/<target>/`) and random mutations of it from
/// a fixed seed, with libFuzzer's dictionaries. Nothing may trap, every rejection must be a one-line
/// `TapedeckError`, and every value accepted must keep its type's promises (see `ParserFuzzing`).
struct ParserFuzzTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Each parser's harness, and whether it accepts an input (to tell that the mutations reach both sides).
    static func target(_ name: String) -> (harness: (Data) -> FuzzFinding?, accepts: (Data) -> Bool)? {
        func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }
        switch name {
        case "endpoint": return (ParserFuzzing.endpoint, { (try? Endpoint(parsing: text($0))) != nil })
        case "duration": return (ParserFuzzing.duration, { (try? DurationText.parse(text($0))) != nil })
        case "pace": return (ParserFuzzing.pace, { (try? ReplayPace(parsing: text($0))) != nil })
        case "timestamp": return (ParserFuzzing.timestamp, { (try? TimestampText.parse(text($0))) != nil })
        case "config":
            return (
                ParserFuzzing.configuration,
                { data in ["c.yaml", "c.json"].contains { (try? ProxyConfiguration.parse(data, path: $0)) != nil } }
            )
        default: return nil
        }
    }

    /// Mutated inputs per parser, at most; and at most this long, so a slow machine still finishes quickly.
    static let maximumRuns = 30_000
    static let timeLimit = Duration.seconds(2)

    @Test(arguments: ["endpoint", "duration", "pace", "timestamp", "config"])
    func harnessFindsNothingInSeedsAndMutations(target: String) throws {
        let (harness, accepts) = try #require(Self.target(target))
        let seeds = try Self.files(in: "Fuzz/Corpus/\(target)")
        try #require(!seeds.isEmpty, "no seeds in Fuzz/Corpus/\(target)")
        let tokens = try Self.dictionary(target)
        var generator = SplitMix64(seed: 0x7A9E_DECC)
        var pool = seeds
        var runs = 0
        var accepted = 0
        var findings: [String] = []
        let clock = ContinuousClock()
        let start = clock.now
        func run(_ input: Data) {
            runs += 1
            if let finding = harness(input) {
                findings.append("\(finding) (input base64 \(input.base64EncodedString()))")
            }
            if accepts(input) {
                accepted += 1
                // Build on inputs that parse: their mutations reach further than a rejected input's.
                if pool.count < 256 { pool.append(input) }
            }
        }
        for seed in seeds { run(seed) }
        while runs < Self.maximumRuns, clock.now - start < Self.timeLimit, findings.count < 5 {
            var input = Array(pool.randomElement(using: &generator)!)
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                Self.mutate(&input, tokens: tokens, other: pool.randomElement(using: &generator)!, using: &generator)
            }
            run(Data(input))
        }
        #expect(findings.isEmpty, "\(target): \(findings.joined(separator: "\n"))")
        #expect(runs > seeds.count, "\(target): no mutated input ran")
        // A run that only ever rejected (or only accepted) would check one side alone.
        #expect(accepted > 0 && accepted < runs, "\(target): \(accepted) of \(runs) inputs accepted")
    }

    /// The checks themselves: a harness that could not fail would prove nothing.
    @Test func rejectionsThatAreNotOneLineTapedeckErrorsAreFindings() {
        #expect(
            FuzzFinding.checkRejection(TapedeckError(.invalidAddress, "bad"), code: .invalidAddress, input: "x") == nil
        )
        #expect(
            FuzzFinding.checkRejection(TapedeckError(.invalidArgument, "bad"), code: .invalidAddress, input: "x") != nil
        )
        #expect(FuzzFinding.checkRejection(CocoaError(.fileReadUnknown), input: "x") != nil)
        var twoLines = TapedeckError(.invalidAddress, "bad")
        twoLines.message = "bad\nworse"
        #expect(FuzzFinding.checkRejection(twoLines, input: "x") != nil)
        #expect(FuzzFinding.checkRejection(TapedeckError(.invalidAddress, ""), input: "x") != nil)
    }

    /// The files of a seed directory, in name order.
    static func files(in directory: String) throws -> [Data] {
        let url = repository.appendingPathComponent(directory)
        return try FileManager.default.contentsOfDirectory(atPath: url.path).sorted().map {
            try Data(contentsOf: url.appendingPathComponent($0))
        }
    }

    /// The tokens of `Fuzz/Dictionaries/<target>.dict`: quoted, with `\xNN`, `\\` and `\"` escapes.
    static func dictionary(_ target: String) throws -> [[UInt8]] {
        let url = repository.appendingPathComponent("Fuzz/Dictionaries/\(target).dict")
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").compactMap { line in
            guard line.hasPrefix("\""), line.hasSuffix("\""), line.count >= 2 else { return nil }
            var bytes: [UInt8] = []
            var rest = Array(line.utf8.dropFirst().dropLast())[...]
            while let byte = rest.popFirst() {
                guard byte == UInt8(ascii: "\\"), let next = rest.popFirst() else {
                    bytes.append(byte)
                    continue
                }
                if next == UInt8(ascii: "x"), rest.count >= 2,
                    let value = UInt8(String(decoding: rest.prefix(2), as: UTF8.self), radix: 16)
                {
                    bytes.append(value)
                    rest = rest.dropFirst(2)
                } else {
                    bytes.append(next)
                }
            }
            return bytes
        }
    }

    /// One mutation of the kinds libFuzzer makes: a bit flipped, a byte replaced, inserted or erased, a token of
    /// the dictionary inserted, a range repeated, or the tail of another input spliced on.
    static func mutate(
        _ input: inout [UInt8],
        tokens: [[UInt8]],
        other: Data,
        using generator: inout some RandomNumberGenerator
    ) {
        let position = Int.random(in: 0...input.count, using: &generator)
        switch Int.random(in: 0..<7, using: &generator) {
        case 0 where position < input.count:
            input[position] ^= 1 << UInt8.random(in: 0..<8, using: &generator)
        case 1 where position < input.count:
            input[position] = UInt8.random(in: 0...255, using: &generator)
        case 2:
            input.insert(UInt8.random(in: 0...255, using: &generator), at: position)
        case 3 where position < input.count:
            input.removeSubrange(position..<min(input.count, position + Int.random(in: 1...4, using: &generator)))
        case 4 where !tokens.isEmpty:
            input.insert(contentsOf: tokens.randomElement(using: &generator)!, at: position)
        case 5 where position < input.count:
            let end = min(input.count, position + Int.random(in: 1...8, using: &generator))
            input.insert(contentsOf: input[position..<end], at: end)
        default:
            let cut = Int.random(in: 0...other.count, using: &generator)
            input = Array(input.prefix(position)) + Array(other.dropFirst(cut))
        }
        if input.count > 4096 { input.removeLast(input.count - 4096) }
    }
}

/// A small, fast generator with a fixed seed, so that a failing mutation is found again on the next run.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}
