import Foundation
import HTTPTypes
import Hummingbird

/// Admits a request that carries the admin token, as `Authorization: Bearer
/// TOKEN` (scripts, the commands) or HTTP Basic with the token as the password
/// and any user name (so that a browser can open the dashboard: the 401 asks
/// it for credentials). `/healthz` stays open for probes. Without a token
/// (a loopback-only server) every request passes.
struct RelayAdminAuthentication: RouterMiddleware {
    typealias Context = RelayAdminRequestContext

    static let realm = "m365-relay"
    private let token: [UInt8]?

    init(token: String?) {
        self.token = token.map { Array($0.utf8) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, request.uri.path != "/healthz" else {
            return try await next(request, context)
        }
        guard let authorization = request.headers[.authorization] else {
            throw challenge("authentication required: send Authorization: Bearer TOKEN (the token of admin.token_file)")
        }
        guard let presented = Self.presentedToken(authorization), Self.constantTimeEqual(presented, token) else {
            // Who tried, never what they sent.
            context.logger.notice("Admin API: wrong token", metadata: ["peer": "\(context.remoteAddress?.ipAddress ?? "unknown")"])
            throw challenge("authentication failed: the token does not match admin.token_file")
        }
        return try await next(request, context)
    }

    private func challenge(_ message: String) -> RelayAdminAPIError {
        RelayAdminAPIError(status: .unauthorized, message: message, headers: [.wwwAuthenticate: "Basic realm=\"\(Self.realm)\""])
    }

    /// The token in a Bearer or Basic `Authorization` value; nil for other schemes or malformed values.
    static func presentedToken(_ authorization: String) -> [UInt8]? {
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { return nil }
        let credentials = parts[1].trimmingCharacters(in: .whitespaces)
        switch parts[0].lowercased() {
        case "bearer":
            return Array(credentials.utf8)
        case "basic":
            guard let decoded = Data(base64Encoded: credentials), let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { return nil }
            return Array(decoded[decoded.index(after: colon)...])
        default:
            return nil
        }
    }

    /// Compares every byte whatever the first difference, so the time taken
    /// does not tell an attacker how much of a guess was right.
    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        var difference: UInt8 = lhs.count == rhs.count ? 0 : 1
        for index in 0..<max(lhs.count, rhs.count) {
            let left = index < lhs.count ? lhs[index] : 0
            let right = index < rhs.count ? rhs[index] : 0
            difference |= left ^ right
        }
        return difference == 0
    }
}

/// Answers errors that are not the API's own (an unknown path, a failure
/// Hummingbird would turn into an empty 500) as `{"error": "..."}`.
struct RelayAdminErrorMiddleware: RouterMiddleware {
    typealias Context = RelayAdminRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as RelayAdminAPIError {
            throw error
        } catch let error as HTTPError where error.status == .notFound && !RelayAdminAPI.allowedMethods(at: request.uri.path).isEmpty {
            // The path exists with other methods: say which (RFC 9110 §15.5.6).
            let allowed = RelayAdminAPI.allowedMethods(at: request.uri.path)
            throw RelayAdminAPIError(
                status: .methodNotAllowed, message: "\(request.method) is not allowed on \(request.uri.path); use \(allowed.map(\.rawValue).joined(separator: " or "))",
                headers: [.allow: allowed.map(\.rawValue).joined(separator: ", ")])
        } catch let error as HTTPError {
            let message = error.body ?? (error.status == .notFound ? "no such path: \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            throw RelayAdminAPIError(status: error.status, message: message, headers: error.headers)
        } catch let error as any HTTPResponseError {
            throw error
        } catch {
            context.logger.error("Admin API: unexpected error", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            throw RelayAdminAPIError(status: .internalServerError, message: "internal error; see the relay's log")
        }
    }
}
