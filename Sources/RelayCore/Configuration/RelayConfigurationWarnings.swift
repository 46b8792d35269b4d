extension RelayConfiguration {
    /// A part of the contract that the parser accepts but that a given build
    /// of the relay may not act on yet.
    public enum Feature: String, Sendable, Hashable, CaseIterable {
        case dkim
        case alerts
        case graphRoutes = "mode: graph"
        case connectorRoutes = "mode: connector"
        case directSendRoutes = "mode: direct-send"
        case passwordClients = "auth: password"
        case rewriteSender = "rewrite_sender"
        case rewriteDisplayName = "rewrite_display_name"
        case replyToOriginal = "reply_to_original"
        case clientRateLimit = "rate_limit"
        /// OAuth client credentials (secret or certificate); `token_file` works without it.
        case oauthClientCredentials = "client_secret / client certificate"
        case postgresStorage = "postgres storage"
    }

    /// What this build does not act on yet. Remove a case when the feature lands.
    public static let featuresNotYetImplemented: Set<Feature> = Set(Feature.allCases)
        .subtracting([.graphRoutes, .connectorRoutes, .directSendRoutes, .oauthClientCredentials, .dkim])
        .subtracting([.passwordClients, .clientRateLimit])
        .subtracting([.rewriteSender, .rewriteDisplayName, .replyToOriginal])
        .subtracting([.alerts])

    /// One line per configured key that this build parses but ignores, so
    /// that `check-config` and `serve` can say so instead of silently
    /// doing less than the file asks.
    ///
    /// Computed from the model rather than stored by the parser, so that a
    /// configuration built in code gets the same warnings and equality is
    /// not affected.
    public var warnings: [String] { warnings(notImplemented: Self.featuresNotYetImplemented) }

    /// ``warnings`` against a given set of missing features.
    public func warnings(notImplemented missing: Set<Feature>) -> [String] {
        var result: [String] = []
        func warn(_ feature: Feature, _ keyPath: String, _ text: String) {
            if missing.contains(feature) { result.append("\(keyPath): \(text)") }
        }
        for (index, client) in clients.enumerated() {
            let path = "clients[\(index)]"
            if client.auth == .password {
                warn(.passwordClients, "\(path).auth", "`password` clients are not supported yet; this client cannot log in")
            }
            if client.rewriteSender != nil {
                warn(.rewriteSender, "\(path).rewrite_sender", "not applied yet; the sender is kept as given")
            }
            if client.rewriteDisplayName != .keep {
                warn(.rewriteDisplayName, "\(path).rewrite_display_name", "not applied yet")
            }
            if client.replyToOriginal {
                warn(.replyToOriginal, "\(path).reply_to_original", "not applied yet")
            }
            if client.rateLimit != nil {
                warn(.clientRateLimit, "\(path).rate_limit", "not enforced yet")
            }
        }
        for (index, route) in routes.enumerated() {
            let path = "routes[\(index)]"
            switch route.mode {
            case .graph: warn(.graphRoutes, "\(path).mode", "`graph` delivery is not implemented yet; messages for this route stay queued")
            case .connector: warn(.connectorRoutes, "\(path).mode", "`connector` delivery is not implemented yet; messages for this route stay queued")
            case .directSend: warn(.directSendRoutes, "\(path).mode", "`direct-send` delivery is not implemented yet; messages for this route stay queued")
            case .smtp, .sandbox: break
            }
            if route.token == nil && (route.clientSecret != nil || route.clientCertificateFile != nil) {
                warn(.oauthClientCredentials, path, "OAuth token acquisition is not implemented yet; use token_file for now")
            }
        }
        if case .postgres = storage.location {
            warn(.postgresStorage, "storage.url", "PostgreSQL storage is not implemented yet")
        }
        if !dkim.isEmpty {
            warn(.dkim, "dkim", "DKIM signing is not implemented yet; messages are sent unsigned")
        }
        if alerts != nil {
            warn(.alerts, "alerts", "alerts are not sent yet")
        }
        if case .postgres(let url) = storage.location, RelayConfiguration.urlHasInlinePassword(url) {
            result.append("storage.url: carries an inline password; prefer storage.password_file or storage.password_env")
        }
        return result
    }
}
