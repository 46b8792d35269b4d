import Foundation
import RelayCore

/// `/`: queue counts, the mail flow chart, the queue with its actions, the
/// routes, and the search form.
struct DashboardOverview {
    var statistics: RelayQueueStatistics
    var flow: [RelayFlowHour]
    /// Queued, deferred and held messages, newest first.
    var queue: [RelayTraceSummary]
    /// Whether more such messages exist than `queue` shows.
    var queueHasMore: Bool
    var routes: [RelayRouteStatus]
    var now: Date

    /// The statuses the queue panel lists: those an administrator can act on.
    static let queueStatuses: [RelayTraceStatus] = [.queued, .deferred, .held]
    static let queueRowsPerStatus = 100

    func render() -> String {
        var body = ""
        body += "<section class=\"panel\" id=\"queue-counts\"><h2>Queue <small>all messages in the trace</small></h2><div class=\"tiles\">"
        let order: [RelayTraceStatus] = [.queued, .deferred, .held, .delivered, .failed, .bounced, .deleted]
        for status in order {
            let count = statistics.counts[status] ?? 0
            body += "<a class=\"tile\" data-status=\"\(status.rawValue)\" data-count=\"\(count)\" href=\"\(DashboardHTML.href("/trace", [("status", status.rawValue)]))\">"
            body += "<span class=\"count\">\(count)</span><span class=\"label\">\(status.rawValue)</span></a>"
        }
        body += "<div class=\"tile\" id=\"oldest-queued\"><span class=\"count\">"
        body += statistics.oldestQueuedAt.map { DashboardFormat.duration(now.timeIntervalSince($0)) } ?? "–"
        body += "</span><span class=\"label\">oldest queued</span></div></div></section>\n"

        body += "<section class=\"panel\" id=\"flow\"><h2>Mail flow <small>delivery attempts per hour, last 24 hours, UTC</small></h2>\n"
        body += DashboardFlowChart.render(flow)
        body += "</section>\n"

        body += "<section class=\"panel\" id=\"queue\"><h2>Waiting messages <small>queued, deferred and held</small></h2>\n"
        if queue.isEmpty {
            body += "<p class=\"muted\" id=\"queue-empty\">Nothing is waiting: every message was delivered or has finished.</p>\n"
        } else {
            body += DashboardPage.messageTable(queue, style: .queue, now: now, id: "queue-table")
            if queueHasMore {
                body += "<p class=\"muted\">More are waiting than shown: search by status in the <a href=\"/trace?status=queued\">message trace</a>.</p>\n"
            }
        }
        body += "</section>\n"

        body += "<section class=\"panel\" id=\"routes-panel\"><h2>Routes</h2>\n"
        body += routes.isEmpty ? "<p class=\"muted\">No routes are configured.</p>\n" : DashboardRoutes.render(routes, now: now)
        body += "</section>\n"

        body += "<section class=\"panel\" id=\"search\"><h2>Message trace</h2>\n\(DashboardSearch().form())</section>\n"
        return DashboardPage.document(title: "Overview", section: .overview, now: now, body: body)
    }
}

/// The routes panel: health, pauses, quota use per sending mailbox, token and credential expiry.
enum DashboardRoutes {
    /// Credentials expiring sooner than this are shown as a warning.
    static let credentialWarning: TimeInterval = 14 * 86_400

    static func render(_ routes: [RelayRouteStatus], now: Date) -> String {
        var html = "<div class=\"routes\" id=\"routes\">\n"
        for route in routes {
            html += "<article class=\"route\" data-route=\"\(DashboardHTML.escape(route.name))\" data-health=\"\(route.health.rawValue)\">"
            html += "<h3>\(DashboardHTML.escape(route.name)) <span class=\"badge health-\(route.health.rawValue)\">\(route.health.rawValue)</span>"
            html += " <span class=\"muted\">\(DashboardHTML.escape(route.mode))</span></h3><dl class=\"facts\">"
            if let tenant = route.tenantID { html += "<dt>Tenant</dt><dd>\(DashboardHTML.escape(tenant))</dd>" }
            if let fallback = route.fallback { html += "<dt>Fallback</dt><dd>\(DashboardHTML.escape(fallback))</dd>" }
            if route.health != .ok {
                if let until = route.heldUntil {
                    html += "<dt>\(route.health == .stopped ? "Stopped" : "Paused") until</dt>"
                    html += "<dd class=\"warn\">\(DashboardFormat.time(until, now: now)) (\(DashboardFormat.relative(until, now: now)))</dd>"
                }
                if let reason = route.reason { html += "<dt>Reason</dt><dd class=\"reply mono\">\(DashboardHTML.escape(reason))</dd>" }
            }
            html += "<dt>Access token</dt><dd>\(expiry(route.tokenExpiresAt, now: now, warnBefore: 0, none: "none cached"))</dd>"
            html += "<dt>Certificate or secret</dt><dd>\(expiry(route.credentialExpiresAt, now: now, warnBefore: credentialWarning, none: "no expiry known"))</dd>"
            html += "</dl>"
            if !route.mailboxes.isEmpty {
                html += "<div class=\"scroll\"><table class=\"quota\"><thead><tr><th>Sending mailbox</th><th>Messages / min</th><th>Recipients / day</th>"
                html += "<th>Connections</th></tr></thead><tbody>"
                for mailbox in route.mailboxes {
                    html += "<tr data-mailbox=\"\(DashboardHTML.escape(mailbox.mailbox))\"><td>\(DashboardHTML.escape(mailbox.mailbox))"
                    if let paused = mailbox.pausedUntil, paused > now {
                        html += "<br><span class=\"warn\">paused until \(DashboardFormat.time(paused, now: now))</span>"
                    }
                    html += "</td><td>\(meter(mailbox.messagesPerMinute, "messages this minute"))</td>"
                    html += "<td>\(meter(mailbox.recipientsPerDay, "recipients in 24 hours"))</td>"
                    html += "<td>\(meter(mailbox.connections, "open connections"))</td></tr>"
                }
                html += "</tbody></table></div>"
            }
            html += "</article>\n"
        }
        html += "</div>\n"
        return html
    }

