import Foundation
import RelayCore

/// A parameter of a trace search that could not be used: which one, and why.
/// The API answers it with 400; the commands print it and exit 2.
public struct RelayTraceParameterError: Error, Hashable, Sendable, CustomStringConvertible {
    public var parameter: String
    public var reason: String

    public init(parameter: String, reason: String) {
        self.parameter = parameter
        self.reason = reason
    }

    public var description: String { "\(parameter): \(reason)" }
}

/// Turns the search's text parameters (the API's query string, the
/// commands' options) into a ``RelayTraceQuery``, with one wording of every
/// mistake for both.
public enum RelayTraceQueryParsing {
    /// The query parameters of `GET /api/v1/messages`, in documentation order.
    public static let parameterNames = [
        "sender", "recipient", "status", "since", "until", "client", "route", "message_id", "queue_id", "limit", "cursor",
    ]

    /// Builds a query from named text values (names as in ``parameterNames``).
    /// An empty text filter (sender, recipient, client, route, message_id,
    /// queue_id) counts as absent, as an empty form field means; an empty
    /// status, date, limit or cursor is refused like any other bad value.
    /// Unknown names are refused so that a misspelt filter never silently
    /// matches everything.
    public static func query(from parameters: [(name: String, value: String)], now: Date) throws(RelayTraceParameterError) -> RelayTraceQuery {
        var query = RelayTraceQuery()
        var seen: Set<String> = []
        for (name, value) in parameters {
            guard parameterNames.contains(name) else {
                throw RelayTraceParameterError(
                    parameter: name, reason: "unknown parameter (known: \(parameterNames.joined(separator: ", ")))")
            }
            guard seen.insert(name).inserted else {
                throw RelayTraceParameterError(parameter: name, reason: "given more than once")
            }
            let value = value.trimmingCharacters(in: .whitespaces)
            if value.isEmpty {
                if ["status", "since", "until", "limit", "cursor"].contains(name) {
                    throw RelayTraceParameterError(parameter: name, reason: "is empty")
                }
                continue
            }
            switch name {
            case "sender": query.sender = value
            case "recipient": query.recipient = value
            case "status": query.status = try status(value, parameter: name)
            case "since": query.since = try date(value, parameter: name, now: now)
            case "until": query.until = try date(value, parameter: name, now: now)
            case "client": query.client = value
            case "route": query.route = value
            case "message_id": query.messageID = value
            case "queue_id": query.queueID = value
            case "limit": query.limit = try limit(value, parameter: name)
            case "cursor": query.cursor = value
            default: break
            }
        }
        if let since = query.since, let until = query.until, until < since {
            throw RelayTraceParameterError(parameter: "until", reason: "is before since")
        }
        return query
    }

    /// The inverse of ``query(from:now:)``: the query as API parameters, dates
    /// as ISO 8601 (so the server's clock does not move a relative age).
    public static func parameters(of query: RelayTraceQuery) -> [(name: String, value: String)] {
        var parameters: [(name: String, value: String)] = []
        func add(_ name: String, _ value: String?) {
            if let value { parameters.append((name, value)) }
        }
        add("sender", query.sender)
        add("recipient", query.recipient)
        add("status", query.status?.rawValue)
        add("since", query.since.map(RelayAdminJSON.formatDate))
        add("until", query.until.map(RelayAdminJSON.formatDate))
        add("client", query.client)
        add("route", query.route)
        add("message_id", query.messageID)
        add("queue_id", query.queueID)
        add("limit", String(query.limit))
        add("cursor", query.cursor)
        return parameters
    }

    public static func status(_ text: String, parameter: String) throws(RelayTraceParameterError) -> RelayTraceStatus {
        guard let status = RelayTraceStatus(rawValue: text.lowercased()) else {
            throw RelayTraceParameterError(
                parameter: parameter,
                reason: "unknown status \"\(text)\" (one of \(RelayTraceStatus.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return status
    }

    public static func limit(_ text: String, parameter: String) throws(RelayTraceParameterError) -> Int {
        guard let limit = Int(text), (1...RelayTraceQuery.maximumLimit).contains(limit) else {
            throw RelayTraceParameterError(parameter: parameter, reason: "must be a whole number from 1 to \(RelayTraceQuery.maximumLimit), got \"\(text)\"")
        }
        return limit
    }

    /// An ISO 8601 date and time (`2026-05-01T09:30:00Z`, with or without
    /// fractional seconds, `Z` or an offset), or an age meaning "now minus":
    /// a number and a unit `s`, `m`, `h`, `d`, `w`, repeated if wanted (`1h30m`).
    public static func date(_ text: String, parameter: String, now: Date) throws(RelayTraceParameterError) -> Date {
        if let age = age(text) { return now.addingTimeInterval(-age) }
        if let date = RelayAdminJSON.parseDate(text) { return date }
        throw RelayTraceParameterError(
            parameter: parameter,
            reason: "\"\(text)\" is neither an ISO 8601 date and time (e.g. 2026-05-01T09:30:00Z) nor an age like 30m, 1h or 2d")
    }

    /// `30m`, `1h`, `2d`, `1h30m` in seconds; nil when `text` is not such an age.
    public static func age(_ text: String) -> TimeInterval? {
        let units: [Character: TimeInterval] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        var total: TimeInterval = 0
        var digits = ""
        var parts = 0
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
            } else if let unit = units[Character(character.lowercased())], !digits.isEmpty, digits.count <= 9, let count = Double(digits) {
                total += count * unit
                digits = ""
                parts += 1
            } else {
                return nil
            }
        }
        return digits.isEmpty && parts > 0 ? total : nil
    }
}
