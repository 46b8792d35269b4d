import Foundation
import Yams

extension RelayConfiguration {
    /// The effective configuration, every default filled in, as YAML that
    /// ``parse(yaml:fileName:)`` reads back; what `check-config` prints.
    ///
    /// Secret *references* (`password_file: /etc/...`, `token_env: NAME`) are
    /// shown: they are not secrets. Inline values that can carry one are
    /// redacted: the password in a `postgres://user:password@host` URL and in
    /// password-like query parameters, and the path and query of
    /// `alerts.webhook_url` (Teams and Slack webhook URLs are bearer
    /// capabilities). Such values read back as `<redacted>`.
    ///
    /// `scope` appears only when set; its effective value is ``Route/effectiveScope``.
    public func renderRedacted() -> String {
        var sections: [(String, Node)] = [
            ("server", renderServer()),
            ("storage", mapping([
                ("url", Node(Self.redactedURL(storage.location.description))),
            ] + secretPairs("password", storage.password))),
            ("clients", Node(clients.map(renderClient))),
            ("routes", Node(routes.map(renderRoute))),
            ("delivery", mapping([
                ("retry", flowList(delivery.retry.map(RelayConfigurationSyntax.formatDuration))),
                ("max_age", Node(RelayConfigurationSyntax.formatDuration(delivery.maxAge))),
                ("bounces", Node(delivery.bounces.rawValue)),
                ("operator", delivery.operatorAddress.map { Node($0) }),
                ("concurrency", Node(String(delivery.concurrency))),
                ("route_pause", Node(RelayConfigurationSyntax.formatDuration(delivery.routePause))),
                ("tenant_stop", Node(RelayConfigurationSyntax.formatDuration(delivery.tenantStop))),
            ])),
        ]
        if !dkim.isEmpty {
            sections.append(("dkim", Node(dkim.map { entry in
                mapping([
                    ("domain", Node(entry.domain)),
                    ("selector", Node(entry.selector)),
                ] + secretPairs("private_key", entry.privateKey) + [
                    ("headers", flowList(entry.headers)),
                ])
            })))
        }
        if let admin {
            sections.append(("admin", mapping([("address", Node(admin.address.description))] + secretPairs("token", admin.token))))
        }
        if let alerts {
            sections.append(("alerts", mapping([
                ("webhook_url", alerts.webhookURL.map { Node(Self.redactedWebhookURL($0)) }),
                ("format", Node(alerts.format.rawValue)),
                ("queue_size", Node(String(alerts.queueSize))),
                ("queue_age", Node(RelayConfigurationSyntax.formatDuration(alerts.queueAge))),
                ("repeat_interval", Node(RelayConfigurationSyntax.formatDuration(alerts.repeatInterval))),
                ("auth_failures", Node(String(alerts.authFailures))),
                ("auth_window", Node(RelayConfigurationSyntax.formatDuration(alerts.authWindow))),
                ("expiry_warning", Node(RelayConfigurationSyntax.formatDuration(alerts.expiryWarning))),
                ("check_interval", Node(RelayConfigurationSyntax.formatDuration(alerts.checkInterval))),
                ("ca_file", alerts.caFile.map { Node($0) }),
            ])))
        }
        sections.append(("trace", mapping([
            ("retention", Node(RelayConfigurationSyntax.formatDuration(trace.retention))),
            ("keep_bodies", Node(RelayConfigurationSyntax.formatDuration(trace.keepBodies))),
        ])))
        sections.append(("dns", mapping([
            ("server", dns.server.map { Node($0.description) }),
            ("timeout", Node(RelayConfigurationSyntax.formatDuration(dns.timeout))),
        ])))
        sections.append(("logging", mapping([
            ("format", Node(logging.format.rawValue)),
            ("level", Node(logging.level)),
        ])))
        let root = Node(sections.map { (Node($0.0), $0.1) })
        let body = (try? Yams.serialize(node: root, width: -1, allowUnicode: true)) ?? ""
        return "# m365-relay effective configuration: defaults filled in, secrets redacted\n" + body
    }

