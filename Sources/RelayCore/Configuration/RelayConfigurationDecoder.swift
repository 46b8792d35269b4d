import Foundation
import SMTPCore
import Yams

extension RelayConfiguration {
    /// Parses and validates a configuration file's text.
    ///
    /// The YAML is composed into nodes and walked by hand rather than decoded
    /// with `Codable`, so that an unknown key is an error naming its full path
    /// (`routes[1].smtp_endpoin`) and so that every problem in the file is
    /// collected, syntax and semantics, before anything is thrown.
    /// - Parameter fileName: used in problem reports only.
    public static func parse(yaml: String, fileName: String) throws(RelayConfigurationError) -> RelayConfiguration {
        let decoder = RelayConfigurationDecoder(fileName: fileName)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw RelayConfigurationError(problems: [decoder.syntaxProblem(error)])
        }
        let configuration = decoder.decodeRoot(root)
        for (keyPath, reason) in configuration.validationProblems(skipping: decoder.itemsWithProblems) {
            decoder.report(keyPath, reason)
        }
        guard decoder.problems.isEmpty else { throw RelayConfigurationError(problems: decoder.problems) }
        return configuration
    }
}

/// Walks a composed YAML document into a ``RelayConfiguration``, recording
/// problems instead of stopping at the first. Used once, then dropped.
final class RelayConfigurationDecoder {
    let fileName: String
    private(set) var problems: [RelayConfigurationError.Problem] = []
    /// List items (`routes[1]`) with a problem, so that semantic validation
    /// does not pile consequences on top of the cause.
    private(set) var itemsWithProblems: Set<String> = []

    init(fileName: String) {
        self.fileName = fileName
    }

    func report(_ keyPath: String, _ reason: String) {
        problems.append(.init(file: fileName, keyPath: keyPath, reason: reason))
        if let bracket = keyPath.firstIndex(of: "]") {
            itemsWithProblems.insert(String(keyPath[...bracket]))
        }
    }

    func syntaxProblem(_ error: any Error) -> RelayConfigurationError.Problem {
        var location = "(yaml)"
        var reason = "invalid YAML"
        if let yamlError = error as? YamlError {
            switch yamlError {
            case .scanner(let context, let problem, let mark, _),
                 .parser(let context, let problem, let mark, _),
                 .composer(let context, let problem, let mark, _):
                location = "line \(mark.line), column \(mark.column)"
                reason = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
            case .reader(let problem, _, _, _):
                reason = problem
            case .duplicatedKeysInMapping(let duplicates, let context):
                location = "line \(context.mark.line)"
                reason = "key given twice: " + duplicates.joined(separator: ", ")
            default:
                reason = String(describing: yamlError)
            }
        }
        return .init(file: fileName, keyPath: location, reason: reason)
    }

    // MARK: Sections

