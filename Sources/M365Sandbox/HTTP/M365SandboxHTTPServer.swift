import Foundation
import Hummingbird
import HummingbirdTLS
import HTTPTypes
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOSSL
import ServiceLifecycle

/// Per-request context: who is calling and Graph's `request-id`.
struct M365SandboxRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    /// Graph's `request-id`, also recorded with a stored message.
    let requestID: String

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        requestID = UUID().uuidString.lowercased()
    }

    var isLoopback: Bool {
        guard let ip = remoteAddress?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}

/// Every reply carries `request-id` and echoes `client-request-id`, as Graph's do.
struct M365SandboxRequestIDMiddleware: RouterMiddleware {
    typealias Context = M365SandboxRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPError {
            response = M365SandboxHTTP.graphError(status: Int(error.status.code), code: error.status.code == 404 ? "ResourceNotFound" : "BadRequest",
                                                  message: error.body ?? error.status.reasonPhrase)
        } catch {
            logger.error("Sandbox HTTP handler failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            response = M365SandboxHTTP.graphError(status: 500, code: "InternalServerError", message: "The sandbox failed: \(error)")
        }
        response.headers[M365SandboxHTTP.requestIDField] = context.requestID
        if let client = request.headers[M365SandboxHTTP.clientRequestIDField] {
            response.headers[M365SandboxHTTP.clientRequestIDField] = client
        }
        return response
    }
}

/// Helpers shared by the HTTP handlers.
enum M365SandboxHTTP {
    static let requestIDField = HTTPField.Name("request-id")!
    static let clientRequestIDField = HTTPField.Name("client-request-id")!
    static let retryAfterField = HTTPField.Name("Retry-After")!
    static let contentRangeField = HTTPField.Name("Content-Range")!

    static func json(_ status: Int, _ object: Any, headers: HTTPFields = [:]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    static func json<Value: Encodable>(_ status: Int, encoding value: Value) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: .init(code: status), headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    /// Graph's error body `{"error":{"code":...,"message":...}}`.
    static func graphError(status: Int, code: String, message: String, retryAfter: Int? = nil) -> Response {
        var headers: HTTPFields = [:]
        if let retryAfter { headers[retryAfterField] = String(retryAfter) }
        return json(status, ["error": ["code": code, "message": message, "innerError": ["date": ISO8601DateFormatter().string(from: Date())]]], headers: headers)
    }

    static func empty(_ status: Int, headers: HTTPFields = [:]) -> Response {
        Response(status: .init(code: status), headers: headers)
    }

    /// Reads the body up to `limit` bytes; past it, drains the rest and returns nil (Graph answers 413).
    static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer? {
        var buffer = ByteBuffer()
        var exceeded = false
        for try await chunk in request.body {
            if exceeded { continue }
            if buffer.readableBytes + chunk.readableBytes > limit {
                exceeded = true
                buffer = ByteBuffer()
                continue
            }
            var chunk = chunk
            buffer.writeBuffer(&chunk)
        }
        return exceeded ? nil : buffer
    }

    /// `application/x-www-form-urlencoded` fields (RFC 1866 §8.2.1, WHATWG URL §5).
    static func formFields(_ body: ByteBuffer) -> [String: String] {
        let text = String(buffer: body)
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(part)
            }
            let name = decode(parts[0])
            if fields[name] == nil { fields[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return fields
    }
}

/// The sandbox's HTTPS listener: the identity platform's token endpoint,
/// Graph under `/v1.0/`, and the sandbox's own control API under `/sandbox/`.
final class M365SandboxHTTPServer: Sendable {
    private let host: String
    private let port: Int
    private let tls: TLSConfiguration
    private let tenant: M365SandboxTenant
    private let group: any EventLoopGroup
    private let logger: Logger
    private let graph: M365SandboxGraph
    private let running = NIOLockedValueBox<(services: ServiceGroup, task: Task<Void, Never>)?>(nil)
    private let boundPort = NIOLockedValueBox<Int?>(nil)

    init(host: String, port: Int, tls: TLSConfiguration, tenant: M365SandboxTenant, group: any EventLoopGroup, logger: Logger) throws {
        self.host = host
        self.port = port
        self.tls = tls
        self.tenant = tenant
        self.group = group
        self.logger = logger
        graph = M365SandboxGraph(tenant: tenant, logger: logger)
    }

    /// `https://127.0.0.1:PORT` (the host as bound; a wildcard address is shown as 127.0.0.1).
    var baseURL: String? {
        guard let port = boundPort.withLockedValue({ $0 }) else { return nil }
        let shown = ["0.0.0.0", "::", ""].contains(host) ? "127.0.0.1" : host
        return "https://\(shown.contains(":") ? "[\(shown)]" : shown):\(port)"
    }

    /// Binds; returns the port bound.
    func start() async throws -> Int {
        let router = Router(context: M365SandboxRequestContext.self)
        router.add(middleware: M365SandboxRequestIDMiddleware(logger: logger))
        registerTokenEndpoint(router)
        registerControlAPI(router)
        graph.register(on: router, baseURL: { [weak self] in self?.baseURL ?? "" })
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname(host, port: port), serverName: "Microsoft-IIS/10.0"),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            eventLoopGroupProvider: .shared(group),
            logger: logger)
        let services = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let logger = self.logger
        let task = Task {
            do {
                try await services.run()
            } catch {
                logger.error("Sandbox HTTPS endpoint stopped", metadata: ["error": "\(error)"])
            }
            continuation.finish()
        }
        running.withLockedValue { $0 = (services, task) }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next() else {
            throw SandboxCertificateError("the HTTPS endpoint could not listen on \(host):\(port)")
        }
        boundPort.withLockedValue { $0 = bound }
        return bound
    }

