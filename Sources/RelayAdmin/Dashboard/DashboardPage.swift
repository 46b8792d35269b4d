import Foundation
import RelayCore

/// The page shell and the pieces several pages share (badges, buttons, the message table).
enum DashboardPage {
    enum Section: String { case overview, trace, message }

    static func document(title: String, section: Section, now: Date, body: String) -> String {
        func link(_ target: Section, _ href: String, _ label: String) -> String {
            "<a href=\"\(href)\"\(target == section ? " aria-current=\"page\"" : "")>\(label)</a>"
        }
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="referrer" content="no-referrer">
            <title>\(DashboardHTML.escape(title)) · m365-relay</title>
            <link rel="icon" href="data:,">
            <style>
            \(DashboardAssets.style)
            </style>
            <script src="\(DashboardAssets.scriptPath)" defer></script>
            </head>
            <body data-page="\(section.rawValue)">
            <header class="top">
            <h1>m365-relay</h1>
            <nav>\(link(.overview, "/", "Overview")) \(link(.trace, "/trace", "Message trace"))</nav>
            <span class="spacer"></span>
            <span class="muted">\(DashboardFormat.timestamp(now))</span>
            <a href="" id="refresh">Refresh</a>
            </header>
            <main>
            <div id="notice" role="alert"></div>
            \(body)
            </main>
            <footer>Times are UTC. Rendered \(DashboardFormat.iso(now)).</footer>
            </body>
            </html>

            """
    }

    static func statusBadge(_ status: RelayTraceStatus) -> String {
        "<span class=\"badge status-\(status.rawValue)\" data-status=\"\(status.rawValue)\">\(status.rawValue)</span>"
    }

    /// The administrator's actions that fit a message's status (see RelayTraceStore.apply).
    static func actions(for status: RelayTraceStatus) -> [RelayQueueAction] {
        RelayQueueAction.applicable(to: status)
    }

    static func actionButtons(id: String, status: RelayTraceStatus) -> String {
        let escapedID = DashboardHTML.escape(id)
        return actions(for: status).map { action in
            "<button type=\"button\" class=\"action\" data-action=\"\(action.rawValue)\" data-id=\"\(escapedID)\" "
                + "title=\"\(actionHelp(action))\">\(action.rawValue)</button>"
        }.joined()
    }

    private static func actionHelp(_ action: RelayQueueAction) -> String {
        switch action {
        case .retry: "Attempt delivery now"
        case .hold: "Do not deliver until released"
        case .release: "Queue for delivery now"
        case .delete: "Remove the message; it will not be delivered"
        }
    }

    static func sender(_ sender: String) -> String {
        sender.isEmpty ? "<span class=\"muted\">&lt;&gt; (null sender)</span>" : DashboardHTML.escape(sender)
    }

    /// The first recipients, with the rest counted; every address and its status in the tooltip.
    static func recipients(_ recipients: [RelayRecipient], shown: Int = 2) -> String {
        let tooltip = recipients.map { "\($0.address) (\($0.status.rawValue))" }.joined(separator: "\n")
        var text = recipients.prefix(shown).map { DashboardHTML.escape($0.address) }.joined(separator: ", ")
        if recipients.count > shown { text += " <span class=\"muted\">+\(recipients.count - shown) more</span>" }
        return "<span title=\"\(DashboardHTML.escape(tooltip))\">\(text)</span>"
    }

    static func messageLink(_ id: String) -> String {
        "<a class=\"mono message-link\" href=\"/messages/\(DashboardHTML.escape(DashboardHTML.percentEncode(id)))\">\(DashboardHTML.escape(id))</a>"
    }

    /// Long replies are cut in the table; the whole text stays in the tooltip and on the message page.
    static func reply(_ text: String?, limit: Int = 120) -> String {
        guard let text, !text.isEmpty else { return "" }
        let short = text.count > limit ? String(text.prefix(limit)) + "…" : text
        return "<span class=\"reply mono\" title=\"\(DashboardHTML.escape(text))\">\(DashboardHTML.escape(short))</span>"
    }

    enum TableStyle { case queue, trace }

    static func messageTable(_ messages: [RelayTraceSummary], style: TableStyle, now: Date, id tableID: String) -> String {
        var html = "<div class=\"scroll\"><table id=\"\(tableID)\" class=\"messages\"><thead><tr>"
        html += "<th>Queue id</th><th>Status</th><th>Received</th><th>Sender</th><th>Recipients</th>"
        switch style {
        case .queue: html += "<th>Route</th><th class=\"num\">Attempts</th><th>Next attempt</th><th>Last reply</th><th>Actions</th>"
        case .trace: html += "<th>Client</th><th>Route</th><th class=\"num\">Size</th><th>Message-ID</th><th class=\"num\">Attempts</th><th>Last reply</th>"
        }
        html += "</tr></thead><tbody>\n"
        for message in messages {
            html += "<tr class=\"message\" data-id=\"\(DashboardHTML.escape(message.id))\" data-status=\"\(message.status.rawValue)\" "
            html += "data-sender=\"\(DashboardHTML.escape(message.sender))\">"
            html += "<td>\(messageLink(message.id))</td><td class=\"status\">\(statusBadge(message.status))</td>"
            html += "<td>\(DashboardFormat.relativeTime(message.receivedAt, now: now))</td>"
            html += "<td class=\"sender\">\(sender(message.sender))</td><td>\(recipients(message.recipients))</td>"
            switch style {
            case .queue:
                html += "<td>\(DashboardHTML.escape(message.route))</td><td class=\"num\">\(message.attempts)</td>"
                html += "<td>\(nextAttempt(message, now: now))</td>"
                html += "<td>\(reply(message.lastReply, limit: 80))</td>"
                html += "<td class=\"actions\">\(actionButtons(id: message.id, status: message.status))</td>"
            case .trace:
                html += "<td>\(DashboardHTML.escape(message.client))<br><span class=\"muted mono\">\(DashboardHTML.escape(message.clientAddress))</span></td>"
                html += "<td>\(DashboardHTML.escape(message.route))</td><td class=\"num\">\(DashboardFormat.size(message.size))</td>"
                html += "<td class=\"mono\">\(DashboardHTML.escape(message.messageID ?? ""))</td><td class=\"num\">\(message.attempts)</td>"
                html += "<td>\(reply(message.lastReply, limit: 80))</td>"
            }
            html += "</tr>\n"
        }
        html += "</tbody></table></div>\n"
        return html
    }

    /// When the next attempt is due; "due now" once that time has passed (a busy or stopped relay).
    static func nextAttempt(_ message: RelayTraceSummary, now: Date) -> String {
        guard message.status != .held else { return "<span class=\"muted\">held</span>" }
        guard let next = message.nextAttemptAt else { return "" }
        return next <= now ? "<span title=\"\(DashboardFormat.timestamp(next))\">due now</span>" : DashboardFormat.relativeTime(next, now: now)
    }

    /// A whole page saying what went wrong: unknown message, bad search, unreadable store.
    static func problem(title: String, detail: String, now: Date) -> String {
        document(
            title: title, section: .message, now: now,
            body: """
                <section class="panel problem" id="problem"><h2>\(DashboardHTML.escape(title))</h2>
                <p>\(DashboardHTML.escape(detail))</p>
                <p><a href="/">Back to the overview</a> · <a href="/trace">Search the message trace</a></p></section>
                """)
    }
}