    private func renderServer() -> Node {
        let limits = server.limits
        return mapping([
            ("hostname", Node(server.hostname)),
            ("listeners", Node(server.listeners.map { listener in
                mapping([
                    ("address", Node(listener.address.description)),
                    ("tls", Node(listener.tls.rawValue)),
                    ("require_tls", Node(String(listener.requireTLS))),
                    ("allow_plaintext_auth", Node(String(listener.allowPlaintextAuth))),
                ])
            })),
            ("tls", server.tls.map { tls in
                mapping([("certificate_file", Node(tls.certificateFile))]
                    + secretPairs("private_key", tls.privateKey)
                    + [("min_version", Node(tls.minimumVersion.rawValue, .implicit, .doubleQuoted))])
            }),
            ("public_addresses", server.publicAddresses.isEmpty ? nil : flowList(server.publicAddresses.map(\.description))),
            ("limits", mapping([
                ("max_message_size", Node(RelayConfigurationSyntax.formatSize(limits.maxMessageSize))),
                ("max_recipients", Node(String(limits.maxRecipients))),
                ("max_connections", Node(String(limits.maxConnections))),
                ("max_connections_per_ip", Node(String(limits.maxConnectionsPerIP))),
                ("idle_timeout", Node(RelayConfigurationSyntax.formatDuration(limits.idleTimeout))),
                ("command_timeout", Node(RelayConfigurationSyntax.formatDuration(limits.commandTimeout))),
                ("data_timeout", Node(RelayConfigurationSyntax.formatDuration(limits.dataTimeout))),
                ("max_errors", Node(String(limits.maxErrors))),
                ("max_junk_commands", Node(String(limits.maxJunkCommands))),
                ("max_command_line_length", Node(String(limits.maxCommandLineLength))),
                ("max_line_length", Node(String(limits.maxLineLength))),
                ("auth_failures", Node(String(limits.authFailures))),
                ("auth_lockout", Node(RelayConfigurationSyntax.formatDuration(limits.authLockout))),
                ("greeting_delay", Node(RelayConfigurationSyntax.formatDuration(limits.greetingDelay))),
                ("min_data_rate", Node(String(limits.minDataRate))),
            ])),
        ])
    }

    private func renderClient(_ client: Client) -> Node {
        let displayName: String
        switch client.rewriteDisplayName {
        case .keep: displayName = "keep"
        case .drop: displayName = "drop"
        case .replace(let name): displayName = name
        }
        return mapping([
            ("name", Node(client.name)),
            ("networks", flowList(client.networks.map(\.description))),
            ("auth", Node(client.auth.rawValue)),
            ("username", client.username.map { Node($0) }),
        ] + secretPairs("password_hash", client.passwordHash) + [
            ("allowed_senders", flowList(client.allowedSenders)),
            ("rewrite_sender", client.rewriteSender.map { Node($0) }),
            ("rewrite_display_name", Node(displayName)),
            ("reply_to_original", Node(String(client.replyToOriginal))),
            ("allowed_recipients", flowList(client.allowedRecipients)),
            ("rate_limit", client.rateLimit.map { Node($0.description) }),
            ("strip_headers", client.stripHeaders.isEmpty ? nil : flowList(client.stripHeaders)),
            ("route", Node(client.route)),
        ])
    }

    private func renderRoute(_ route: Route) -> Node {
        let quotas = route.quotas
        let quotaPairs: [(String, Node?)] = [
            ("messages_per_minute", quotas.messagesPerMinute.map { Node(String($0)) }),
            ("recipients_per_day", quotas.recipientsPerDay.map { Node(String($0)) }),
            ("connections", quotas.connections.map { Node(String($0)) }),
            ("requests_per_10_minutes", quotas.requestsPer10Minutes.map { Node(String($0)) }),
        ]
        let percent = (route.quotaMargin * 100_000).rounded() / 1000
        let margin = percent / 100 == route.quotaMargin
            ? (percent == percent.rounded() ? "\(Int(percent))%" : "\(percent)%")
            : "\(route.quotaMargin)"
        return mapping([
            ("name", Node(route.name)),
            ("mode", Node(route.mode.rawValue)),
            ("tenant_id", route.tenantID.map { Node($0) }),
            ("client_id", route.clientID.map { Node($0) }),
        ] + secretPairs("client_secret", route.clientSecret) + [
            ("client_secret_expires", route.clientSecretExpires.map { Node(RelayConfigurationSyntax.formatDay($0)) }),
            ("client_certificate_file", route.clientCertificateFile.map { Node($0) }),
        ] + secretPairs("client_key", route.clientKey) + [
            ("login_url", Node(Self.redactedURL(route.loginURL))),
            ("graph_url", Node(Self.redactedURL(route.graphURL))),
            ("smtp_endpoint", route.smtpEndpoint.map { Node($0.description) }),
            ("ca_file", route.caFile.map { Node($0) }),
            ("tls", Node(route.tls.rawValue)),
            ("username", route.username.map { Node($0) }),
        ] + secretPairs("password", route.password) + secretPairs("token", route.token) + [
            ("mailbox", route.mailbox.map { Node($0) }),
            ("scope", route.scope.map { Node($0) }),
            ("quotas", quotaPairs.contains { $0.1 != nil } ? mapping(quotaPairs, style: .flow) : nil),
            ("quota_margin", Node(margin)),
            ("fallback", route.fallback.map { Node($0) }),
            ("max_message_size", Node(RelayConfigurationSyntax.formatSize(route.maxMessageSize))),
            ("mx_endpoint", route.mxEndpoint.map { Node($0.description) }),
            ("domain", route.domain.map { Node($0) }),
            ("accepted_domains", route.acceptedDomains.isEmpty ? nil : flowList(route.acceptedDomains)),
            ("large_messages", route.mode == .graph ? Node(route.largeMessages.rawValue) : nil),
        ])
    }

