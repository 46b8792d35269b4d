import HTTPTypes
import Hummingbird
import RelayCore

/// Keeps other web sites out of the admin server through the administrator's browser.
///
/// - Cross-site requests: a page elsewhere can make the browser POST to
///   `127.0.0.1:8025` (a "simple" request needs no preflight). Browsers say
///   where such a request comes from (`Sec-Fetch-Site`, `Origin`); a
///   state-changing request (POST, DELETE, ...) from another site is refused.
///   Scripts and the commands send neither header and pass.
/// - DNS rebinding: a name the attacker controls can be made to resolve to
///   127.0.0.1, so that its pages read the admin server as their own origin.
///   A server bound to loopback therefore answers only requests addressed to
///   a loopback host (`127.0.0.1`, `[::1]`, `localhost`).
struct RelayAdminBrowserGuard: RouterMiddleware {
    typealias Context = RelayAdminRequestContext

    /// Whether the server is bound to a loopback address.
    let loopbackOnly: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // HTTP/1.1's Host header arrives as the request's authority.
        let host = request.head.authority
        if loopbackOnly, let host, !Self.isLoopbackHost(host) {
            throw RelayAdminAPIError(
                status: .misdirectedRequest,
                message: "this admin server answers only for loopback host names (127.0.0.1, [::1], localhost), not \(host)")
        }
        if !Self.isSafe(request.method), let site = Self.crossSite(request, host: host) {
            context.logger.notice("Admin API: cross-site request refused", metadata: ["method": "\(request.method)", "path": "\(request.uri.path)", "from": "\(site)"])
            throw RelayAdminAPIError(status: .forbidden, message: "cross-site \(request.method) refused: the admin API acts only for its own pages and for scripts")
        }
        return try await next(request, context)
    }

    static func isSafe(_ method: HTTPRequest.Method) -> Bool {
        method == .get || method == .head || method == .options
    }

    /// Where a cross-site request comes from; nil when it is same-origin or not from a browser.
    static func crossSite(_ request: Request, host: String?) -> String? {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!]?.lowercased(), site != "same-origin", site != "none" {
            return "Sec-Fetch-Site: \(site)"
        }
        if let origin = request.headers[.origin] {
            // Origin is `scheme://host[:port]` (or `null`); its authority must be the Host the request was sent to.
            let authority = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init)
            guard let authority, let host, authority.lowercased() == host.lowercased() else { return "Origin: \(origin)" }
        }
        return nil
    }

    /// `127.0.0.1:8025`, `[::1]:8025`, `localhost`, any 127/8 address; a port is allowed.
    static func isLoopbackHost(_ host: String) -> Bool {
        var name = host.lowercased()
        if name.hasPrefix("[") {
            guard let end = name.firstIndex(of: "]") else { return false }
            return RelayEndpoint(host: String(name[name.index(after: name.startIndex)..<end]), port: 0).isLoopback
        }
        if let colon = name.lastIndex(of: ":") { name = String(name[..<colon]) }
        return RelayEndpoint(host: name, port: 0).isLoopback
    }
}

/// The host rule, for tests.
public enum RelayAdminBrowserGuardProbe {
    public static func isLoopbackHost(_ host: String) -> Bool { RelayAdminBrowserGuard.isLoopbackHost(host) }
}