    /// A small bar of `used` out of `limit` (green, then amber past half, red past 80 %).
    static func meter(_ use: RelayMailboxQuota.Use, _ what: String) -> String {
        guard let limit = use.limit, limit > 0 else {
            return "<span class=\"quota-use\" data-used=\"\(use.used)\" title=\"\(use.used) \(what), no limit\">\(use.used) <span class=\"muted\">(no limit)</span></span>"
        }
        let shown = min(use.used, limit)
        let high = Double(limit) * 0.8, low = Double(limit) * 0.5
        return "<span class=\"quota-use\" data-used=\"\(use.used)\" data-limit=\"\(limit)\" title=\"\(use.used) of \(limit) \(what)\">"
            + "<meter min=\"0\" max=\"\(limit)\" low=\"\(low)\" high=\"\(high)\" optimum=\"0\" value=\"\(shown)\">\(use.used) of \(limit)</meter> "
            + "\(use.used)/\(limit)</span>"
    }

    static func expiry(_ date: Date?, now: Date, warnBefore: TimeInterval, none: String) -> String {
        guard let date else { return "<span class=\"muted\">\(none)</span>" }
        let remaining = date.timeIntervalSince(now)
        let level = remaining <= 0 ? "bad" : remaining < warnBefore ? "warn" : "fine"
        let text = remaining <= 0 ? "expired \(DashboardFormat.duration(remaining)) ago" : "expires in \(DashboardFormat.duration(remaining))"
        return "<span class=\"expiry \(level)\" title=\"\(DashboardFormat.timestamp(date))\">\(text)</span>"
    }
}

/// `/trace`: the search form and one page of results, newest first.
struct DashboardTraceView {
    var search: DashboardSearch
    var page: RelayTracePage
    var now: Date

    func render() -> String {
        var body = "<section class=\"panel\" id=\"search\"><h2>Message trace</h2>\n\(search.form())</section>\n"
        body += "<section class=\"panel\" id=\"results\"><h2>Messages <small id=\"result-count\" data-count=\"\(page.messages.count)\">"
        body += "\(page.messages.count) shown\(page.nextCursor == nil ? "" : ", more on the next page"), newest first</small></h2>\n"
        if page.messages.isEmpty {
            body += "<p class=\"muted\" id=\"no-results\">No message matches this search.</p>\n"
        } else {
            body += DashboardPage.messageTable(page.messages, style: .trace, now: now, id: "results-table")
        }
        var pager: [String] = []
        if !search.cursor.isEmpty {
            var first = search
            first.cursor = ""
            pager.append("<a href=\"\(DashboardHTML.href("/trace", first.parameters))\">← Newest</a>")
        }
        if let next = page.nextCursor {
            var older = search
            older.cursor = next
            pager.append("<a id=\"older\" href=\"\(DashboardHTML.href("/trace", older.parameters))\">Older messages →</a>")
        }
        if !pager.isEmpty { body += "<div class=\"pager\">\(pager.joined(separator: " "))</div>\n" }
        body += "</section>\n"
        return DashboardPage.document(title: "Message trace", section: .trace, now: now, body: body)
    }
}

/// `/messages/{id}`: one message's facts and every event of its life.
struct DashboardMessageView {
    var timeline: RelayTraceTimeline
    var now: Date

