import Foundation

/// The query of `GET /api/sessions`, read from its parameters: filters, order and page.
struct SessionListParameters: Sendable {
    /// The filters, order and page, as the tape reads them.
    var query = SessionQuery()
    /// Only sessions with an event whose payload holds `pattern` (with grep's escapes), or matches it as a
    /// regular expression.
    struct ContentSearch: Sendable, Hashable {
        var pattern: String
        var regex: Bool
    }

    /// The content search, when there is one.
    var search: ContentSearch?

    /// The page size unless told otherwise, and the most a page may hold.
    static let defaultLimit = 100
    static let maximumLimit = 1000

    /// Reads `parameters`.
    ///
    /// - Throws: ``ControlError`` (400) naming a parameter whose value is not understood.
    init(_ parameters: [String: String]) throws {
        query.includeProbes = parameters["probes"] == "1"
        query.offset = try Self.integer(parameters, "offset", in: 0...Int.max) ?? 0
        query.limit = try Self.integer(parameters, "limit", in: 1...Self.maximumLimit) ?? Self.defaultLimit
        if let sort = parameters["sort"] {
            guard let column = SessionSort(rawValue: sort) else {
                throw ControlError(
                    .badRequest,
                    "invalid sort '\(sort)': use one of \(SessionSort.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            query.sort = column
        }
        switch parameters["order"] {
        case nil, "asc": query.descending = false
        case "desc": query.descending = true
        case let order?: throw ControlError(.badRequest, "invalid order '\(order)': use asc or desc")
        }
        query.route = Self.nonEmpty(parameters["route"])
        query.label = Self.nonEmpty(parameters["label"])
        if let outcome = Self.nonEmpty(parameters["outcome"]) {
            guard let value = SessionOutcome(rawValue: outcome) else {
                throw ControlError(
                    .badRequest,
                    "invalid outcome '\(outcome)': use one of "
                        + SessionOutcome.allCases.map(\.rawValue).joined(separator: ", ")
                )
            }
            query.outcome = value
            if value == .probe { query.includeProbes = true }
        }
        query.sinceNanoseconds = try Self.time(parameters, "since")
        query.untilNanoseconds = try Self.time(parameters, "until")
        if let pattern = Self.nonEmpty(parameters["q"]) {
            search = ContentSearch(pattern: pattern, regex: parameters["regex"] == "1" || parameters["regex"] == "true")
        }
    }

    private static func nonEmpty(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }

    /// An integer parameter within `range`, or nil when absent or empty.
    static func integer(_ parameters: [String: String], _ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = nonEmpty(parameters[name]) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            let bound =
                range.upperBound == Int.max
                ? "\(range.lowerBound) or more" : "\(range.lowerBound) to \(range.upperBound)"
            throw ControlError(.badRequest, "invalid \(name) '\(text)': use a whole number from \(bound)")
        }
        return value
    }

    private static func time(_ parameters: [String: String], _ name: String) throws -> Int64? {
        guard let text = nonEmpty(parameters[name]) else { return nil }
        do {
            return try TimestampText.parse(text)
        } catch let error as TapedeckError {
            throw ControlError(.badRequest, "invalid \(name): \(error.message)")
        }
    }
}
