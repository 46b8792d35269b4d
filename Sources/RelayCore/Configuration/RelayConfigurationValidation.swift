import Foundation

extension RelayConfiguration {
    /// Checks the rules that span keys (references, uniqueness, TLS needs).
    ///
    /// ``parse(yaml:fileName:)`` already runs this; call it for a
    /// configuration built in code (``builtInSandbox(dataDirectory:)``, tests).
    public func validate(fileName: String = "(built-in)") throws(RelayConfigurationError) {
        let problems = validationProblems(skipping: [])
        guard problems.isEmpty else {
            throw RelayConfigurationError(problems: problems.map { .init(file: fileName, keyPath: $0.keyPath, reason: $0.reason) })
        }
    }

    /// Problems as `(keyPath, reason)`, in file order.
    /// - Parameter items: list items (`routes[1]`) that already have a parse
    ///   problem; their own checks are skipped so a consequence is not
    ///   reported as a second cause. Cross-references to them still count.
    func validationProblems(skipping items: Set<String>) -> [(keyPath: String, reason: String)] {
        var problems: [(keyPath: String, reason: String)] = []
        func report(_ keyPath: String, _ reason: String) { problems.append((keyPath, reason)) }

        // server
        if server.listeners.isEmpty {
            report("server.listeners", "at least one listener is required")
        }
        var seenListeners: [RelayEndpoint: Int] = [:]
        for (index, listener) in server.listeners.enumerated() where !items.contains("server.listeners[\(index)]") {
            let path = "server.listeners[\(index)]"
            // Port 0 asks the system for a free port each time, so it never collides.
            if listener.address.port != 0, let first = seenListeners[listener.address] {
                report("\(path).address", "\(listener.address) is already used by server.listeners[\(first)]")
            } else {
                seenListeners[listener.address] = index
            }
            if listener.tls != .none && server.tls == nil {
                report("\(path).tls", "`\(listener.tls.rawValue)` needs server.tls.certificate_file and server.tls.private_key_file")
            }
            if listener.requireTLS && listener.tls == .none {
                report("\(path).require_tls", "needs `tls: starttls` (there is no TLS to require)")
            }
        }
        // RFC 5321 §4.5.3.2.1: a client waits 5 minutes for the greeting; a delay near it loses every client.
        if server.limits.greetingDelay >= 60 {
            report("server.limits.greeting_delay", "must be under a minute (clients give up waiting for the greeting)")
        }
        if server.limits.greetingDelay >= server.limits.commandTimeout {
            report("server.limits.greeting_delay", "must be shorter than command_timeout")
        }

        // routes
        if routes.isEmpty {
            report("routes", "at least one route is required")
        }
        var routeIndex: [String: Int] = [:]
        for (index, route) in routes.enumerated() where !route.name.isEmpty {
            if let first = routeIndex[route.name] {
                report("routes[\(index)].name", "`\(route.name)` is also the name of routes[\(first)]")
            } else {
                routeIndex[route.name] = index
            }
        }
        for (index, route) in routes.enumerated() where !items.contains("routes[\(index)]") {
            routeProblems(route, at: "routes[\(index)]", routeIndex: routeIndex, report: report)
        }

        // clients
        if clients.isEmpty {
            report("clients", "at least one client is required")
        }
        var clientIndex: [String: Int] = [:]
        var usernames: [String: Int] = [:]
        for (index, client) in clients.enumerated() {
            let path = "clients[\(index)]"
            if client.name.isEmpty {
                // Missing: already reported.
            } else if let first = clientIndex[client.name] {
                report("\(path).name", "`\(client.name)` is also the name of clients[\(first)]")
            } else {
                clientIndex[client.name] = index
            }
            if !client.route.isEmpty && routeIndex[client.route] == nil {
                report("\(path).route", "no route is named `\(client.route)`")
            } else if client.allowedRecipients.contains(Self.internalRecipients),
                      route(named: client.route)?.effectiveAcceptedDomains.isEmpty == true {
                report("\(path).allowed_recipients", "`internal` needs the route `\(client.route)` to name its `domain` or `accepted_domains`")
            }
            if client.auth == .password, let username = client.username {
                if let first = usernames[username] {
                    report("\(path).username", "`\(username)` is also the username of clients[\(first)]")
                } else {
                    usernames[username] = index
                }
            }
            guard !items.contains(path) else { continue }
            switch client.auth {
            case .none:
                if client.networks.isEmpty {
                    report("\(path).networks", "an `auth: none` client needs networks: it is matched by source address")
                }
                if client.username != nil {
                    report("\(path).username", "only for `auth: password`")
                }
                if client.passwordHash != nil {
                    report("\(path).password_hash_file", "only for `auth: password`")
                }
            case .password:
                if client.username == nil {
                    report("\(path).username", "required for `auth: password`")
                }
                if client.passwordHash == nil {
                    report("\(path).password_hash_file", "required for `auth: password` (or password_hash_env); make one with `m365-relay hash-password`")
                }
            }
            if client.rewriteSender == nil {
                if client.rewriteDisplayName != .keep {
                    report("\(path).rewrite_display_name", "only applies with rewrite_sender")
                }
                if client.replyToOriginal {
                    report("\(path).reply_to_original", "only applies with rewrite_sender")
                }
            }
        }

        // delivery
        if delivery.retry.isEmpty {
            report("delivery.retry", "at least one retry delay is required")
        }
        if delivery.bounces == .operator && delivery.operatorAddress == nil {
            report("delivery.operator", "required with `bounces: operator`")
        }

        // dkim
        var signatures: [String: Int] = [:]
        for (index, dkim) in dkim.enumerated() where !items.contains("dkim[\(index)]") {
            let key = "\(dkim.selector)._domainkey.\(dkim.domain.lowercased())"
            if let first = signatures[key] {
                report("dkim[\(index)]", "\(key) is also configured by dkim[\(first)]")
            } else {
                signatures[key] = index
            }
            if !dkim.headers.contains(where: { $0.lowercased() == "from" }) {
                report("dkim[\(index)].headers", "must include From (RFC 6376 §5.4)")
            }
        }

        // admin, alerts
        if let admin, !admin.address.isLoopback, admin.token == nil {
            report("admin.token_file", "required when admin.address is not loopback: the admin API would be open to the network")
        }
        if let alerts, alerts.webhookURL == nil {
            report("alerts.webhook_url", "required in an `alerts` section")
        }
        return problems
    }