    func decodeRoot(_ root: Node?) -> RelayConfiguration {
        var configuration = RelayConfiguration()
        let fields: Fields
        if let root {
            guard let mapping = mapping(root, at: "", keys: [
                "server", "storage", "clients", "routes", "delivery", "dkim", "admin", "alerts", "trace", "logging", "dns",
            ]) else { return configuration }
            fields = mapping
        } else {
            fields = Fields(decoder: self, path: "", values: [:])
        }
        if let server = fields.nested("server", keys: ["hostname", "listeners", "tls", "limits", "public_addresses"]) {
            configuration.server = decodeServer(server)
        }
        if let storage = fields.nested("storage", keys: ["url"], secrets: ["password"]) {
            configuration.storage = decodeStorage(storage)
        }
        // Items that fail keep a placeholder, so that indices in later problem reports match the file.
        configuration.clients = fields.items("clients").map { decodeClient($0.node, at: $0.path) }
        configuration.routes = fields.items("routes").map { decodeRoute($0.node, at: $0.path) }
        if let delivery = fields.nested("delivery", keys: ["retry", "max_age", "bounces", "operator", "concurrency", "route_pause", "tenant_stop"]) {
            configuration.delivery = decodeDelivery(delivery)
        }
        configuration.dkim = fields.items("dkim").map { decodeDKIM($0.node, at: $0.path) }
        if let admin = fields.nested("admin", keys: ["address"], secrets: ["token"]) {
            var result = RelayConfiguration.Admin()
            if let address = admin.endpoint("address") { result.address = address }
            result.token = admin.secret("token")
            configuration.admin = result
        }
        if let alerts = fields.nested("alerts", keys: [
            "webhook_url", "format", "queue_size", "queue_age", "repeat_interval", "auth_failures", "auth_window",
            "expiry_warning", "check_interval", "ca_file",
        ]) {
            var result = RelayConfiguration.Alerts()
            result.webhookURL = alerts.url("webhook_url")
            if let value: RelayConfiguration.Alerts.Format = alerts.choice("format") { result.format = value }
            if let value = alerts.int("queue_size", minimum: 1) { result.queueSize = value }
            if let value = alerts.duration("queue_age") { result.queueAge = value }
            if let value = alerts.duration("repeat_interval") { result.repeatInterval = value }
            if let value = alerts.int("auth_failures", minimum: 1) { result.authFailures = value }
            if let value = alerts.duration("auth_window") { result.authWindow = value }
            if let value = alerts.duration("expiry_warning") { result.expiryWarning = value }
            if let value = alerts.duration("check_interval") { result.checkInterval = value }
            if let value = alerts.string("ca_file") {
                if value.isEmpty { report(alerts.keyPath("ca_file"), "empty file name") } else { result.caFile = value }
            }
            configuration.alerts = result
        }
        if let trace = fields.nested("trace", keys: ["retention", "keep_bodies"]) {
            if let value = trace.duration("retention") { configuration.trace.retention = value }
            if let value = trace.duration("keep_bodies", allowZero: true) { configuration.trace.keepBodies = value }
        }
        if let dns = fields.nested("dns", keys: ["server", "timeout"]) {
            configuration.dns.server = dns.endpoint("server")
            if let value = dns.duration("timeout") { configuration.dns.timeout = value }
        }
        if let logging = fields.nested("logging", keys: ["format", "level"]) {
            if let value: RelayConfiguration.Logging.Format = logging.choice("format") { configuration.logging.format = value }
            if let value = logging.string("level") {
                if RelayConfiguration.Logging.levels.contains(value) {
                    configuration.logging.level = value
                } else {
                    report(logging.keyPath("level"), "`\(value)` is not one of \(RelayConfiguration.Logging.levels.map { "`\($0)`" }.joined(separator: ", "))")
                }
            }
        }
        return configuration
    }

