import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RelayCore
import RelayStorage

/// The dashboard: server-rendered HTML with inline CSS and SVG, and one small
/// script for the queue actions, so it works offline and needs no build step.
///
/// Pages (all GET, all bookmarkable):
/// - `/`: queue counts, mail flow of the last 24 hours, waiting messages with
///   retry/hold/release/delete, routes with health, quota use and expiries.
/// - `/trace?sender=&recipient=&status=&since=&client=&route=&message_id=&queue_id=&cursor=`: search results.
/// - `/messages/{id}`: one message's timeline (404 page when unknown).
/// - `/assets/dashboard.js`: the queue actions' script (calls the JSON API).
public enum RelayDashboard {
    /// Adds the dashboard's pages to the admin router (after its authentication middleware).
    /// - Parameter clock: "now" for the pages' ages, the flow chart's window and relative searches.
    public static func addRoutes(
        to router: Router<RelayAdminRequestContext>, backend: any RelayAdminBackend, clock: @escaping @Sendable () -> Date = Date.init
    ) {
        router.get("/") { _, context -> Response in
            await page(context, clock: clock) { now in try await overview(backend: backend, now: now) }
        }
        router.get("/trace") { request, context -> Response in
            await page(context, clock: clock) { now in
                let search: DashboardSearch
                do {
                    search = try DashboardSearch(parameters: DashboardHTML.parseQuery(request.uri.query))
                } catch {
                    return (.badRequest, DashboardPage.problem(title: "That search is not valid", detail: "\(error)", now: now))
                }
                let results = try await backend.trace.searchTrace(search.query(now: now))
                return (.ok, DashboardTraceView(search: search, page: results, now: now).render())
            }
        }
        router.get("/messages/:id") { _, context -> Response in
            await page(context, clock: clock) { now in
                let text = context.parameters.get("id") ?? ""
                guard let id = RelayQueueID(validating: text), let timeline = try await backend.trace.timeline(id: id) else {
                    return (
                        .notFound,
                        DashboardPage.problem(
                            title: "No such message",
                            detail: "The trace has no message \(text). It may have been pruned after the retention period, or the id is mistyped.",
                            now: now)
                    )
                }
                return (.ok, DashboardMessageView(timeline: timeline, now: now).render())
            }
        }
        router.get(.init(stringLiteral: DashboardAssets.scriptPath)) { _, _ -> Response in
            var headers = commonHeaders
            headers[.contentType] = "text/javascript; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: DashboardAssets.script)))
        }
    }

    static func overview(backend: any RelayAdminBackend, now: Date) async throws -> (HTTPResponse.Status, String) {
        let window = DashboardFlowChart.window(now: now)
        let statistics = try await backend.trace.queueStatistics()
        let flow = try await backend.trace.flow(since: window.since, until: window.until)
        var waiting: [RelayTraceSummary] = []
        var hasMore = false
        for status in DashboardOverview.queueStatuses {
            let page = try await backend.trace.searchTrace(RelayTraceQuery(status: status, limit: DashboardOverview.queueRowsPerStatus))
            waiting += page.messages
            hasMore = hasMore || page.nextCursor != nil
        }
        waiting.sort { ($0.receivedAt, $0.id) > ($1.receivedAt, $1.id) }
        let routes = await backend.routes(now: now)
        let overview = DashboardOverview(statistics: statistics, flow: flow, queue: waiting, queueHasMore: hasMore, routes: routes, now: now)
        return (.ok, overview.render())
    }

    /// Headers of every dashboard response: never cached (it shows live state),
    /// never framed, and no script but the dashboard's own.
    static let commonHeaders: HTTPFields = [
        .cacheControl: "no-store",
        .contentSecurityPolicy: DashboardAssets.contentSecurityPolicy,
        .xContentTypeOptions: "nosniff",
        .init("X-Frame-Options")!: "DENY",
        .init("Referrer-Policy")!: "no-referrer",
    ]

    /// Renders a page. A store that cannot be read becomes a 503 page naming no
    /// SQL or addresses (the error goes to the log); a cursor it cannot read, a 400 page.
    private static func page(
        _ context: RelayAdminRequestContext, clock: @Sendable () -> Date, _ render: (Date) async throws -> (HTTPResponse.Status, String)
    ) async -> Response {
        let now = clock()
        let status: HTTPResponse.Status, html: String
        do {
            (status, html) = try await render(now)
        } catch let error as RelayStorageError where error.code == .invalidRequest {
            status = .badRequest
            html = DashboardPage.problem(title: "That search is not valid", detail: error.detail, now: now)
        } catch {
            context.logger.error("Dashboard: storage failed", metadata: ["error": "\(error)"])
            status = .serviceUnavailable
            html = DashboardPage.problem(
                title: "The message trace could not be read", detail: "Storage is unavailable; see the relay's log.", now: now)
        }
        var headers = commonHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}
