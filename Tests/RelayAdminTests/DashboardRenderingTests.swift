import Foundation
import RelayCore
import Testing
@testable import RelayAdmin

/// The dashboard's pure parts: escaping, the chart's geometry and data, the
/// search's URL form, the routes panel; with values built here.
@Suite("Dashboard rendering")
struct DashboardRenderingTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15 08:00:00 UTC

    @Test(
        "escape leaves no markup, attribute quote or control character",
        arguments: [
            "<script>alert(1)</script>",
            "\"><img src=x onerror=alert(1)>",
            "' onmouseover='alert(1)",
            "a&b&amp;c",
            "`backtick`",
            "nul\u{0}esc\u{1B}del\u{7F}c1\u{85}",
            "</textarea></title><svg/onload=alert(1)>",
        ])
    func escapeNeutralisesHostileText(_ hostile: String) {
        let escaped = DashboardHTML.escape(hostile)
        for forbidden in ["<", ">", "\"", "'", "`", "\u{0}", "\u{1B}", "\u{7F}", "\u{85}"] {
            #expect(!escaped.contains(forbidden), "\(forbidden.debugDescription) survived in \(escaped)")
        }
        // Every `&` starts an entity the escaper wrote.
        #expect(escaped.replacing(/&(amp|lt|gt|quot|#39|#96);/, with: "").contains("&") == false)
    }

    @Test("escape keeps ordinary text, Unicode and line breaks as they are")
    func escapeKeepsText() {
        #expect(DashboardHTML.escape("jörg.müller@bücher.example 日本\n\ttab") == "jörg.müller@bücher.example 日本\n\ttab")
        #expect(DashboardHTML.escape("a < b & c > \"d\"") == "a &lt; b &amp; c &gt; &quot;d&quot;")
    }

    @Test("links percent-encode their values and are escaped for the attribute")
    func hrefEncodesValues() {
        let href = DashboardHTML.href("/trace", [("sender", "a b&c=\"d\"@x"), ("status", nil), ("since", "")])
        #expect(href == "/trace?sender=a%20b%26c%3D%22d%22@x")
        #expect(DashboardHTML.parseQuery("sender=a+b%26c&sender=second&status=") == ["sender": "a b&c", "status": ""])
    }

    @Test(
        "the chart's axis rounds up to a 1-2-5 step",
        arguments: [(0, 4, 1), (1, 1, 1), (3, 3, 1), (4, 4, 1), (7, 8, 2), (9, 10, 5), (18, 20, 5), (37, 40, 10), (120, 150, 50), (999, 1000, 500)])
    func chartScale(maximum: Int, top: Int, step: Int) {
        let scale = DashboardFlowChart.scale(maximum: maximum)
        #expect(scale.top == top && scale.step == step, "maximum \(maximum): got \(scale)")
        #expect(scale.top >= maximum && scale.top % scale.step == 0)
    }

    @Test("the chart covers the current hour and the 23 before it")
    func chartWindow() {
        let window = DashboardFlowChart.window(now: Self.now.addingTimeInterval(1_234))
        #expect(window.until == Self.now.addingTimeInterval(3_600))
        #expect(window.since == Self.now.addingTimeInterval(-23 * 3_600))
    }

    @Test("each hour is a group with its counts, tooltips and one bar per non-empty outcome")
    func chartBars() {
        let window = DashboardFlowChart.window(now: Self.now)
        var hours = (0..<24).map { RelayFlowHour(start: window.since.addingTimeInterval(Double($0) * 3_600), delivered: 0, deferred: 0, failed: 0) }
        hours[21] = RelayFlowHour(start: hours[21].start, delivered: 7, deferred: 2, failed: 0)
        hours[23] = RelayFlowHour(start: hours[23].start, delivered: 1, deferred: 0, failed: 3)
        let svg = DashboardFlowChart.render(hours)

        let groups = elements(svg, startingWith: "<g class=\"hour\"")
        #expect(groups.count == 24)
        #expect(groups[21]["data-hour"] == "2027-01-15T06:00:00Z")
        #expect(groups[21]["data-delivered"] == "7" && groups[21]["data-deferred"] == "2" && groups[21]["data-failed"] == "0")
        let bars = elements(svg, startingWith: "<rect class=\"bar ")
        #expect(bars.map { $0["data-status"] ?? "" } == ["delivered", "deferred", "delivered", "failed"])
        #expect(bars.map { $0["data-count"] ?? "" } == ["7", "2", "1", "3"])
        // The tallest stack (9) reaches the axis top (10): 90 % of the plot height.
        let heights = bars.compactMap { $0["height"].flatMap(Double.init) }
        #expect(abs((heights[0] + heights[1]) / (192.0 * 0.9) - 1) < 0.01, "stack height \(heights[0] + heights[1])")
        #expect(svg.contains("<title>06:00–07:00 UTC: 7 delivered, 2 deferred, 0 failed</title>"))
        #expect(svg.contains("<title>08:00 UTC: 3 failed</title>"))
        // Labels every third hour, legend with totals.
        #expect(svg.contains(">06:00</text>") && !svg.contains(">07:00</text>"))
        #expect(svg.contains("Delivered <strong class=\"legend-count\">8</strong>"))
        #expect(svg.contains("Failed <strong class=\"legend-count\">3</strong>"))
        #expect(!svg.contains("No delivery attempts"))
    }

    @Test("a day without attempts says so")
    func chartEmpty() {
        let window = DashboardFlowChart.window(now: Self.now)
        let hours = (0..<24).map { RelayFlowHour(start: window.since.addingTimeInterval(Double($0) * 3_600), delivered: 0, deferred: 0, failed: 0) }
        let svg = DashboardFlowChart.render(hours)
        #expect(svg.contains("No delivery attempts in the last 24 hours"))
        #expect(elements(svg, startingWith: "<rect class=\"bar ").isEmpty)
    }

    @Test("a search round-trips through its URL and refuses unknown statuses and ranges")
    func searchParameters() throws {
        let search = try DashboardSearch(parameters: ["sender": " scanner@contoso.com ", "status": "Deferred", "since": "24h", "queue_id": "", "cursor": "abc"])
        #expect(search.sender == "scanner@contoso.com" && search.status == .deferred)
        let query = search.query(now: Self.now)
        #expect(query.since == Self.now.addingTimeInterval(-86_400))
        #expect(query.queueID == nil && query.cursor == "abc" && query.limit == DashboardSearch.pageSize)
        #expect(DashboardHTML.href("/trace", search.parameters) == "/trace?sender=scanner@contoso.com&amp;status=deferred&amp;since=24h&amp;cursor=abc")
        #expect(throws: DashboardSearch.Invalid.self) { try DashboardSearch(parameters: ["status": "lost"]) }
        #expect(throws: DashboardSearch.Invalid.self) { try DashboardSearch(parameters: ["since": "yesterday"]) }
        #expect(DashboardSearch.interval("90m") == 5_400 && DashboardSearch.interval("7d") == 604_800 && DashboardSearch.interval("0h") == nil)
    }

    @Test("the form echoes the search escaped")
    func searchFormEscapes() throws {
        let search = try DashboardSearch(parameters: ["sender": "\"><script>alert(1)</script>", "since": "7d"])
        let form = search.form()
        #expect(!form.contains("<script>"))
        #expect(form.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""))
        #expect(form.contains("<option value=\"7d\" selected>"))
    }

    @Test("routes show health, pause, quota bars and expiries")
    func routesPanel() {
        let routes = [
            RelayRouteStatus(
                name: "tenant", mode: "graph",
                mailboxes: [
                    RelayMailboxQuota(
                        mailbox: "scanner@contoso.com", messagesPerMinute: .init(used: 12, limit: 30), recipientsPerDay: .init(used: 50, limit: nil),
                        connections: .init(used: 1, limit: 3))
                ],
                tokenExpiresAt: Self.now.addingTimeInterval(-120), credentialExpiresAt: Self.now.addingTimeInterval(3 * 86_400)),
            RelayRouteStatus(
                name: "<b>smtp</b>", mode: "smtp", health: .stopped, heldUntil: Self.now.addingTimeInterval(1_800), reason: "550 5.7.708 <i>tenant</i>"),
        ]
        let html = DashboardRoutes.render(routes, now: Self.now)
        #expect(html.contains("<meter min=\"0\" max=\"30\" low=\"15.0\" high=\"24.0\" optimum=\"0\" value=\"12\">"))
        #expect(html.contains("50 <span class=\"muted\">(no limit)</span>"))
        #expect(html.contains("<span class=\"expiry bad\" title=\"2027-01-15 07:58:00 UTC\">expired 2 min ago</span>"))
        #expect(html.contains("expiry warn") && html.contains("expires in 3 d"))
        #expect(html.contains("data-health=\"stopped\"") && html.contains("Stopped until") && html.contains("(in 30 min)"))
        #expect(html.contains("&lt;b&gt;smtp&lt;/b&gt;") && html.contains("550 5.7.708 &lt;i&gt;tenant&lt;/i&gt;"))
        #expect(!html.contains("<b>") && !html.contains("<i>"))
    }

    @Test("buttons match what the store allows for each status")
    func actionsPerStatus() {
        #expect(DashboardPage.actions(for: .queued) == [.retry, .hold, .delete])
        #expect(DashboardPage.actions(for: .deferred) == [.retry, .hold, .delete])
        #expect(DashboardPage.actions(for: .held) == [.release, .delete])
        for status in [RelayTraceStatus.delivered, .failed, .bounced, .deleted] { #expect(DashboardPage.actions(for: status).isEmpty) }
    }

    @Test("durations and sizes read naturally", arguments: [(42.0, "42 s"), (600, "10 min"), (3_600, "1 h"), (3_900, "1 h 5 min"), (90_000, "1 d 1 h"), (-172_800, "2 d")])
    func durations(seconds: Double, text: String) {
        #expect(DashboardFormat.duration(seconds) == text)
    }

    @Test func sizes() {
        #expect(DashboardFormat.size(812) == "812 B")
        #expect(DashboardFormat.size(14_540) == "14.2 KB")
        #expect(DashboardFormat.size(3_250_000) == "3.1 MB")
        #expect(DashboardFormat.timestamp(Self.now) == "2027-01-15 08:00:00 UTC")
    }
}
