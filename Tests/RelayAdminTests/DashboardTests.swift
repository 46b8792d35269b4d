import Foundation
import Hummingbird
import RelayCore
import RelayStorage
import RelayTestSupport
import Testing
@testable import RelayAdmin

/// The dashboard's pages as served: a live Hummingbird server on 127.0.0.1
/// over a real SQLite queue holding delivered, deferred, failed, held, queued
/// and hostile messages.
@Suite("Dashboard pages")
struct DashboardTests {
    @Test("/ shows the queue counts, the 24-hour chart, the waiting messages with their actions, and the routes")
    func overview() async throws {
        let fixture = try await DashboardFixture()
        try await withDashboardServer(backend: fixture.backend) { port in
            let page = try await fetch("/", port: port)
            #expect(page.status == 200)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            #expect(page.headers[.cacheControl] == "no-store")
            let html = page.body

            let tiles = Dictionary(uniqueKeysWithValues: elements(html, startingWith: "<a class=\"tile\"").map { ($0["data-status"] ?? "", $0["data-count"] ?? "") })
            #expect(tiles == ["queued": "1", "deferred": "3", "held": "1", "delivered": "3", "failed": "1", "bounced": "0", "deleted": "0"])

            // The chart: every attempt in the bar of the hour it finished in.
            let hours = elements(html, startingWith: "<g class=\"hour\"")
            #expect(hours.count == 24)
            var expected: [String: [String: Int]] = [:]
            for attempt in fixture.attempts {
                let hour = DashboardFormat.iso(Date(timeIntervalSince1970: (attempt.finishedAt.timeIntervalSince1970 / 3_600).rounded(.down) * 3_600))
                expected[hour, default: [:]][attempt.outcome, default: 0] += 1
            }
            for hour in hours {
                let counts = expected[hour["data-hour"] ?? ""] ?? [:]
                for status in ["delivered", "deferred", "failed"] {
                    #expect(hour["data-\(status)"] == "\(counts[status] ?? 0)", "\(status) in the hour \(hour["data-hour"] ?? "?")")
                }
            }
            #expect(hours.last?["data-hour"] == DashboardFormat.iso(DashboardFlowChart.window(now: Date()).until.addingTimeInterval(-3_600)))
            #expect(html.contains("Delivered <strong class=\"legend-count\">3</strong>"))

            // Waiting messages: queued, deferred and held, with the buttons their status allows; finished ones are not there.
            let rows = elements(html, startingWith: "<tr class=\"message\"")
            let statuses = Dictionary(uniqueKeysWithValues: rows.map { ($0["data-id"] ?? "", $0["data-status"] ?? "") })
            var waiting = [fixture.queued.rawValue: "queued", fixture.held.rawValue: "held"]
            for id in fixture.deferred + [fixture.hostile].compactMap({ $0 }) { waiting[id.rawValue] = "deferred" }
            #expect(statuses == waiting)
            #expect(html.contains("data-action=\"hold\" data-id=\"\(fixture.queued.rawValue)\""))
            #expect(html.contains("data-action=\"release\" data-id=\"\(fixture.held.rawValue)\""))
            #expect(!html.contains("data-action=\"hold\" data-id=\"\(fixture.held.rawValue)\""))
            #expect(html.contains("href=\"/messages/\(fixture.deferred[0].rawValue)\""))
            #expect(html.contains("<script src=\"/assets/dashboard.js\" defer></script>"))

            // Routes: health, the pause and its reason, quota bars, expiries.
            let routes = elements(html, startingWith: "<article class=\"route\"")
            #expect(routes.map { $0["data-route"] ?? "" } == ["tenant", "tenant-smtp"])
            #expect(routes.map { $0["data-health"] ?? "" } == ["ok", "paused"])
            #expect(html.contains("Paused until") && html.contains("incorrect &lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;"))
            #expect(html.contains("value=\"12\">12 of 30</meter>") && html.contains("9100/10000"))
            #expect(html.contains("expiry warn") && html.contains("expires in 5 d"))

            // Nothing a client wrote became markup.
            for marker in Hostile.markers { #expect(!html.contains(marker), "\(marker) was not escaped on /") }
            #expect(html.contains(DashboardHTML.escape(Hostile.sender)))
            #expect(html.contains(DashboardHTML.escape(Hostile.recipient)))
        }
    }

    @Test("/trace finds messages by sender and status at bookmarkable URLs, linking each to its timeline")
    func search() async throws {
        let fixture = try await DashboardFixture()
        try await withDashboardServer(backend: fixture.backend) { port in
            let bySender = try await fetch("/trace?sender=SCANNER%40contoso.com&status=&since=24h&client=&route=&message_id=&queue_id=", port: port)
            #expect(bySender.status == 200)
            let rows = elements(bySender.body, startingWith: "<tr class=\"message\"")
            #expect(Set(rows.compactMap { $0["data-id"] }) == Set(fixture.delivered.map(\.rawValue)))
            #expect(rows.allSatisfy { $0["data-status"] == "delivered" && $0["data-sender"] == DashboardFixture.deliveredSender })
            for id in fixture.delivered { #expect(bySender.body.contains("<a class=\"mono message-link\" href=\"/messages/\(id.rawValue)\">")) }
            // The form shows the search it ran.
            #expect(bySender.body.contains("value=\"SCANNER@contoso.com\""))
            #expect(bySender.body.contains("<option value=\"24h\" selected>"))

            let held = try await fetch("/trace?status=held", port: port)
            #expect(elements(held.body, startingWith: "<tr class=\"message\"").compactMap { $0["data-id"] } == [fixture.held.rawValue])

            let hostile = try await fetch("/trace?recipient=victim.test", port: port)
            #expect(elements(hostile.body, startingWith: "<tr class=\"message\"").count == 1)
            for marker in Hostile.markers { #expect(!hostile.body.contains(marker), "\(marker) was not escaped on /trace") }
            #expect(hostile.body.contains(DashboardHTML.escape(Hostile.messageID)))

            let nothing = try await fetch("/trace?sender=nobody%40nowhere.test", port: port)
            #expect(nothing.status == 200 && nothing.body.contains("id=\"no-results\""))

            let badStatus = try await fetch("/trace?status=%3Cscript%3Elost", port: port)
            #expect(badStatus.status == 400)
            #expect(badStatus.body.contains("Unknown status “&lt;script&gt;lost”"))
            let badCursor = try await fetch("/trace?cursor=not-a-cursor", port: port)
            #expect(badCursor.status == 400)
            #expect(badCursor.body.contains("malformed trace cursor"))
        }
    }

    @Test("a page of results links to the older ones")
    func paging() async throws {
        let fixture = try await DashboardFixture(hostile: false, history: true)
        let delivered = fixture.attempts.filter { $0.outcome == "delivered" }.count
        try #require(delivered > DashboardSearch.pageSize && delivered <= 2 * DashboardSearch.pageSize, "the fixture must fill two pages")
        try await withDashboardServer(backend: fixture.backend) { port in
            let first = try await fetch("/trace?status=delivered", port: port)
            let firstRows = elements(first.body, startingWith: "<tr class=\"message\"").compactMap { $0["data-id"] }
            #expect(firstRows.count == DashboardSearch.pageSize)
            let older = try #require(elements(first.body, startingWith: "<a id=\"older\"").first?["href"])
            #expect(older.hasPrefix("/trace?status=delivered&amp;cursor="))
            let second = try await fetch(older.replacingOccurrences(of: "&amp;", with: "&"), port: port)
            let secondRows = elements(second.body, startingWith: "<tr class=\"message\"").compactMap { $0["data-id"] }
            #expect(!secondRows.isEmpty && Set(firstRows).isDisjoint(with: secondRows))
            #expect(firstRows.count + secondRows.count == delivered)
            #expect(second.body.contains("← Newest"))
        }
    }

    @Test("/messages/{id} shows the whole timeline; unknown or malformed ids get a 404 page")
    func timeline() async throws {
        let fixture = try await DashboardFixture()
        try await withDashboardServer(backend: fixture.backend) { port in
            let id = fixture.delivered[2]
            let page = try await fetch("/messages/\(id.rawValue)", port: port)
            #expect(page.status == 200)
            let message = try #require(elements(page.body, startingWith: "<section class=\"panel\" id=\"message\"").first)
            #expect(message["data-id"] == id.rawValue && message["data-status"] == "delivered")
            let kinds = elements(page.body, startingWith: "<li class=\"event\"").compactMap { $0["data-kind"] }
            #expect(kinds == ["received", "attempt", "deferred", "attempt", "delivered"], "events: \(kinds)")
            #expect(page.body.contains("&lt;\(id.rawValue.lowercased())@EX.contoso.prod.outlook.com&gt;"))
            #expect(page.body.contains("451 4.7.500 Server busy."))
            let threeRecipients = try await fetch("/messages/\(fixture.delivered[1].rawValue)", port: port)
            #expect(elements(threeRecipients.body, startingWith: "<tr data-recipient=").count == 3)
            let offersActions = page.body.contains("<button type=\"button\" class=\"action\"")
            #expect(!offersActions, "a delivered message offers no action")

            let hostileID = try #require(fixture.hostile)
            let hostile = try await fetch("/messages/\(hostileID.rawValue)", port: port)
            #expect(hostile.status == 200)
            for marker in Hostile.markers { #expect(!hostile.body.contains(marker), "\(marker) was not escaped on the timeline") }
            for text in [Hostile.sender, Hostile.recipient, Hostile.messageID, Hostile.helo, Hostile.reply] {
                #expect(hostile.body.contains(DashboardHTML.escape(text)), "\(text) is missing from the timeline")
            }
            #expect(hostile.body.contains("data-action=\"retry\"") && hostile.body.contains("data-action=\"delete\""))

            let held = try await fetch("/messages/\(fixture.held.rawValue)", port: port)
            #expect(elements(held.body, startingWith: "<li class=\"event\"").compactMap { $0["data-kind"] }.contains("held"))

            for missing in ["0000000000000000", "not-a-queue-id", "%3Cscript%3E"] {
                let page = try await fetch("/messages/\(missing)", port: port)
                #expect(page.status == 404, "/messages/\(missing)")
                #expect(page.body.contains("No such message") && !page.body.contains("<script>"))
            }
        }
    }

    @Test("the actions' script is served as JavaScript and calls the API on the same origin")
    func script() async throws {
        let fixture = try await DashboardFixture(hostile: false)
        try await withDashboardServer(backend: fixture.backend) { port in
            let script = try await fetch("/assets/dashboard.js", port: port)
            #expect(script.status == 200)
            #expect(script.headers[.contentType] == "text/javascript; charset=utf-8")
            #expect(script.body.contains("credentials: \"same-origin\"") && script.body.contains("/api/v1/messages/"))
            #expect(script.body.contains("window.confirm("))
        }
    }
}
