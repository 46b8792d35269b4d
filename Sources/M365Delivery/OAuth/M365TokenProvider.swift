import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RelayCore
import SMTPCore

/// App-only OAuth tokens from the Microsoft identity platform (client
/// credentials grant), cached per scope.
///
/// - Concurrent callers for one scope share one request (single flight):
///   fifty deliveries starting at once make one token request.
/// - A token is refreshed ahead of expiry, in the background while it is in
///   use: ``Settings/refreshMargin`` before it expires (10 minutes: High
///   Volume Email refuses tokens closer to expiry), or at half its lifetime
///   when it lives shorter than twice the margin.
/// - ``invalidate(scope:token:)`` drops a token the server refused, so the
///   next caller fetches a new one.
///
/// Neither the secret, the assertion nor a token reaches a log or an error.
/// - SeeAlso: M365.md, OAuth; RFC 6749 §4.4 (client credentials grant)
public actor M365TokenProvider {
    /// How the app proves its identity.
    public enum Credential: Sendable, CustomStringConvertible {
        /// A client secret's value.
        case secret(SASLSecret)
        /// A certificate uploaded to the app registration, and its RSA key (PKCS#1 or PKCS#8 PEM).
        case certificate(certificatePEM: String, privateKeyPEM: SASLSecret)

        public var description: String {
            switch self {
            case .secret: "secret(<redacted>)"
            case .certificate: "certificate(<redacted key>)"
            }
        }
    }

    public struct Settings: Sendable {
        /// `https://login.microsoftonline.com`, a national cloud's host, or the sandbox's base URL.
        public var loginURL: String
        public var tenantID: String
        public var clientID: String
        public var credential: Credential
        /// Refresh this long before expiry (M365.md: at least 10 minutes).
        public var refreshMargin: TimeInterval = 600
        /// One token request, connection included.
        public var requestTimeout: TimeAmount = .seconds(30)

        public init(loginURL: String = "https://login.microsoftonline.com", tenantID: String, clientID: String, credential: Credential) {
            self.loginURL = loginURL
            self.tenantID = tenantID
            self.clientID = clientID
            self.credential = credential
        }

        /// `{loginURL}/{tenant}/oauth2/v2.0/token`: also the `aud` of client assertions.
        public var tokenEndpoint: String {
            var base = loginURL
            while base.hasSuffix("/") { base.removeLast() }
            let tenant = tenantID.addingPercentEncoding(withAllowedCharacters: .m365Unreserved) ?? tenantID
            return "\(base)/\(tenant)/oauth2/v2.0/token"
        }
    }

    private struct Entry {
        var token: M365AccessToken?
        /// Whether the token was handed out: an unused one is not refreshed in the background.
        var used = false
        var fetch: Task<Result<M365AccessToken, M365TokenError>, Never>?
        var timer: Task<Void, Never>?
    }

    public nonisolated let settings: Settings
    private let certificate: M365CertificateCredential?
    private let client: HTTPClient
    private let logger: Logger
    private let now: @Sendable () -> Date
    private var entries: [String: Entry] = [:]
    /// Token requests sent so far, for metrics and tests.
    public private(set) var requestCount = 0

    /// - Throws: ``M365TokenError`` with ``M365TokenError/Code-swift.struct/invalidCredential``
    ///   when the certificate or key cannot be used.
    public init(settings: Settings, httpClient: HTTPClient, logger: Logger, now: @escaping @Sendable () -> Date = Date.init) throws(M365TokenError) {
        self.settings = settings
        if case .certificate(let certificatePEM, let keyPEM) = settings.credential {
            certificate = try M365CertificateCredential(certificatePEM: certificatePEM, privateKeyPEM: keyPEM)
        } else {
            certificate = nil
        }
        self.client = httpClient
        self.logger = logger
        self.now = now
    }

    deinit {
        for entry in entries.values { entry.timer?.cancel() }
    }

    /// A token for `scope` with time left, from the cache or a new request.
    public func token(scope: String) async throws(M365TokenError) -> M365AccessToken {
        let current = now()
        if let token = entries[scope]?.token, current < refreshPoint(of: token) {
            entries[scope]?.used = true
            return token
        }
        let result = await startFetch(scope: scope).value
        switch result {
        case .success(let token):
            entries[scope]?.used = true
            return token
        case .failure(let error):
            // A refresh that failed while the old token still has a margin left: use the old one.
            if let old = entries[scope]?.token, now() < old.expiresAt.addingTimeInterval(-min(60, old.lifetime / 4)) {
                logger.warning("Token refresh failed; the current token is still valid", metadata: ["scope": "\(scope)", "error": "\(error)"])
                entries[scope]?.used = true
                return old
            }
            throw error
        }
    }

    /// Drops the cached token of `scope` after the server refused it (`535 5.7.3`,
    /// Graph `401`). With `token`, only when the cache still holds that token:
    /// ten deliveries refused with the same token cause one new request, not ten.
    public func invalidate(scope: String, token: SASLSecret? = nil) {
        guard let cached = entries[scope]?.token else { return }
        if let token, cached.value != token { return }
        entries[scope]?.token = nil
        entries[scope]?.timer?.cancel()
        entries[scope]?.timer = nil
        logger.notice("Access token refused by the server; it will be fetched again", metadata: ["scope": "\(scope)"])
    }

    /// When the cached token that expires first does; nil before the first token.
    public func earliestExpiry() -> Date? {
        entries.values.compactMap { $0.token?.expiresAt }.min()
    }

    /// Stops background refreshes.
    public func shutdown() {
        for key in entries.keys {
            entries[key]?.timer?.cancel()
            entries[key]?.timer = nil
        }
    }

    /// When a token should be replaced.
    public nonisolated func refreshPoint(of token: M365AccessToken) -> Date {
        let margin = settings.refreshMargin
        if token.lifetime >= 2 * margin { return token.expiresAt.addingTimeInterval(-margin) }
        return token.issuedAt.addingTimeInterval(token.lifetime / 2)
    }

    // MARK: Fetching

    private func startFetch(scope: String) -> Task<Result<M365AccessToken, M365TokenError>, Never> {
        if let running = entries[scope]?.fetch { return running }
        let task = Task { await self.fetchAndStore(scope: scope) }
        entries[scope, default: Entry()].fetch = task
        return task
    }

    private func fetchAndStore(scope: String) async -> Result<M365AccessToken, M365TokenError> {
        requestCount += 1
        let result = await request(scope: scope)
        entries[scope, default: Entry()].fetch = nil
        switch result {
        case .success(let token):
            entries[scope]?.token = token
            entries[scope]?.used = false
            schedule(scope: scope, token: token)
            logger.debug("Access token issued", metadata: ["scope": "\(scope)", "expires_in": "\(Int(token.lifetime))"])
        case .failure(let error):
            logger.error("Token request failed", metadata: ["scope": "\(scope)", "error": "\(error)"])
        }
        return result
    }

    /// Refreshes at the refresh point if the token was used meanwhile; an
    /// idle route's token simply ages, and its next caller fetches a new one.
    private func schedule(scope: String, token: M365AccessToken) {
        entries[scope]?.timer?.cancel()
        let delay = max(0, refreshPoint(of: token).timeIntervalSince(now()))
        entries[scope]?.timer = Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
            guard !Task.isCancelled else { return }
            await self?.refreshInBackground(scope: scope, issued: token.value)
        }
    }

    private func refreshInBackground(scope: String, issued: SASLSecret) {
        guard let entry = entries[scope], entry.token?.value == issued, entry.used, entry.fetch == nil else { return }
        _ = startFetch(scope: scope)
    }

    /// One token request.
    private nonisolated func request(scope: String) async -> Result<M365AccessToken, M365TokenError> {
        let endpoint = settings.tokenEndpoint
        var form: [(String, String)] = [
            ("grant_type", "client_credentials"),
            ("client_id", settings.clientID),
            ("scope", scope),
        ]
        let issuedAt = now()
        switch settings.credential {
        case .secret(let secret):
            form.append(("client_secret", secret.unredacted))
        case .certificate:
            guard let certificate else { return .failure(M365TokenError(.invalidCredential, failure: M365TokenFailure(status: nil, error: "invalid_certificate_credential"))) }
            do {
                let assertion = try M365ClientAssertion.make(credential: certificate, clientID: settings.clientID, audience: endpoint, now: issuedAt)
                form.append(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"))
                form.append(("client_assertion", assertion.unredacted))
            } catch {
                return .failure(M365TokenError(.invalidCredential, failure: M365TokenFailure(status: nil, error: "invalid_certificate_credential", detail: "signing the client assertion failed")))
            }
        }
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: Self.formEncode(form)))

        let status: Int
        let body: ByteBuffer
        do {
            let response = try await client.execute(request, timeout: settings.requestTimeout)
            status = Int(response.status.code)
            body = try await response.body.collect(upTo: 1024 * 1024)
        } catch {
            let failure = M365ConnectionFailure(classifying: error)
            // The error text of NIO and AsyncHTTPClient names hosts, never form fields.
            return .failure(M365TokenError(.unreachable, failure: M365TokenFailure(status: nil, error: "unreachable", detail: failure.map { "\($0)" } ?? String(describing: type(of: error))), connectionFailure: failure))
        }
        let json = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any]
        guard (200..<300).contains(status) else {
            return .failure(M365TokenError(.refused, failure: Self.failure(status: status, json: json)))
        }
        guard let json, let value = json["access_token"] as? String, !value.isEmpty else {
            return .failure(M365TokenError(.invalidResponse, failure: M365TokenFailure(status: status, error: "invalid_response", detail: "no access_token in the reply")))
        }
        let expiresIn = (json["expires_in"] as? NSNumber)?.doubleValue ?? (json["expires_in"] as? String).flatMap(Double.init) ?? 3600
        return .success(M365AccessToken(value: SASLSecret(value), scope: scope, issuedAt: issuedAt, expiresAt: issuedAt.addingTimeInterval(expiresIn)))
    }

    /// Microsoft's error JSON as a failure: the `AADSTS` code and the description
    /// without the trace and correlation ids (which change every time and name nothing useful).
    public static func failure(status: Int, json: [String: Any]?) -> M365TokenFailure {
        let error = json?["error"] as? String ?? "http_\(status)"
        let description = json?["error_description"] as? String ?? ""
        return failure(status: status, error: error, description: description)
    }

    public static func failure(status: Int?, error: String, description: String) -> M365TokenFailure {
        var code: String?
        if description.hasPrefix("AADSTS") {
            let digits = description.dropFirst(6).prefix { $0.isNumber }
            if !digits.isEmpty { code = "AADSTS" + digits }
        }
        // Microsoft appends the ids on new lines (`\r\n`), some proxies on one line: cut at the first.
        var text = Substring(description)
        for marker in ["Trace ID:", "Correlation ID:", "Timestamp:"] {
            if let range = text.range(of: marker) { text = text[..<range.lowerBound] }
        }
        var lines: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("Trace ID:") || trimmed.hasPrefix("Correlation ID:") || trimmed.hasPrefix("Timestamp:") { continue }
            lines.append(trimmed)
        }
        return M365TokenFailure(status: status, error: error, code: code, detail: lines.joined(separator: " "))
    }

    /// `application/x-www-form-urlencoded`.
    static func formEncode(_ fields: [(String, String)]) -> String {
        fields.map { name, value in
            let encode = { (text: String) in text.addingPercentEncoding(withAllowedCharacters: .m365Unreserved) ?? "" }
            return "\(encode(name))=\(encode(value))"
        }.joined(separator: "&")
    }
}

extension CharacterSet {
    /// RFC 3986 unreserved characters: everything else is percent-encoded.
    static let m365Unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}