    private func routeProblems(
        _ route: Route, at path: String, routeIndex: [String: Int],
        report: (String, String) -> Void
    ) {
        if let fallback = route.fallback {
            if fallback == route.name {
                report("\(path).fallback", "a route cannot fall back to itself")
            } else if routeIndex[fallback] == nil {
                report("\(path).fallback", "no route is named `\(fallback)`")
            } else {
                // Follow the chain: a loop would bounce an oversized message forever.
                var seen: Set<String> = [route.name]
                var next: String? = fallback
                while let name = next, let target = self.route(named: name) {
                    if seen.contains(name) {
                        report("\(path).fallback", "fallbacks form a loop through `\(name)`")
                        break
                    }
                    seen.insert(name)
                    next = target.fallback
                }
            }
        }

        // Plaintext only to this machine.
        if route.tls == .none {
            if let endpoint = route.smtpEndpoint {
                if !endpoint.isLoopback {
                    report("\(path).tls", "`none` is only allowed for a loopback smtp_endpoint; \(endpoint) is not loopback")
                }
            } else if route.mode != .sandbox && route.mode != .graph {
                report("\(path).tls", "`none` is only allowed with a loopback smtp_endpoint")
            }
        }
        for (key, url) in [("login_url", route.loginURL), ("graph_url", route.graphURL)] {
            if let (scheme, host) = Self.urlSchemeAndHost(url), scheme == "http" {
                let endpoint = RelayEndpoint(host: host, port: 0)
                if !endpoint.isLoopback {
                    report("\(path).\(key)", "`http` is only allowed for a loopback host; use https")
                }
            }
        }

        // Credentials.
        let hasSecret = route.clientSecret != nil
        let hasCertificate = route.clientCertificateFile != nil || route.clientKey != nil
        if route.clientCertificateFile != nil && route.clientKey == nil {
            report("\(path).client_key_file", "required with client_certificate_file (or client_key_env)")
        }
        if route.clientKey != nil && route.clientCertificateFile == nil {
            report("\(path).client_certificate_file", "required with client_key_file")
        }
        if hasSecret && hasCertificate {
            report("\(path).client_secret_file", "give either a client secret or a client certificate, not both")
        }
        if route.username != nil && route.password == nil {
            report("\(path).password_file", "required with username (or password_env)")
        }
        if route.password != nil && route.username == nil {
            report("\(path).username", "required with password_file")
        }
        let hasAppCredentials = route.tenantID != nil && route.clientID != nil && (hasSecret || hasCertificate)
        // A connector's certificate is its TLS client identity, not an app credential.
        if (hasSecret || (hasCertificate && route.mode != .connector)) && (route.tenantID == nil || route.clientID == nil) {
            report(route.tenantID == nil ? "\(path).tenant_id" : "\(path).client_id", "required with a client secret or certificate")
        }
        switch route.mode {
        case .smtp:
            // A loopback endpoint (a local sink, a benchmark) may take mail without AUTH.
            let loopback = route.smtpEndpoint?.isLoopback == true
            if !hasAppCredentials && route.token == nil && route.username == nil && !loopback {
                report(path, "an `smtp` route needs credentials: tenant_id, client_id and client_secret_file (or client_certificate_file and client_key_file); or token_file; or username and password_file")
            }
        case .graph:
            if !hasAppCredentials && route.token == nil {
                report(path, "a `graph` route needs tenant_id, client_id and client_secret_file (or client_certificate_file and client_key_file), or token_file")
            }
            if route.username != nil {
                report("\(path).username", "basic authentication does not apply to `graph`")
            }
        case .connector, .directSend:
            if route.effectiveMXEndpoint == nil {
                report(path, "a `\(route.mode.rawValue)` route needs `domain` (the tenant's MX is derived from it) or `mx_endpoint`")
            }
            if route.mode == .directSend && route.effectiveAcceptedDomains.isEmpty {
                report("\(path).accepted_domains", "Direct Send delivers only inside the tenant: give `domain` or `accepted_domains`")
            }
            if route.mode == .directSend && (hasAppCredentials || route.username != nil) {
                report(path, "Direct Send takes no credentials; use mode `smtp` or `graph` to authenticate")
            }
        case .sandbox:
            break
        }
        if route.largeMessages == .fallback && route.fallback == nil {
            report("\(path).large_messages", "`fallback` needs the route's `fallback` to name another route")
        }
    }
}