    private func mapping(_ pairs: [(String, Node?)], style: Node.Mapping.Style = .block) -> Node {
        Node(pairs.compactMap { key, value in value.map { (Node(key), $0) } }, .implicit, style)
    }

    private func flowList(_ items: [String]) -> Node {
        Node(items.map { Node($0) }, .implicit, .flow)
    }

    private func secretPairs(_ base: String, _ source: RelaySecretSource?) -> [(String, Node?)] {
        switch source {
        case .file(let path): [(base + "_file", Node(path))]
        case .environment(let name): [(base + "_env", Node(name))]
        case nil: []
        }
    }

    // MARK: Redaction

    static let redacted = "<redacted>"
    private static let secretQueryNames: Set<String> = [
        "password", "pass", "pwd", "secret", "client_secret", "token", "access_token", "key", "apikey",
        "api_key", "sig", "signature", "code",
    ]

    /// Splits `scheme://authority/rest` into its three parts; nil without `://`.
    private static func splitURL(_ url: String) -> (scheme: Substring, authority: Substring, rest: Substring)? {
        guard let separator = url.range(of: "://") else { return nil }
        let afterScheme = url[separator.upperBound...]
        let authorityEnd = afterScheme.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? afterScheme.endIndex
        return (url[..<separator.upperBound], afterScheme[..<authorityEnd], afterScheme[authorityEnd...])
    }

    /// The lowercased scheme and the host of `scheme://[user@]host[:port]/...`, without brackets.
    static func urlSchemeAndHost(_ url: String) -> (scheme: String, host: String)? {
        guard let parts = splitURL(url) else { return nil }
        var host = parts.authority
        if let at = host.lastIndex(of: "@") { host = host[host.index(after: at)...] }
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            host = host[host.index(after: host.startIndex)..<close]
        } else if let colon = host.firstIndex(of: ":") {
            host = host[..<colon]
        }
        guard !host.isEmpty else { return nil }
        return (String(parts.scheme.dropLast(3)).lowercased(), String(host))
    }

    /// Whether `scheme://user:password@host` carries a password.
    static func urlHasInlinePassword(_ url: String) -> Bool {
        guard let parts = splitURL(url), let at = parts.authority.lastIndex(of: "@") else { return false }
        return parts.authority[..<at].contains(":") || redactedQuery(parts.rest) != parts.rest
    }

    /// The URL with a userinfo password and password-like query values replaced by `<redacted>`.
    static func redactedURL(_ url: String) -> String {
        guard let parts = splitURL(url) else { return url }
        return parts.scheme + redactedAuthority(parts.authority) + redactedQuery(parts.rest)
    }

    /// Scheme and host only: a webhook URL's path and query are often the credential.
    public static func redactedWebhookURL(_ url: String) -> String {
        guard let parts = splitURL(url) else { return redacted }
        let rest = parts.rest == "/" || parts.rest.isEmpty ? parts.rest : "/" + redacted
        return parts.scheme + redactedAuthority(parts.authority) + rest
    }

    private static func redactedAuthority(_ authority: Substring) -> String {
        guard let at = authority.lastIndex(of: "@") else { return String(authority) }
        let userinfo = authority[..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return String(authority) }
        return userinfo[...colon] + redacted + authority[at...]
    }

    private static func redactedQuery(_ rest: Substring) -> Substring {
        guard let question = rest.firstIndex(of: "?") else { return rest }
        let fragmentStart = rest[question...].firstIndex(of: "#") ?? rest.endIndex
        let query = rest[rest.index(after: question)..<fragmentStart]
        let parameters = query.split(separator: "&", omittingEmptySubsequences: false).map { parameter -> String in
            guard let equals = parameter.firstIndex(of: "="),
                  secretQueryNames.contains(parameter[..<equals].lowercased()) else { return String(parameter) }
            return parameter[...equals] + redacted
        }
        return Substring(rest[...question] + parameters.joined(separator: "&") + rest[fragmentStart...])
    }
}
