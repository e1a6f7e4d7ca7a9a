import Foundation

/// Fuzz harnesses for the parsers of what users type: addresses, durations, replay paces and config files.
///
/// Each takes arbitrary bytes, runs them through the parser and then through what uses the parsed value, and
/// returns what went wrong, if anything: every rejection must be a one-line ``TapedeckError``, and every value
/// accepted must keep the promises of its type. A trap (an overflow, a failed precondition) is a finding too;
/// it ends the process. The libFuzzer targets in `Fuzz/` and the unit tests both call these.
enum ParserFuzzing {
    /// `Endpoint(parsing:)`: an accepted address prints as text that parses back to it.
    static func endpoint(_ data: Data) -> FuzzFinding? {
        let text = String(decoding: data, as: UTF8.self)
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(parsing: text)
        } catch {
            return FuzzFinding.checkRejection(error, code: .invalidAddress, input: text.debugDescription)
        }
        // What the rest of Tapedeck asks of an endpoint: binding and connecting, and the loopback warning.
        _ = endpoint.literalAddress
        _ = endpoint.isLoopback
        do {
            let again = try Endpoint(parsing: endpoint.description)
            guard again == endpoint else {
                return FuzzFinding("\(text.debugDescription) parsed as \(endpoint), which parses back as \(again)")
            }
        } catch {
            return FuzzFinding("\(text.debugDescription) parsed as \(endpoint), which does not parse back: \(error)")
        }
        return nil
    }

    /// `DurationText.parse`: an accepted duration is not negative and prints as text that parses back to it.
    static func duration(_ data: Data) -> FuzzFinding? {
        let text = String(decoding: data, as: UTF8.self)
        let duration: Duration
        do {
            duration = try DurationText.parse(text)
        } catch {
            return FuzzFinding.checkRejection(error, code: .invalidArgument, input: text.debugDescription)
        }
        guard duration >= .zero else { return FuzzFinding("\(text.debugDescription) parsed as \(duration)") }
        let printed = DurationText.format(duration)
        do {
            let again = try DurationText.parse(printed)
            // Printed with a Double's shortest digits: exact to the nanosecond up to about 100 days.
            let difference = (again - duration).nanoseconds.magnitude
            guard difference <= max(1, duration.nanoseconds.magnitude >> 50) else {
                return FuzzFinding(
                    "\(text.debugDescription) parsed as \(duration), printed '\(printed)', read as \(again)"
                )
            }
        } catch {
            return FuzzFinding("\(text.debugDescription) parsed as \(duration), printed '\(printed)', not read back")
        }
        return nil
    }

    /// `ReplayPace(parsing:)`: an accepted pace prints as text that parses back to it, and scales any recorded
    /// delay to a delay that is not negative.
    static func pace(_ data: Data) -> FuzzFinding? {
        let text = String(decoding: data, as: UTF8.self)
        let pace: ReplayPace
        do {
            pace = try ReplayPace(parsing: text)
        } catch {
            return FuzzFinding.checkRejection(error, code: .invalidArgument, input: text.debugDescription)
        }
        do {
            let again = try ReplayPace(parsing: pace.description)
            guard again == pace else {
                return FuzzFinding("\(text.debugDescription) parsed as \(pace), which parses back as \(again)")
            }
        } catch {
            return FuzzFinding("\(text.debugDescription) parsed as \(pace), which does not parse back: \(error)")
        }
        // Gaps as a tape can hold them: none, a microsecond, a second, a day, the largest, and one that is
        // negative (clocks of a damaged tape).
        for gap: Int64 in [0, 1_000, 1_000_000_000, 86_400_000_000_000, .max, -1] {
            let delay = pace.scale(gap)
            guard delay >= 0, pace != .fast || delay == 0 else {
                return FuzzFinding("\(text.debugDescription) scales a gap of \(gap) ns to \(delay) ns")
            }
        }
        return nil
    }

    /// `TimestampText.parse` (`sessions --since`): an accepted time, printed as the inspect commands print a
    /// session's start, reads back as the same time to the millisecond they show.
    static func timestamp(_ data: Data) -> FuzzFinding? {
        let text = String(decoding: data, as: UTF8.self)
        let nanoseconds: Int64
        do {
            nanoseconds = try TimestampText.parse(text)
        } catch {
            return FuzzFinding.checkRejection(error, code: .invalidArgument, input: text.debugDescription)
        }
        let printed = InspectFormat.timestamp(nanoseconds)
        // Printing cuts to the millisecond, towards the past, before 1970 as after.
        let shown = nanoseconds - (nanoseconds % 1_000_000 + 1_000_000) % 1_000_000
        do {
            let again = try TimestampText.parse(printed)
            guard again == shown else {
                return FuzzFinding(
                    "\(text.debugDescription) parsed as \(nanoseconds) ns, printed \(printed), read as \(again)"
                )
            }
        } catch {
            return FuzzFinding(
                "\(text.debugDescription) parsed as \(nanoseconds) ns, printed \(printed), not read back"
            )
        }
        return nil
    }

    /// `ProxyConfiguration` from a file, read both as YAML and as JSON, with and without upstreams required:
    /// an accepted file has routes with valid, distinct names.
    static func configuration(_ data: Data) -> FuzzFinding? {
        for path in ["fuzz.yaml", "fuzz.json"] {
            for requireUpstream in [true, false] {
                let configuration: ProxyConfiguration
                do {
                    configuration = try ProxyConfiguration.parse(data, path: path, requireUpstream: requireUpstream)
                } catch {
                    let input = "\(path) \(String(decoding: data, as: UTF8.self).debugDescription)"
                    if let finding = FuzzFinding.checkRejection(error, code: .invalidConfiguration, input: input) {
                        return finding
                    }
                    continue
                }
                let names = configuration.routes.map(\.name)
                guard !names.isEmpty, Set(names).count == names.count,
                    names.allSatisfy(ProxyConfiguration.isValidName),
                    !requireUpstream || configuration.routes.allSatisfy({ $0.upstream != nil })
                else {
                    return FuzzFinding("\(path) accepted with routes \(configuration.routes)")
                }
            }
        }
        return nil
    }
}
