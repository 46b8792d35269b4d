import Foundation
import RelayCore

/// The trace search as the dashboard's GET form and bookmarkable URL carry it:
/// `/trace?sender=&recipient=&status=&since=24h&client=&route=&message_id=&queue_id=&cursor=`.
struct DashboardSearch: Hashable, Sendable {
    var sender = ""
    var recipient = ""
    var status: RelayTraceStatus?
    /// `1h`, `24h`, `7d`, ... or empty for all time.
    var since = ""
    var client = ""
    var route = ""
    var messageID = ""
    var queueID = ""
    var cursor = ""

    /// The choices the form offers for `since`; any `<number><m|h|d>` is accepted in a URL.
    static let sinceChoices: [(value: String, label: String)] = [
        ("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"), ("30d", "last 30 days"), ("", "any time"),
    ]

    static let pageSize = 50

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    init() {}

    init(parameters: [String: String]) throws {
        func field(_ name: String) -> String { (parameters[name] ?? "").trimmingCharacters(in: .whitespaces) }
        sender = field("sender")
        recipient = field("recipient")
        client = field("client")
        route = field("route")
        messageID = field("message_id")
        queueID = field("queue_id")
        cursor = field("cursor")
        since = field("since")
        let statusText = field("status")
        if !statusText.isEmpty {
            guard let status = RelayTraceStatus(rawValue: statusText.lowercased()) else {
                throw Invalid(description: "Unknown status “\(statusText)”: use one of \(RelayTraceStatus.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            self.status = status
        }
        if !since.isEmpty, Self.interval(since) == nil {
            throw Invalid(description: "Unknown time range “\(since)”: use a number followed by m, h or d, such as 1h, 24h or 7d.")
        }
    }

    /// `90m`, `24h`, `7d` in seconds.
    static func interval(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let amount = Int(text.dropLast()), amount > 0, amount <= 100_000 else { return nil }
        switch unit {
        case "m": return TimeInterval(amount) * 60
        case "h": return TimeInterval(amount) * 3600
        case "d": return TimeInterval(amount) * 86_400
        default: return nil
        }
    }

    func query(now: Date) -> RelayTraceQuery {
        func optional(_ text: String) -> String? { text.isEmpty ? nil : text }
        return RelayTraceQuery(
            sender: optional(sender), recipient: optional(recipient), status: status,
            since: Self.interval(since).map { now.addingTimeInterval(-$0) }, until: nil,
            client: optional(client), route: optional(route), messageID: optional(messageID), queueID: optional(queueID),
            limit: Self.pageSize, cursor: optional(cursor))
    }

    /// The search's URL parameters, empty ones left out by `DashboardHTML.href`.
    var parameters: [(String, String?)] {
        [
            ("sender", sender), ("recipient", recipient), ("status", status?.rawValue), ("since", since), ("client", client),
            ("route", route), ("message_id", messageID), ("queue_id", queueID), ("cursor", cursor),
        ]
    }

    /// The GET form, filled with this search.
    func form() -> String {
        func input(_ name: String, _ label: String, _ value: String, placeholder: String) -> String {
            "<label>\(label)<input type=\"text\" name=\"\(name)\" id=\"search-\(name)\" value=\"\(DashboardHTML.escape(value))\" "
                + "placeholder=\"\(DashboardHTML.escape(placeholder))\" autocomplete=\"off\"></label>"
        }
        var html = "<form class=\"search\" id=\"trace-search\" method=\"get\" action=\"/trace\">"
        html += input("sender", "Sender contains", sender, placeholder: "scanner@contoso.com")
        html += input("recipient", "Recipient contains", recipient, placeholder: "alice@")
        html += "<label>Status<select name=\"status\" id=\"search-status\"><option value=\"\">any</option>"
        for candidate in RelayTraceStatus.allCases {
            html += "<option value=\"\(candidate.rawValue)\"\(candidate == status ? " selected" : "")>\(candidate.rawValue)</option>"
        }
        html += "</select></label>"
        html += "<label>Received<select name=\"since\" id=\"search-since\">"
        var choices = Self.sinceChoices
        if !choices.contains(where: { $0.value == since }) { choices.insert((since, "last \(since)"), at: 0) }
        for choice in choices {
            html += "<option value=\"\(DashboardHTML.escape(choice.value))\"\(choice.value == since ? " selected" : "")>\(DashboardHTML.escape(choice.label))</option>"
        }
        html += "</select></label>"
        html += input("client", "Client", client, placeholder: "scanners")
        html += input("route", "Route", route, placeholder: "tenant")
        html += input("message_id", "Message-ID", messageID, placeholder: "<id@host>")
        html += input("queue_id", "Queue id", queueID, placeholder: "16 characters")
        html += "<span><button type=\"submit\" id=\"search-submit\">Search</button> <a href=\"/trace\">clear</a></span>"
        html += "</form>\n"
        return html
    }
}
