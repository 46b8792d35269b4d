import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import RelayAdmin
import RelayCore
import RelayStorage
import RelayTestSupport
import Testing

@Suite("Admin API: trace search")
struct RelayAdminSearchTests {
    @Test("without filters every message comes back, newest first, with every documented key")
    func everythingNewestFirst() async throws {
        let fixture = try await AdminFixture.standard()
        try await withAdminServer(backend: fixture.backend()) { client in
            let response = try await client.get("/api/v1/messages")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            let page = try response.json(RelayAdminMessagePage.self)
            #expect(page.messages.map(\.id) == ["fresh", "queued", "deferred", "delivered"].map { fixture.id($0).rawValue })
            #expect(page.messages.map(\.status) == [.queued, .queued, .deferred, .delivered])
            #expect(page.nextCursor == nil)

            // Keys as the wire has them: snake_case, nulls present.
            let object = try response.object
            #expect(Set(object.keys) == ["messages", "next_cursor"])
            #expect(object["next_cursor"] is NSNull)
            let first = try #require((object["messages"] as? [[String: Any]])?.first)
            #expect(Set(first.keys) == [
                "id", "status", "sender", "recipients", "client", "client_address", "route", "size", "message_id", "received_at",
                "finished_at", "next_attempt_at", "attempts", "last_reply",
            ])
            #expect(first["finished_at"] is NSNull)
            let received = try #require(first["received_at"] as? String)
            #expect(received.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "received_at: \(received)")
        }
    }

    @Test("each filter narrows the search", arguments: [
        ("sender=scanner%40contoso", ["queued", "delivered"]),
        ("sender=ERP", ["deferred"]),
        ("recipient=carol%40example.com", ["deferred"]),
        ("recipient=example.com", ["queued", "deferred", "delivered"]),
        ("status=deferred", ["deferred"]),
        ("status=delivered", ["delivered"]),
        ("status=queued", ["fresh", "queued"]),
        ("status=held", []),
        ("client=erp", ["deferred"]),
        ("client=ERP", []),
        ("route=tenant-smtp", ["queued"]),
        ("message_id=%3Cdeferred%40contoso.com%3E", ["deferred"]),
        ("message_id=delivered%40contoso.com", ["delivered"]),
        ("since=90m", ["fresh", "queued"]),
        ("since=2h30m&until=30m", ["queued", "deferred"]),
        ("sender=scanner&status=queued", ["queued"]),
    ])
    func filters(query: String, expected: [String]) async throws {
        let fixture = try await AdminFixture.standard()
        try await withAdminServer(backend: fixture.backend()) { client in
            let response = try await client.get("/api/v1/messages?\(query)")
            #expect(response.status == .ok, "\(response.text)")
            let page = try response.json(RelayAdminMessagePage.self)
            #expect(page.messages.map(\.id) == expected.map { fixture.id($0).rawValue }, "\(query)")
        }
    }

    @Test("queue_id and ISO 8601 dates (with an offset) filter too")
    func queueIDAndDates() async throws {
        let fixture = try await AdminFixture.standard()
        let deferred = fixture.id("deferred").rawValue
        // 2.5 hours ago, written in UTC+02:00 without fractional seconds.
        let since = Date(timeIntervalSince1970: (fixture.now.timeIntervalSince1970 - 2.5 * 3600).rounded(.down))
        let style = Date.ISO8601FormatStyle(timeZoneSeparator: .colon, timeZone: TimeZone(secondsFromGMT: 7200)!)
        let sinceText = style.format(since)
        #expect(sinceText.hasSuffix("+02:00"), "\(sinceText)")
        try await withAdminServer(backend: fixture.backend()) { client in
            let byID = try await client.get("/api/v1/messages?queue_id=\(deferred)").json(RelayAdminMessagePage.self)
            #expect(byID.messages.map(\.id) == [deferred])
            let encoded = sinceText.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let bySince = try await client.get("/api/v1/messages?since=\(encoded)").json(RelayAdminMessagePage.self)
            #expect(bySince.messages.map(\.id) == ["fresh", "queued", "deferred"].map { fixture.id($0).rawValue })
        }
    }

    @Test("pages follow next_cursor without gaps or repeats, and the last has none")
    func paging() async throws {
        let fixture = try await AdminFixture.standard()
        for hour in 4...8 {
            try await fixture.enqueue("old\(hour)", hoursAgo: Double(hour))
        }
        try await withAdminServer(backend: fixture.backend()) { client in
            let pages = try await client.allPages("limit=2")
            #expect(pages.map(\.count) == [2, 2, 2, 2, 1])
            let expected = ["fresh", "queued", "deferred", "delivered"] + (4...8).map { "old\($0)" }
            #expect(pages.flatMap { $0 }.map(\.id) == expected.map { fixture.id($0).rawValue })

            let filtered = try await client.allPages("sender=scanner&limit=3")
            #expect(filtered.flatMap { $0 }.map(\.id) == (["queued", "delivered"] + (4...8).map { "old\($0)" }).map { fixture.id($0).rawValue })
        }
    }

    @Test("bad parameters are 400 naming the parameter and why", arguments: [
        ("status=bogus", "status: unknown status \"bogus\""),
        ("since=yesterday", "since: \"yesterday\" is neither an ISO 8601 date"),
        ("until=2026-13-45T00:00:00Z", "until: "),
        ("limit=0", "limit: must be a whole number from 1 to 500"),
        ("limit=501", "limit: must be a whole number from 1 to 500"),
        ("limit=ten", "limit: must be a whole number from 1 to 500"),
        ("senders=x", "senders: unknown parameter"),
        ("status=queued&status=held", "status: given more than once"),
        ("since=1h&until=2h", "until: is before since"),
        ("cursor=not-a-cursor", "cursor: malformed trace cursor"),
    ])
    func badParameters(query: String, message: String) async throws {
        let fixture = try await AdminFixture.standard()
        try await withAdminServer(backend: fixture.backend()) { client in
            let response = try await client.get("/api/v1/messages?\(query)")
            #expect(response.status == .badRequest, "\(query): \(response.text)")
            #expect(response.errorMessage.hasPrefix(message), "\(query): \(response.errorMessage)")
        }
    }

    @Test("a storage failure is 503 without SQL or its arguments")
    func storageFailure() async throws {
        let fixture = try await AdminFixture.standard()
        fixture.store.close()
        try await withAdminServer(backend: fixture.backend()) { client in
            let response = try await client.get("/api/v1/messages?sender=secret-sender%40contoso.com")
            #expect(response.status == .serviceUnavailable)
            #expect(response.errorMessage == "storage is unavailable: could not search the trace; see the relay's log")
            let timeline = try await client.get("/api/v1/messages/\(fixture.id("queued").rawValue)")
            #expect(timeline.status == .serviceUnavailable)
            let action = try await client.post("/api/v1/messages/\(fixture.id("queued").rawValue)/hold")
            #expect(action.status == .serviceUnavailable)
            #expect(!action.text.contains("SELECT") && !action.text.contains("UPDATE"))
        }
    }
}