    func shutdown() async {
        guard let (services, task) = running.withLockedValue({ $0 }) else { return }
        await services.triggerGracefulShutdown()
        await task.value
    }

    // MARK: Token endpoint

    private func registerTokenEndpoint(_ router: Router<M365SandboxRequestContext>) {
        router.post(":tenant/oauth2/v2.0/token") { [tenant, weak self] request, context -> Response in
            let tenantID = context.parameters.get("tenant")?.removingPercentEncoding ?? ""
            guard let body = try await M365SandboxHTTP.collect(request, limit: 1024 * 1024) else {
                return M365SandboxHTTP.json(413, ["error": "invalid_request", "error_description": "AADSTS90007: Request too large."])
            }
            let base = self?.baseURL ?? ""
            var audiences: Set<String> = ["\(base)/\(tenantID)/oauth2/v2.0/token"]
            var graphScopes: Set<String> = ["\(base)/.default", "\(base)/"]
            if let authority = request.head.authority {
                // The URL the client actually called: what it puts in `aud` and derives Graph's scope from.
                audiences.insert("https://\(authority)/\(tenantID)/oauth2/v2.0/token")
                graphScopes.insert("https://\(authority)/.default")
            }
            let reply = tenant.identity.token(
                tenant: tenantID, form: M365SandboxHTTP.formFields(body), endpointURLs: audiences, graphScopes: graphScopes)
            return M365SandboxHTTP.json(reply.status, reply.body, headers: [.cacheControl: "no-store, no-cache"])
        }
    }

    // MARK: Control API (not Microsoft's)

    private func registerControlAPI(_ router: Router<M365SandboxRequestContext>) {
        router.get("sandbox/stats") { [tenant] _, context -> Response in
            guard context.isLoopback else { return M365SandboxHTTP.graphError(status: 403, code: "Forbidden", message: "The sandbox control API answers loopback clients only.") }
            return M365SandboxHTTP.json(200, encoding: tenant.stats)
        }
        router.get("sandbox/faults") { [tenant] _, context -> Response in
            guard context.isLoopback else { return M365SandboxHTTP.graphError(status: 403, code: "Forbidden", message: "The sandbox control API answers loopback clients only.") }
            return M365SandboxHTTP.json(200, encoding: tenant.faults.pending)
        }
        router.post("sandbox/faults") { [tenant] request, context -> Response in
            guard context.isLoopback else { return M365SandboxHTTP.graphError(status: 403, code: "Forbidden", message: "The sandbox control API answers loopback clients only.") }
            guard let body = try await M365SandboxHTTP.collect(request, limit: 64 * 1024) else {
                return M365SandboxHTTP.graphError(status: 413, code: "RequestTooLarge", message: "A fault is a small JSON object.")
            }
            // One fault or a list of them.
            let decoder = JSONDecoder()
            let faults: [M365SandboxFault]
            do {
                if let list = try? decoder.decode([M365SandboxFault].self, from: body) {
                    faults = list
                } else {
                    faults = [try decoder.decode(M365SandboxFault.self, from: body)]
                }
            } catch {
                return M365SandboxHTTP.graphError(status: 400, code: "BadRequest", message: "Not a fault: \(error)")
            }
            for fault in faults { tenant.faults.inject(fault) }
            return M365SandboxHTTP.json(201, encoding: tenant.faults.pending)
        }
        router.delete("sandbox/faults") { [tenant] _, context -> Response in
            guard context.isLoopback else { return M365SandboxHTTP.graphError(status: 403, code: "Forbidden", message: "The sandbox control API answers loopback clients only.") }
            tenant.faults.clear()
            return M365SandboxHTTP.empty(204)
        }
    }
}