    func decodeServer(_ fields: Fields) -> RelayConfiguration.Server {
        var server = RelayConfiguration.Server()
        if let hostname = fields.string("hostname") {
            if RelayEndpoint.isHostName(Substring(hostname)) {
                server.hostname = hostname
            } else {
                report(fields.keyPath("hostname"), "`\(hostname)` is not a host name")
            }
        }
        server.listeners = fields.items("listeners").map { item in
            guard let listener = mapping(item.node, at: item.path, keys: ["address", "tls", "require_tls", "allow_plaintext_auth"]) else {
                return RelayConfiguration.Listener(address: RelayEndpoint(host: "", port: 0))
            }
            let address = listener.endpoint("address", required: true) ?? RelayEndpoint(host: "", port: 0)
            var result = RelayConfiguration.Listener(address: address)
            if let tls: RelayConfiguration.ListenerTLS = listener.choice("tls") { result.tls = tls }
            if let value = listener.bool("require_tls") { result.requireTLS = value }
            if let value = listener.bool("allow_plaintext_auth") { result.allowPlaintextAuth = value }
            return result
        }
        if let addresses = fields.stringList("public_addresses") {
            server.publicAddresses = addresses.compactMap { text in
                guard let address = RelayIPAddress(parsing: text) else {
                    report(fields.keyPath("public_addresses"), "`\(text)` is not an IPv4 or IPv6 address")
                    return nil
                }
                return address
            }
        }
        if let tls = fields.nested("tls", keys: ["certificate_file", "min_version"], secrets: ["private_key"]) {
            let certificate = tls.string("certificate_file", required: true)
            let key = tls.secret("private_key", required: true)
            let version: RelayConfiguration.TLSVersion? = tls.choice("min_version")
            if let certificate, let key {
                server.tls = .init(certificateFile: certificate, privateKey: key, minimumVersion: version ?? .v1_2)
            }
        }
        if let limits = fields.nested("limits", keys: [
            "max_message_size", "max_recipients", "max_connections", "max_connections_per_ip", "idle_timeout",
            "command_timeout", "data_timeout", "max_errors", "max_junk_commands", "max_command_line_length", "max_line_length",
            "auth_failures", "auth_lockout", "greeting_delay", "min_data_rate",
        ]) {
            var result = RelayConfiguration.Limits()
            if let value = limits.size("max_message_size") { result.maxMessageSize = value }
            if let value = limits.int("max_recipients", minimum: 1) { result.maxRecipients = value }
            if let value = limits.int("max_connections", minimum: 1) { result.maxConnections = value }
            if let value = limits.int("max_connections_per_ip", minimum: 1) { result.maxConnectionsPerIP = value }
            if let value = limits.duration("idle_timeout") { result.idleTimeout = value }
            if let value = limits.duration("command_timeout") { result.commandTimeout = value }
            if let value = limits.duration("data_timeout") { result.dataTimeout = value }
            if let value = limits.int("max_errors", minimum: 1) { result.maxErrors = value }
            if let value = limits.int("max_junk_commands", minimum: 0) { result.maxJunkCommands = value }
            if let value = limits.int("max_command_line_length", minimum: 512, because: "RFC 5321 §4.5.3.1.4 requires at least 512") {
                result.maxCommandLineLength = value
            }
            if let value = limits.int("max_line_length", minimum: 1000, because: "RFC 5321 §4.5.3.1.6 requires at least 1000") {
                result.maxLineLength = value
            }
            if let value = limits.int("auth_failures", minimum: 1) { result.authFailures = value }
            if let value = limits.duration("auth_lockout") { result.authLockout = value }
            if let value = limits.duration("greeting_delay", allowZero: true) { result.greetingDelay = value }
            if let text = limits.string("min_data_rate") {
                // Octets per second; a size unit is allowed (`1KB` is 1024 per second).
                let digits = text.hasSuffix("/s") ? String(text.dropLast(2)) : text
                if let value = RelayConfigurationSyntax.size(digits), value >= 0 {
                    result.minDataRate = value
                } else {
                    report(limits.keyPath("min_data_rate"), "`\(text)` is not a rate; expected octets per second, e.g. `500`, `1KB` or `0` (off)")
                }
            }
            server.limits = result
        }
        return server
    }

    func decodeStorage(_ fields: Fields) -> RelayConfiguration.Storage {
        var storage = RelayConfiguration.Storage()
        if let url = fields.string("url") {
            if let location = RelayStorageLocation(parsing: url) {
                storage.location = location
            } else {
                report(fields.keyPath("url"), "expected `sqlite:PATH` or `postgres://...`")
            }
        }
        storage.password = fields.secret("password")
        return storage
    }