@Suite("Admin API: timeline and actions")
struct RelayAdminTimelineTests {
    @Test("a delivered message's timeline: envelope, received, attempt, delivered; content gone")
    func deliveredTimeline() async throws {
        let fixture = try await AdminFixture.standard()
        let id = fixture.id("delivered").rawValue
        try await withAdminServer(backend: fixture.backend()) { client in
            // Lower case is accepted: ids are often typed.
            let response = try await client.get("/api/v1/messages/\(id.lowercased())")
            #expect(response.status == .ok, "\(response.text)")
            let timeline = try response.json(RelayAdminTimeline.self)
            #expect(timeline.message.id == id)
            #expect(timeline.message.status == .delivered)
            #expect(timeline.message.messageID == "<delivered@contoso.com>")
            #expect(timeline.message.finishedAt != nil)
            #expect(timeline.envelope.clientName == "scanners")
            #expect(timeline.envelope.tlsVersion == "TLSv1.3")
            #expect(timeline.envelope.heloName == "scanner.contoso.local")
            #expect(!timeline.hasContent)
            let kinds = timeline.events.map(\.kind)
            #expect(kinds.first == "received")
            #expect(kinds.contains("attempt"))
            #expect(kinds.last == "delivered")
            #expect(timeline.events.map(\.at) == timeline.events.map(\.at).sorted())
            #expect(timeline.events.contains { $0.summary.contains("250 2.6.0") })

            let object = try response.object
            #expect(Set(object.keys) == ["message", "envelope", "events", "has_content"])
            let envelope = try #require(object["envelope"] as? [String: Any])
            #expect(Set(envelope.keys) == [
                "sender", "recipients", "client_name", "client_address", "helo_name", "tls_version", "authenticated_as", "route", "smtputf8",
                "body_8bit", "message_id", "original_sender", "policy_notes",
            ])
            #expect(envelope["authenticated_as"] is NSNull)
        }
    }

    @Test("an unknown id is 404, a malformed one 400 naming id")
    func unknownAndMalformed() async throws {
        let fixture = try await AdminFixture.standard()
        let unknown = RelayQueueID.make(millisecondsSinceEpoch: 1).rawValue
        try await withAdminServer(backend: fixture.backend()) { client in
            let missing = try await client.get("/api/v1/messages/\(unknown)")
            #expect(missing.status == .notFound)
            #expect(missing.errorMessage.contains(unknown))
            let malformed = try await client.get("/api/v1/messages/not-an-id")
            #expect(malformed.status == .badRequest)
            #expect(malformed.errorMessage.hasPrefix("id: "))
            for action in ["retry", "hold", "release"] {
                #expect(try await client.post("/api/v1/messages/\(unknown)/\(action)").status == .notFound, "\(action)")
                #expect(try await client.post("/api/v1/messages/l0wercase-bad!/\(action)").status == .badRequest, "\(action)")
            }
            #expect(try await client.delete("/api/v1/messages/\(unknown)").status == .notFound)
            let wrongMethod = try await client.put("/api/v1/messages/\(unknown)", body: ByteBuffer())
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(wrongMethod.headers[.allow] == "GET, DELETE")
            #expect(try await client.get("/api/v1/messages/\(unknown)/hold").status == .methodNotAllowed)
            let nowhere = try await client.get("/api/v1/nowhere")
            #expect(nowhere.status == .notFound)
            #expect(nowhere.errorMessage.contains("/api/v1/nowhere"))
        }
    }

    @Test("hold, release, retry and delete change the status, record who, and refuse what does not apply (409)")
    func actions() async throws {
        let fixture = try await AdminFixture.standard()
        let queued = fixture.id("queued").rawValue
        let deferred = fixture.id("deferred").rawValue
        let delivered = fixture.id("delivered").rawValue
        try await withAdminServer(backend: fixture.backend()) { client in
            let held = try await client.post("/api/v1/messages/\(queued)/hold")
            #expect(held.status == .ok, "\(held.text)")
            #expect(try held.json(RelayAdminMessage.self).status == .held)
            let again = try await client.post("/api/v1/messages/\(queued)/hold")
            #expect(again.status == .conflict)
            #expect(again.errorMessage.contains("held"))
            #expect(try await client.post("/api/v1/messages/\(queued)/retry").status == .conflict)

            let released = try await client.post("/api/v1/messages/\(queued)/release")
            #expect(released.status == .ok)
            #expect(try released.json(RelayAdminMessage.self).status == .queued)
            #expect(try await client.post("/api/v1/messages/\(queued)/release").status == .conflict)

            let retried = try await client.post("/api/v1/messages/\(deferred)/retry")
            #expect(retried.status == .ok)
            let nextAttempt = try #require(try retried.json(RelayAdminMessage.self).nextAttemptAt)
            #expect(nextAttempt <= Date().addingTimeInterval(1))

            #expect(try await client.post("/api/v1/messages/\(delivered)/retry").status == .conflict)
            #expect(try await client.delete("/api/v1/messages/\(delivered)").status == .conflict)

            let deleted = try await client.delete("/api/v1/messages/\(deferred)")
            #expect(deleted.status == .ok)
            #expect(try deleted.json(RelayAdminMessage.self).status == .deleted)
            #expect(try await client.delete("/api/v1/messages/\(deferred)").status == .conflict)

            let timeline = try await client.get("/api/v1/messages/\(queued)").json(RelayAdminTimeline.self)
            let actions = timeline.events.filter { ["held", "released"].contains($0.kind) }
            #expect(actions.map(\.kind) == ["held", "released"])
            #expect(actions.allSatisfy { $0.details["by"] == "admin-api 127.0.0.1" }, "\(actions)")

            let search = try await client.get("/api/v1/messages?status=deleted").json(RelayAdminMessagePage.self)
            #expect(search.messages.map(\.id) == [deferred])
        }
    }

    @Test("deleting a message while an attempt holds it is 409")
    func deleteWhileBusy() async throws {
        let fixture = try AdminFixture()
        let id = try await fixture.enqueue("busy", hoursAgo: 0)
        let leased = try await fixture.store.lease(owner: "worker", now: Date(), limit: 1, leaseDuration: 600, routes: nil)
        #expect(leased.map(\.id) == [id])
        try await withAdminServer(backend: fixture.backend()) { client in
            let response = try await client.delete("/api/v1/messages/\(id.rawValue)")
            #expect(response.status == .conflict)
            #expect(response.errorMessage.contains("being delivered"))
        }
    }
}

