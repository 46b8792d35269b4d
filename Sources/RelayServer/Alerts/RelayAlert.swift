import Foundation
import RelayCore

/// One webhook message: an alert firing (first time or a reminder) or resolved.
public struct RelayAlert: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        case firing, resolved
    }

    public enum Severity: String, Sendable, Hashable {
        /// Mail may be slowed or some clients affected.
        case warning
        /// Mail for a route or tenant is not going out.
        case critical
    }

    /// What the alert is about, stable while it fires (`route-paused:tenant`,
    /// `queue-depth`, `auth-burst`, `throttled:tenant`, `expiry:certificate:...`):
    /// repeats are suppressed and recovery is matched by it.
    public var key: String
    public var status: Status
    public var severity: Severity
    /// One line: `Route tenant paused`.
    public var title: String
    /// What happened and, when known, what to do.
    public var text: String
    /// Facts as key and value (route, reason, until, counts); sorted by key when sent.
    public var details: [String: String]
    public var at: Date

    public init(key: String, status: Status = .firing, severity: Severity, title: String, text: String, details: [String: String] = [:], at: Date) {
        self.key = key
        self.status = status
        self.severity = severity
        self.title = title
        self.text = text
        self.details = details
        self.at = at
    }
}

// MARK: - Payloads

extension RelayAlert {
    /// The body of the webhook POST in `format`, as JSON.
    /// - Parameter relay: the relay's host name, so that one channel can serve several relays.
    public func payload(format: RelayConfiguration.Alerts.Format, relay: String) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let data: Data?
        switch format {
        case .json: data = try? encoder.encode(JSONPayload(self, relay: relay))
        case .slack: data = try? encoder.encode(["text": slackText(relay: relay)])
        case .teams: data = try? encoder.encode(TeamsMessage(self, relay: relay))
        }
        // Encoding strings and dates cannot fail; an empty object keeps the type total.
        return data ?? Data("{}".utf8)
    }

    /// `[FIRING] title` or `[RESOLVED] title`, as chat messages start.
    var headline: String {
        "[\(status.rawValue.uppercased())] \(title)"
    }

    var sortedDetails: [(key: String, value: String)] {
        details.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// Slack's `mrkdwn`: `&`, `<` and `>` are the only characters to escape.
    func slackText(relay: String) -> String {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        let icon = status == .resolved ? ":white_check_mark:" : (severity == .critical ? ":rotating_light:" : ":warning:")
        var lines = ["\(icon) *\(escape(headline))* (m365-relay \(escape(relay)))", escape(text)]
        lines += sortedDetails.map { "• \(escape($0.key)): \(escape($0.value))" }
        lines.append("alert `\(escape(key))` at \(Self.timestamp(at))")
        return lines.joined(separator: "\n")
    }
}

/// `format: json`.
private struct JSONPayload: Encodable {
    var alert: String
    var status: String
    var severity: String
    var title: String
    var text: String
    var relay: String
    var at: String
    var details: [String: String]

    init(_ alert: RelayAlert, relay: String) {
        self.alert = alert.key
        status = alert.status.rawValue
        severity = alert.severity.rawValue
        title = alert.title
        text = alert.text
        self.relay = relay
        at = RelayAlert.timestamp(alert.at)
        details = alert.details
    }
}

/// `format: teams`: the message shape Teams Workflows ("When a Teams webhook
/// request is received") and the older connectors accept: one Adaptive Card
/// attachment, schema 1.4.
private struct TeamsMessage: Encodable {
    struct Attachment: Encodable {
        var contentType = "application/vnd.microsoft.card.adaptive"
        var content: Card
    }

    struct Card: Encodable {
        enum CodingKeys: String, CodingKey {
            case schema = "$schema"
            case type, version, body
        }

        var schema = "http://adaptivecards.io/schemas/adaptive-card.json"
        var type = "AdaptiveCard"
        var version = "1.4"
        var body: [Element]
    }

    /// A `TextBlock` or a `FactSet`; unused keys are left out.
    struct Element: Encodable {
        struct Fact: Encodable {
            var title: String
            var value: String
        }

        var type: String
        var text: String?
        var weight: String?
        var size: String?
        var color: String?
        var wrap: Bool?
        var facts: [Fact]?
    }

    var type = "message"
    var attachments: [Attachment]

    init(_ alert: RelayAlert, relay: String) {
        let color = alert.status == .resolved ? "good" : (alert.severity == .critical ? "attention" : "warning")
        let facts = alert.sortedDetails.map { Element.Fact(title: $0.key, value: $0.value) }
            + [.init(title: "relay", value: relay), .init(title: "alert", value: alert.key), .init(title: "at", value: RelayAlert.timestamp(alert.at))]
        let body: [Element] = [
            Element(type: "TextBlock", text: alert.headline, weight: "Bolder", size: "Medium", color: color, wrap: true),
            Element(type: "TextBlock", text: alert.text, wrap: true),
            Element(type: "FactSet", facts: facts),
        ]
        attachments = [Attachment(content: Card(body: body))]
    }
}