    func render() -> String {
        let message = timeline.message, envelope = timeline.envelope
        var body = "<section class=\"panel\" id=\"message\" data-id=\"\(DashboardHTML.escape(message.id))\" data-status=\"\(message.status.rawValue)\">"
        body += "<h2>Message <span class=\"mono\">\(DashboardHTML.escape(message.id))</span> \(DashboardPage.statusBadge(message.status))</h2>\n"
        let buttons = DashboardPage.actionButtons(id: message.id, status: message.status)
        if !buttons.isEmpty { body += "<p class=\"actions\" id=\"message-actions\">\(buttons)</p>\n" }
        body += "<dl class=\"facts\">"
        func fact(_ name: String, _ html: String) { body += "<dt>\(name)</dt><dd>\(html)</dd>" }
        fact("Sender", "<span id=\"message-sender\">\(DashboardPage.sender(message.sender))</span>")
        if let original = envelope.originalSender { fact("Sender as sent", DashboardPage.sender(original)) }
        fact("Client", "\(DashboardHTML.escape(message.client)) <span class=\"mono\">\(DashboardHTML.escape(message.clientAddress))</span>")
        fact("HELO", "<span class=\"mono\">\(DashboardHTML.escape(envelope.heloName))</span>")
        fact("TLS", envelope.tlsVersion.map(DashboardHTML.escape) ?? "<span class=\"muted\">none</span>")
        if let identity = envelope.authenticatedAs { fact("Authenticated as", DashboardHTML.escape(identity)) }
        fact("Route", DashboardHTML.escape(message.route))
        fact("Size", DashboardFormat.size(message.size))
        fact("Message-ID", message.messageID.map { "<span class=\"mono\" id=\"message-id\">\(DashboardHTML.escape($0))</span>" } ?? "<span class=\"muted\">unknown</span>")
        var flags: [String] = []
        if envelope.smtpUTF8 { flags.append("SMTPUTF8") }
        if envelope.body8Bit { flags.append("8-bit body") }
        if !flags.isEmpty { fact("Extensions", flags.joined(separator: ", ")) }
        fact("Received", DashboardFormat.time(message.receivedAt, now: now))
        if let finished = message.finishedAt { fact("Finished", DashboardFormat.time(finished, now: now)) }
        if let next = message.nextAttemptAt, [.queued, .deferred].contains(message.status) {
            fact("Next attempt", "\(DashboardFormat.time(next, now: now)) (\(DashboardFormat.relative(next, now: now)))")
        }
        fact("Attempts", "\(message.attempts)")
        if let reply = message.lastReply { fact("Last reply", "<span class=\"reply mono\">\(DashboardHTML.escape(reply))</span>") }
        fact("Content", timeline.hasContent ? "stored" : "<span class=\"muted\">removed</span>")
        if let notes = envelope.policyNotes, !notes.isEmpty {
            fact("Policy", notes.map(DashboardHTML.escape).joined(separator: "<br>"))
        }
        body += "</dl></section>\n"

        body += "<section class=\"panel\" id=\"recipients\"><h2>Recipients <small>\(message.recipients.count)</small></h2>"
        body += "<div class=\"scroll\"><table><thead><tr><th>Address</th><th>Status</th><th>Last reply</th></tr></thead><tbody>"
        for recipient in message.recipients {
            body += "<tr data-recipient=\"\(DashboardHTML.escape(recipient.address))\"><td>\(DashboardHTML.escape(recipient.address))</td>"
            body += "<td>\(recipient.status.rawValue)</td><td class=\"reply mono\">\(DashboardHTML.escape(recipient.lastReply ?? ""))</td></tr>"
        }
        body += "</tbody></table></div></section>\n"

        body += "<section class=\"panel\" id=\"events\"><h2>Timeline <small>\(timeline.events.count) events, oldest first</small></h2>"
        body += "<ol class=\"timeline\" id=\"timeline\">\n"
        for event in timeline.events {
            body += "<li class=\"event\" data-kind=\"\(event.kind.rawValue)\"><span class=\"when\">\(DashboardFormat.time(event.at, now: now))</span>"
            body += "<span class=\"badge kind-\(event.kind.rawValue)\">\(event.kind.rawValue)</span>"
            body += "<span class=\"summary mono\">\(DashboardHTML.escape(event.summary))</span>"
            if !event.details.isEmpty {
                body += "<dl class=\"facts details\">"
                for key in event.details.keys.sorted() {
                    body += "<dt>\(DashboardHTML.escape(key))</dt><dd class=\"mono\">\(detail(key: key, value: event.details[key] ?? ""))</dd>"
                }
                body += "</dl>"
            }
            body += "</li>\n"
        }
        body += "</ol></section>\n"
        return DashboardPage.document(title: "Message \(message.id)", section: .message, now: now, body: body)
    }

    /// A detail's value; the id of a delivery status notification links to its own timeline.
    private func detail(key: String, value: String) -> String {
        if key == "dsn_id", RelayQueueID(validating: value) != nil { return DashboardPage.messageLink(value) }
        return DashboardHTML.escape(value)
    }
}