@Suite("Admin API: health, metrics, routes")
struct RelayAdminHealthTests {
    @Test("/healthz is 200; /readyz is 200 when ready and 503 with the reason when not")
    func readiness() async throws {
        let fixture = try AdminFixture()
        try await withAdminServer(backend: fixture.backend()) { client in
            #expect(try await client.get("/healthz").status == .ok)
            let ready = try await client.get("/readyz")
            #expect(ready.status == .ok)
            #expect(try ready.json(RelayAdminReadiness.self) == RelayAdminReadiness(status: "ok", reason: nil))
        }
        try await withAdminServer(backend: fixture.backend(notReady: "no usable route: tenant is paused until 10:00")) { client in
            #expect(try await client.get("/healthz").status == .ok)
            let response = try await client.get("/readyz")
            #expect(response.status == .serviceUnavailable)
            #expect(try response.json(RelayAdminReadiness.self).reason == "no usable route: tenant is paused until 10:00")
        }
    }

    @Test("/metrics is the Prometheus text format")
    func metrics() async throws {
        let fixture = try AdminFixture()
        try await withAdminServer(backend: fixture.backend()) { client in
            let response = try await client.get("/metrics")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(response.text == "# TYPE m365relay_test gauge\nm365relay_test 1\n")
        }
    }

