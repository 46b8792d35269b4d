import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RelayCore
import RelayStorage

/// The JSON API under `/api/v1`, `/healthz`, `/readyz`, `/metrics` and `/openapi.json`,
/// as docs/openapi.json describes it.
public enum RelayAdminAPI {
    /// Every path the API serves and its methods, as docs/openapi.json lists them
    /// (a test holds the two together); `{id}` stands for one path segment.
    static let endpoints: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/healthz", [.get]), ("/readyz", [.get]), ("/metrics", [.get]), ("/openapi.json", [.get]),
        ("/api/v1/messages", [.get]), ("/api/v1/messages/{id}", [.get, .delete]),
        ("/api/v1/messages/{id}/retry", [.post]), ("/api/v1/messages/{id}/hold", [.post]), ("/api/v1/messages/{id}/release", [.post]),
        ("/api/v1/routes", [.get]),
    ]

    /// The methods the API serves at `path`; empty when the path is not the API's.
    static func allowedMethods(at path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        for endpoint in endpoints {
            let pattern = endpoint.path.split(separator: "/", omittingEmptySubsequences: false)
            guard pattern.count == segments.count else { continue }
            if zip(pattern, segments).allSatisfy({ $0 == "{id}" ? !$1.isEmpty : $0 == $1 }) { return endpoint.methods }
        }
        return []
    }

    /// Adds the API's routes to the admin router (after its authentication middleware).
    /// - Parameter clock: "now" for relative ages (`since=1h`), route expiries and the time recorded for actions.
    public static func addRoutes(
        to router: Router<RelayAdminRequestContext>, backend: any RelayAdminBackend, clock: @escaping @Sendable () -> Date = Date.init
    ) {
        router.get("/healthz") { _, _ in
            try RelayAdminResponse.json(RelayAdminReadiness(status: "ok", reason: nil))
        }
        router.get("/readyz") { _, _ in
            if let reason = await backend.notReadyReason() {
                return try RelayAdminResponse.json(RelayAdminReadiness(status: "not_ready", reason: reason), status: .serviceUnavailable)
            }
            return try RelayAdminResponse.json(RelayAdminReadiness(status: "ok", reason: nil))
        }
        router.get("/metrics") { _, _ in
            let text = await backend.metricsText()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: RelayOpenAPIDocument.json)))
        }

        router.get("/api/v1/messages") { request, context in
            let parameters = request.uri.queryParameters.map { (name: String($0.key), value: String($0.value)) }
            let query: RelayTraceQuery
            do {
                query = try RelayTraceQueryParsing.query(from: parameters, now: clock())
            } catch let error as RelayTraceParameterError {
                throw RelayAdminAPIError(status: .badRequest, message: error.description)
            }
            let page = try await storage(context, "search the trace", blaming: "cursor") { try await backend.trace.searchTrace(query) }
            return try RelayAdminResponse.json(RelayAdminMessagePage(page))
        }
        router.get("/api/v1/messages/{id}") { _, context in
            let id = try queueID(context)
            guard let timeline = try await storage(context, "read the timeline", { try await backend.trace.timeline(id: id) }) else {
                throw RelayAdminAPIError(status: .notFound, message: "no message with id \(id.rawValue) (unknown, or pruned from the trace)")
            }
            return try RelayAdminResponse.json(RelayAdminTimeline(timeline))
        }
        for action in [RelayQueueAction.retry, .hold, .release] {
            router.post("/api/v1/messages/{id}/\(action.rawValue)") { _, context in
                try await apply(action, context: context, backend: backend, clock: clock)
            }
        }
        router.delete("/api/v1/messages/{id}") { _, context in
            try await apply(.delete, context: context, backend: backend, clock: clock)
        }
        router.get("/api/v1/routes") { _, _ in
            let routes = await backend.routes(now: clock())
            return try RelayAdminResponse.json(RelayAdminRouteList(routes: routes.map(RelayAdminRoute.init)))
        }
    }

    private static func apply(
        _ action: RelayQueueAction, context: RelayAdminRequestContext, backend: any RelayAdminBackend, clock: @Sendable () -> Date
    ) async throws -> Response {
        let id = try queueID(context)
        let actor = "admin-api \(context.remoteAddress?.ipAddress ?? "unknown peer")"
        do {
            let summary = try await backend.trace.apply(action, to: id, by: actor, now: clock())
            context.logger.notice("Queue action", metadata: ["queue_id": "\(id.rawValue)", "action": "\(action.rawValue)", "by": "\(actor)"])
            return try RelayAdminResponse.json(RelayAdminMessage(summary))
        } catch let error as RelayQueueActionError {
            switch error {
            case .notFound(let text): throw RelayAdminAPIError(status: .notFound, message: text)
            case .notApplicable(let text), .busy(let text): throw RelayAdminAPIError(status: .conflict, message: text)
            }
        } catch {
            throw storageFailure(error, context: context, operation: "\(action.rawValue) a message")
        }
    }

    private static func queueID(_ context: RelayAdminRequestContext) throws -> RelayQueueID {
        let text = context.parameters.get("id") ?? ""
        guard let id = RelayQueueID(validating: text.uppercased()) else {
            throw RelayAdminAPIError(status: .badRequest, message: "id: \"\(text)\" is not a queue id (16 characters of 0-9 and A-Z)")
        }
        return id
    }

    /// Runs a storage call; its failure becomes 503 with a message that names
    /// the operation but not the SQL or its arguments (they may hold addresses).
    /// - Parameter blaming: the parameter named when storage refuses the request as invalid (a cursor it cannot read).
    private static func storage<Result>(
        _ context: RelayAdminRequestContext, _ operation: String, blaming parameter: String? = nil, _ body: () async throws -> Result
    ) async throws -> Result {
        do {
            return try await body()
        } catch let error as RelayAdminAPIError {
            throw error
        } catch {
            throw storageFailure(error, context: context, operation: operation, blaming: parameter)
        }
    }

    private static func storageFailure(
        _ error: any Error, context: RelayAdminRequestContext, operation: String, blaming parameter: String? = nil
    ) -> RelayAdminAPIError {
        // The client's mistake (a cursor storage cannot read), not an outage.
        if let error = error as? RelayStorageError, error.code == .invalidRequest {
            return RelayAdminAPIError(status: .badRequest, message: parameter.map { "\($0): \(error.detail)" } ?? error.detail)
        }
        context.logger.error("Admin API: storage failed", metadata: ["operation": "\(operation)", "error": "\(error)"])
        return RelayAdminAPIError(status: .serviceUnavailable, message: "storage is unavailable: could not \(operation); see the relay's log")
    }
}

/// An API error: its status and `{"error": message}`.
public struct RelayAdminAPIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var headers: HTTPFields

    public init(status: HTTPResponse.Status, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try RelayAdminResponse.json(RelayAdminErrorBody(error: message), status: status)
        response.headers.append(contentsOf: headers)
        return response
    }
}

enum RelayAdminResponse {
    static func json<Value: Encodable>(_ value: Value, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try RelayAdminJSON.encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