    func decodeClient(_ node: Node, at path: String) -> RelayConfiguration.Client {
        guard let fields = mapping(node, at: path, keys: [
            "name", "networks", "auth", "username", "allowed_senders", "rewrite_sender",
            "rewrite_display_name", "reply_to_original", "allowed_recipients", "rate_limit", "route", "strip_headers",
        ], secrets: ["password_hash"]) else { return RelayConfiguration.Client(name: "", route: "") }
        let name = fields.string("name", required: true)
        let route = fields.string("route", required: true)
        var client = RelayConfiguration.Client(name: name ?? "", route: route ?? "")
        if let networks = fields.stringList("networks") {
            client.networks = networks.enumerated().compactMap { index, text in
                guard let network = RelayNetwork(parsing: text) else {
                    report("\(fields.keyPath("networks"))[\(index)]", "`\(text)` is not a network (CIDR such as 10.0.0.0/24 or fd00::/64)")
                    return nil
                }
                return network
            }
        }
        if let auth: RelayConfiguration.ClientAuth = fields.choice("auth") { client.auth = auth }
        client.username = fields.string("username")
        client.passwordHash = fields.secret("password_hash")
        if let patterns = fields.addressPatterns("allowed_senders") { client.allowedSenders = patterns }
        if let patterns = fields.addressPatterns("allowed_recipients", allowInternal: true) { client.allowedRecipients = patterns }
        client.rewriteSender = fields.address("rewrite_sender")
        if let text = fields.string("rewrite_display_name") {
            switch text {
            case "keep": client.rewriteDisplayName = .keep
            case "drop": client.rewriteDisplayName = .drop
            default:
                if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                    report(fields.keyPath("rewrite_display_name"), "control characters are not allowed in a display name")
                } else {
                    client.rewriteDisplayName = .replace(text)
                }
            }
        }
        if let value = fields.bool("reply_to_original") { client.replyToOriginal = value }
        if let names = fields.stringList("strip_headers") {
            client.stripHeaders = names.enumerated().compactMap { index, name in
                // RFC 5322 §3.6.8: a field name is printable ASCII without the colon.
                guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 && $0 != ":" }) else {
                    report("\(fields.keyPath("strip_headers"))[\(index)]", "`\(name)` is not a header field name (printable ASCII, no spaces or colon)")
                    return nil
                }
                return name
            }
        }
        if let text = fields.string("rate_limit") {
            if let limit = RelayRateLimit(parsing: text) {
                client.rateLimit = limit
            } else {
                report(fields.keyPath("rate_limit"), "`\(text)` is not a rate; expected e.g. `120/min`, `5/s` or `1000/h`")
            }
        }
        return client
    }

    func decodeRoute(_ node: Node, at path: String) -> RelayConfiguration.Route {
        guard let fields = mapping(node, at: path, keys: [
            "name", "mode", "tenant_id", "client_id", "client_certificate_file", "login_url", "graph_url",
            "smtp_endpoint", "ca_file", "tls", "username", "mailbox", "scope", "quotas", "quota_margin",
            "fallback", "max_message_size", "mx_endpoint", "domain", "accepted_domains", "large_messages",
            "client_secret_expires",
        ], secrets: ["client_secret", "client_key", "password", "token"]) else { return RelayConfiguration.Route(name: "", mode: .sandbox) }
        let name = fields.string("name", required: true)
        let mode: RelayConfiguration.RouteMode? = fields.choice("mode", required: true)
        // The mode picks the defaults; a route without a valid mode is still
        // kept (as `sandbox`) so that references to its name resolve.
        var route = RelayConfiguration.Route(name: name ?? "", mode: mode ?? .sandbox)
        route.tenantID = fields.string("tenant_id")
        route.clientID = fields.string("client_id")
        route.clientSecret = fields.secret("client_secret")
        if let text = fields.string("client_secret_expires") {
            if let day = RelayConfigurationSyntax.day(text) {
                route.clientSecretExpires = day
            } else {
                report(fields.keyPath("client_secret_expires"), "`\(text)` is not a day; expected `YYYY-MM-DD`, e.g. `2026-06-30`")
            }
            if route.clientSecret == nil {
                report(fields.keyPath("client_secret_expires"), "given without `client_secret_file` or `client_secret_env`")
            }
        }
        route.clientCertificateFile = fields.string("client_certificate_file")
        route.clientKey = fields.secret("client_key")
        if let url = fields.url("login_url") { route.loginURL = url }
        if let url = fields.url("graph_url") { route.graphURL = url }
        if let endpoint = fields.endpoint("smtp_endpoint") {
            if endpoint.port == 0 {
                report(fields.keyPath("smtp_endpoint"), "port 0 is not a port to connect to")
            } else {
                route.smtpEndpoint = endpoint
            }
        }
        route.caFile = fields.string("ca_file")
        if let tls: RelayConfiguration.RouteTLS = fields.choice("tls") { route.tls = tls }
        route.username = fields.string("username")
        route.password = fields.secret("password")
        route.token = fields.secret("token")
        route.mailbox = fields.address("mailbox")
        route.scope = fields.string("scope")
        if let quotas = fields.nested("quotas", keys: ["messages_per_minute", "recipients_per_day", "connections", "requests_per_10_minutes"]) {
            if let value = quotas.int("messages_per_minute", minimum: 1) { route.quotas.messagesPerMinute = value }
            if let value = quotas.int("recipients_per_day", minimum: 1) { route.quotas.recipientsPerDay = value }
            if let value = quotas.int("connections", minimum: 1) { route.quotas.connections = value }
            if let value = quotas.int("requests_per_10_minutes", minimum: 1) { route.quotas.requestsPer10Minutes = value }
        }
        if let text = fields.string("quota_margin") {
            if let margin = Self.parseFraction(text), margin >= 0, margin < 0.5 {
                route.quotaMargin = margin
            } else {
                report(fields.keyPath("quota_margin"), "expected a percentage below 50%, such as `5%` or `0.05`")
            }
        }
        route.fallback = fields.string("fallback")
        if let size = fields.size("max_message_size") { route.maxMessageSize = size }
        if let endpoint = fields.endpoint("mx_endpoint") {
            if endpoint.port == 0 {
                report(fields.keyPath("mx_endpoint"), "port 0 is not a port to connect to")
            } else {
                route.mxEndpoint = endpoint
            }
        }
        route.domain = fields.string("domain")
        if let domains = fields.stringList("accepted_domains") { route.acceptedDomains = domains }
        if let choice: RelayConfiguration.LargeMessages = fields.choice("large_messages") { route.largeMessages = choice }
        return route
    }

    func decodeDelivery(_ fields: Fields) -> RelayConfiguration.Delivery {
        var delivery = RelayConfiguration.Delivery()
        if let items = fields.stringList("retry") {
            var delays: [TimeInterval] = []
            for (index, text) in items.enumerated() {
                let keyPath = "\(fields.keyPath("retry"))[\(index)]"
                guard let delay = RelayConfigurationSyntax.duration(text) else {
                    report(keyPath, "`\(text)` is not a duration; expected e.g. `30s`, `5m`, `1h`, `5d`")
                    continue
                }
                guard delay > 0 else {
                    report(keyPath, "a retry delay must be positive")
                    continue
                }
                delays.append(delay)
            }
            delivery.retry = delays
        }
        if let value = fields.duration("max_age") { delivery.maxAge = value }
        if let bounces: RelayConfiguration.BounceTarget = fields.choice("bounces") { delivery.bounces = bounces }
        delivery.operatorAddress = fields.address("operator")
        if let value = fields.int("concurrency", minimum: 1) { delivery.concurrency = value }
        if let value = fields.duration("route_pause") { delivery.routePause = value }
        if let value = fields.duration("tenant_stop") { delivery.tenantStop = value }
        return delivery
    }

    func decodeDKIM(_ node: Node, at path: String) -> RelayConfiguration.DKIM {
        let placeholder = RelayConfiguration.DKIM(domain: "", selector: "", privateKey: .file(""))
        guard let fields = mapping(node, at: path, keys: ["domain", "selector", "headers"], secrets: ["private_key"]) else { return placeholder }
        let domain = fields.string("domain", required: true)
        let selector = fields.string("selector", required: true)
        let key = fields.secret("private_key", required: true)
        if let domain, (try? SMTPMailbox(parsing: "x@" + domain)) == nil {
            report(fields.keyPath("domain"), "`\(domain)` is not a domain")
        }
        guard let domain, let selector, let key else { return placeholder }
        var dkim = RelayConfiguration.DKIM(domain: domain, selector: selector, privateKey: key)
        if let headers = fields.stringList("headers") { dkim.headers = headers }
        return dkim
    }

    /// `5%` or `0.05`.
    static func parseFraction(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasSuffix("%") {
            return Double(trimmed.dropLast().trimmingCharacters(in: .whitespaces)).map { $0 / 100 }
        }
        return Double(trimmed)
    }

    // MARK: Nodes

    /// The entries of a mapping node, with unknown keys reported.
    ///
    /// - Parameter secrets: base names `X` of secret keys: `X_file` and
    ///   `X_env` are allowed, and an inline `X` gets an error that says so.
    func mapping(_ node: Node, at path: String, keys allowed: [String], secrets: [String] = []) -> Fields? {
        if Self.isNull(node) {
            return Fields(decoder: self, path: path, values: [:])
        }
        guard case .mapping(let mapping) = node else {
            report(path.isEmpty ? "(document)" : path, "expected a mapping of keys to values, found \(Self.kind(node))")
            return nil
        }
        let known = Set(allowed + secrets.flatMap { [$0 + "_file", $0 + "_env"] })
        var values: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string, !Self.isNull(keyNode) else {
                report(path.isEmpty ? "(document)" : path, "keys must be plain names")
                continue
            }
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            if secrets.contains(key) {
                report(keyPath, "secrets are not accepted inline; use `\(key)_file` or `\(key)_env`")
            } else if !known.contains(key) {
                let suggestion = Self.closest(to: key, in: known).map { " (did you mean `\($0)`?)" } ?? ""
                report(keyPath, "unknown key" + suggestion)
            } else {
                values[key] = value
            }
        }
        return Fields(decoder: self, path: path, values: values)
    }

    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): "the value `\(scalar.string)`"
        case .mapping: "a mapping"
        case .sequence: "a list"
        default: "an alias"
        }
    }

    /// The allowed key nearest to a misspelt one, when it is near enough to be a typo.
    static func closest(to key: String, in candidates: Set<String>) -> String? {
        let scored = candidates.map { ($0, editDistance(key, $0)) }.filter { $0.1 <= max(2, key.count / 4) }
        return scored.min { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }?.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// The known keys of one mapping, with typed accessors that report problems
/// under the key's full path and return nil for a missing or bad value.
struct Fields {
    let decoder: RelayConfigurationDecoder
    let path: String
    let values: [String: Node]

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The node for `key`, nil when absent or null; reports a missing required key.
    func node(_ key: String, required: Bool = false) -> Node? {
        guard let node = values[key], !RelayConfigurationDecoder.isNull(node) else {
            if required { decoder.report(keyPath(key), "required") }
            return nil
        }
        return node
    }

    func string(_ key: String, required: Bool = false) -> String? {
        guard let node = node(key, required: required) else { return nil }
        guard case .scalar(let scalar) = node else {
            decoder.report(keyPath(key), "expected a single value, found \(RelayConfigurationDecoder.kind(node))")
            return nil
        }
        return scalar.string
    }

    func bool(_ key: String) -> Bool? {
        guard let text = string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            decoder.report(keyPath(key), "expected `true` or `false`, found `\(text)`")
            return nil
        }
    }

    func int(_ key: String, minimum: Int, because reason: String? = nil) -> Int? {
        guard let text = string(key) else { return nil }
        let digits = text.replacingOccurrences(of: "_", with: "")
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits) else {
            decoder.report(keyPath(key), "expected a whole number, found `\(text)`")
            return nil
        }
        guard value >= minimum else {
            decoder.report(keyPath(key), reason ?? "must be at least \(minimum)")
            return nil
        }
        return value
    }

    /// A positive duration (or zero, when `allowZero`).
    func duration(_ key: String, allowZero: Bool = false) -> TimeInterval? {
        guard let text = string(key) else { return nil }
        guard let value = RelayConfigurationSyntax.duration(text) else {
            decoder.report(keyPath(key), "`\(text)` is not a duration; expected e.g. `30s`, `5m`, `1h`, `5d`")
            return nil
        }
        guard value > 0 || (allowZero && value == 0) else {
            decoder.report(keyPath(key), "must be positive")
            return nil
        }
        return value
    }

    /// A positive size.
    func size(_ key: String) -> Int? {
        guard let text = string(key) else { return nil }
        guard let value = RelayConfigurationSyntax.size(text) else {
            decoder.report(keyPath(key), "`\(text)` is not a size; expected e.g. `35MB`, `512KB` or a number of bytes")
            return nil
        }
        guard value > 0 else {
            decoder.report(keyPath(key), "must be positive")
            return nil
        }
        return value
    }

    func endpoint(_ key: String, required: Bool = false) -> RelayEndpoint? {
        guard let text = string(key, required: required) else { return nil }
        guard let endpoint = RelayEndpoint(parsing: text) else {
            decoder.report(keyPath(key), "`\(text)` is not `host:port` (IPv6 as `[::1]:25`)")
            return nil
        }
        return endpoint
    }

    /// An `http` or `https` URL with a host.
    func url(_ key: String) -> String? {
        guard let text = string(key) else { return nil }
        guard let (scheme, _) = RelayConfiguration.urlSchemeAndHost(text), scheme == "https" || scheme == "http",
              !text.contains(where: { $0.isWhitespace })
        else {
            decoder.report(keyPath(key), "expected an `https://` URL")
            return nil
        }
        return text
    }

    func choice<Value: RawRepresentable & CaseIterable>(_ key: String, required: Bool = false) -> Value? where Value.RawValue == String {
        guard let text = string(key, required: required) else { return nil }
        guard let value = Value(rawValue: text) else {
            let options = Value.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", ")
            decoder.report(keyPath(key), "`\(text)` is not one of \(options)")
            return nil
        }
        return value
    }

    /// A list of single values; one value alone is taken as a list of one.
    func stringList(_ key: String) -> [String]? {
        guard let node = node(key) else {
            // An explicitly empty list is `[]`, which is not null: absent stays nil.
            return nil
        }
        switch node {
        case .scalar(let scalar):
            return [scalar.string]
        case .sequence(let sequence):
            var result: [String] = []
            for (index, item) in sequence.enumerated() {
                guard case .scalar(let scalar) = item, !RelayConfigurationDecoder.isNull(item) else {
                    decoder.report("\(keyPath(key))[\(index)]", "expected a single value, found \(RelayConfigurationDecoder.kind(item))")
                    continue
                }
                result.append(scalar.string)
            }
            return result
        default:
            decoder.report(keyPath(key), "expected a list, found \(RelayConfigurationDecoder.kind(node))")
            return nil
        }
    }

    /// The items of a list of mappings, each with its path (`routes[1]`).
    func items(_ key: String) -> [(node: Node, path: String)] {
        guard let node = node(key) else { return [] }
        guard case .sequence(let sequence) = node else {
            decoder.report(keyPath(key), "expected a list, found \(RelayConfigurationDecoder.kind(node))")
            return []
        }
        return sequence.enumerated().map { (node: $0.element, path: "\(keyPath(key))[\($0.offset)]") }
    }

    /// A nested section; null (`admin:`) is an empty section.
    func nested(_ key: String, keys: [String], secrets: [String] = []) -> Fields? {
        guard let node = values[key] else { return nil }
        return decoder.mapping(node, at: keyPath(key), keys: keys, secrets: secrets)
    }

    /// `X_file` or `X_env`, never both.
    func secret(_ base: String, required: Bool = false) -> RelaySecretSource? {
        let file = string(base + "_file")
        let environment = string(base + "_env")
        switch (file, environment) {
        case (let file?, nil):
            guard !file.isEmpty else { decoder.report(keyPath(base + "_file"), "empty file name"); return nil }
            return .file(file)
        case (nil, let name?):
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                decoder.report(keyPath(base + "_env"), "`\(name)` is not an environment variable name")
                return nil
            }
            return .environment(name)
        case (.some, .some):
            decoder.report(keyPath(base + "_file"), "give either `\(base)_file` or `\(base)_env`, not both")
            return nil
        case (nil, nil):
            if required { decoder.report(keyPath(base + "_file"), "required (or `\(base)_env`)") }
            return nil
        }
    }

    /// A mailbox `user@domain`.
    func address(_ key: String) -> String? {
        guard let text = string(key) else { return nil }
        do {
            return try SMTPMailbox(parsing: text).address
        } catch {
            decoder.report(keyPath(key), "`\(text)` is not an email address: \(error)")
            return nil
        }
    }

    /// `user@domain`, `*@domain` or `*`.
    /// - Parameter allowInternal: accept `internal` (the route's accepted domains), for recipients.
    func addressPatterns(_ key: String, allowInternal: Bool = false) -> [String]? {
        guard let list = stringList(key) else { return nil }
        var result: [String] = []
        for (index, pattern) in list.enumerated() {
            if RelayConfigurationDecoder.isAddressPattern(pattern) || (allowInternal && pattern == RelayConfiguration.internalRecipients) {
                result.append(pattern)
            } else {
                decoder.report("\(keyPath(key))[\(index)]", "`\(pattern)` is not a pattern; expected `user@domain`, `*@domain` or `*`" + (allowInternal ? ", or `internal`" : ""))
            }
        }
        return result
    }
}

extension RelayConfigurationDecoder {
    static func isAddressPattern(_ pattern: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasPrefix("*@") {
            return (try? SMTPMailbox(parsing: "x" + pattern.dropFirst())) != nil
        }
        return (try? SMTPMailbox(parsing: pattern)) != nil
    }
}