    @Test("/api/v1/routes lists routes with health, quotas and expiries, nulls included")
    func routes() async throws {
        let fixture = try AdminFixture()
        var backend = fixture.backend()
        let expiry = Date(timeIntervalSince1970: 1_800_000_000)
        backend.routeStatuses = [
            RelayRouteStatus(
                name: "tenant", mode: "graph", tenantID: "contoso.onmicrosoft.com", fallback: "tenant-smtp", health: .paused,
                heldUntil: expiry, reason: "535 5.7.139 Authentication unsuccessful",
                mailboxes: [RelayMailboxQuota(
                    mailbox: "relay@contoso.com", messagesPerMinute: .init(used: 3, limit: 30), recipientsPerDay: .init(used: 40, limit: 10_000),
                    connections: .init(used: 1, limit: nil))],
                tokenExpiresAt: expiry),
            RelayRouteStatus(name: "sandbox", mode: "sandbox"),
        ]
        try await withAdminServer(backend: backend) { client in
            let response = try await client.get("/api/v1/routes")
            #expect(response.status == .ok)
            let routes = try response.json(RelayAdminRouteList.self).routes
            #expect(routes.map(\.name) == ["tenant", "sandbox"])
            #expect(routes[0].health == "paused")
            #expect(routes[0].mailboxes.first?.connections.limit == nil)
            #expect(routes[0].tokenExpiresAt == expiry)
            let object = try response.object
            let sandbox = try #require((object["routes"] as? [[String: Any]])?.last)
            #expect(sandbox["tenant_id"] is NSNull)
            #expect(sandbox["token_expires_at"] is NSNull)
            let tenant = try #require((object["routes"] as? [[String: Any]])?.first)
            #expect(tenant["held_until"] as? String == "2027-01-15T08:00:00.000Z")
        }
    }
}
