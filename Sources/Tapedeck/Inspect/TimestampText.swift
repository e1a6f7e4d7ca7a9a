import Foundation

/// Reads the UTC times people type to filter a tape: `2026-11-25`, `2026-11-25T10:00:00Z`,
/// `2026-11-25T10:00:00.250Z`, or with an offset such as `+01:00` in place of `Z`.
///
/// Tapes store wall-clock times as nanoseconds since 1970 in 64 bits, which reach from 1677-09-21T00:12:44Z to
/// 2262-04-11T23:47:16Z; a time outside that range, or one that does not exist (February 30, hour 25), is refused
/// rather than rounded, wrapped or trapped on.
///
/// ```swift
/// let since = try TimestampText.parse("2026-11-25T10:00:00Z")  // nanoseconds since 1970
/// ```
public enum TimestampText {
    /// The accepted forms, for error messages.
    static let forms = "use 2026-11-25 or 2026-11-25T10:00:00Z"

    /// Parses a UTC date or date and time into nanoseconds since 1970.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument`, one line naming the text and the accepted forms.
    public static func parse(_ text: String) throws -> Int64 {
        func invalid(_ why: String) -> TapedeckError {
            TapedeckError(.invalidArgument, "invalid time '\(text)': \(why)")
        }
        var scanner = Scanner(Array(text.utf8))
        guard let year = scanner.digits(exactly: 4), scanner.take("-"),
            let month = scanner.digits(exactly: 2), scanner.take("-"),
            let day = scanner.digits(exactly: 2)
        else { throw invalid(forms) }
        guard (1...12).contains(month) else { throw invalid("there is no month \(month)") }
        guard (1...daysIn(month: month, year: year)).contains(day) else {
            throw invalid("month \(month) of \(year) has no day \(day)")
        }
        var seconds = daysSince1970(year: year, month: month, day: day) * 86_400
        var fraction: Int64 = 0
        if !scanner.atEnd {
            guard scanner.take("T") || scanner.take(" "), let hour = scanner.digits(exactly: 2), scanner.take(":"),
                let minute = scanner.digits(exactly: 2), scanner.take(":"), let second = scanner.digits(exactly: 2)
            else { throw invalid(forms) }
            guard hour < 24, minute < 60, second < 60 else {
                throw invalid(
                    "there is no time " + String(format: "%02d:%02d:%02d", hour, minute, second) + " in a day"
                )
            }
            seconds += Int64(hour * 3600 + minute * 60 + second)
            if scanner.take(".") {
                var digits = 0
                while let digit = scanner.digit() {
                    digits += 1
                    guard digits <= 9 else { throw invalid("at most 9 digits after the seconds") }
                    fraction = fraction * 10 + Int64(digit)
                }
                guard digits > 0 else { throw invalid(forms) }
                for _ in digits..<9 { fraction *= 10 }
            }
            if scanner.take("Z") {
                // UTC.
            } else if let sign = scanner.sign(), let hours = scanner.digits(exactly: 2), scanner.take(":"),
                let minutes = scanner.digits(exactly: 2), hours < 24, minutes < 60
            {
                seconds -= Int64(sign * (hours * 3600 + minutes * 60))
            } else {
                throw invalid("end the time with Z (UTC) or an offset such as +01:00")
            }
            guard scanner.atEnd else { throw invalid(forms) }
        }
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (nanoseconds, overflowAgain) = scaled.addingReportingOverflow(fraction)
        guard !overflow, !overflowAgain else {
            throw invalid("tapes hold times from 1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z")
        }
        return nanoseconds
    }

    private static func isLeap(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's days_from_civil).
    private static func daysSince1970(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let shiftedMonth = Int64(month > 2 ? month - 3 : month + 9)
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// A cursor over ASCII bytes.
    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index == bytes.count }

        mutating func take(_ character: Unicode.Scalar) -> Bool {
            guard index < bytes.count, bytes[index] == UInt8(ascii: character) else { return false }
            index += 1
            return true
        }

        mutating func digit() -> Int? {
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
                return nil
            }
            defer { index += 1 }
            return Int(bytes[index] - UInt8(ascii: "0"))
        }

        mutating func digits(exactly count: Int) -> Int? {
            var value = 0
            for _ in 0..<count {
                guard let digit = digit() else { return nil }
                value = value * 10 + digit
            }
            return value
        }

        mutating func sign() -> Int? {
            if take("+") { return 1 }
            if take("-") { return -1 }
            return nil
        }
    }
}
