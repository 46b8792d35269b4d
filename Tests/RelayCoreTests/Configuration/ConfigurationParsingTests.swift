import Foundation
import Testing
@testable import RelayCore

@Suite("Configuration parsing")
struct ConfigurationParsingTests {
    typealias Config = RelayConfiguration

    /// Parses, failing the test with every problem when the text is refused.
    func parse(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Config {
        do {
            return try Config.parse(yaml: yaml, fileName: "test.yaml")
        } catch {
            Issue.record("refused:\n\(error.description)", sourceLocation: sourceLocation)
            throw error
        }
    }

    /// The problems of a text that must be refused.
    func problems(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [RelayConfigurationError.Problem] {
        do {
            _ = try Config.parse(yaml: yaml, fileName: "test.yaml")
            Issue.record("accepted a configuration that should be refused", sourceLocation: sourceLocation)
            return []
        } catch {
            return error.problems
        }
    }

    @Test func productExampleParsesWithEveryValue() throws {
        let config = try parse(ConfigurationFixtures.productExample)

        #expect(config.server.hostname == "relay.contoso.local")
        #expect(config.server.listeners.count == 2)
        #expect(config.server.listeners[0].address == RelayEndpoint(host: "0.0.0.0", port: 25))
        #expect(config.server.listeners[0].tls == .starttls)
        #expect(config.server.listeners[1].tls == .implicit)
        #expect(config.server.listeners[1].requireTLS == false)
        #expect(config.server.tls?.certificateFile == "/etc/m365-relay/relay.crt")
        #expect(config.server.tls?.privateKey == .file("/etc/m365-relay/relay.key"))
        #expect(config.server.tls?.minimumVersion == .v1_2)
        #expect(config.server.limits.maxMessageSize == 35 * 1_048_576)
        #expect(config.server.limits.idleTimeout == 300)
        // Not in the example: defaults.
        #expect(config.server.limits.dataTimeout == 600)
        #expect(config.server.limits.maxCommandLineLength == 512)
        #expect(config.server.limits.authFailures == 5)
        #expect(config.server.limits.authLockout == 900)

        #expect(config.storage.location == .sqlite(path: "/var/lib/m365-relay/relay.sqlite"))

        #expect(config.clients.map(\.name) == ["scanners", "erp"])
        let scanners = config.clients[0]
        #expect(scanners.networks.map(\.description) == ["10.20.0.0/24", "fd00:20::/64"])
        #expect(scanners.auth == .none)
        #expect(scanners.allowedSenders == ["scanner@contoso.com"])
        #expect(scanners.rewriteSender == "scanner@contoso.com")
        #expect(scanners.rewriteDisplayName == .keep)
        #expect(scanners.allowedRecipients == ["*"])
        #expect(scanners.route == "tenant")
        let erp = config.clients[1]
        #expect(erp.auth == .password)
        #expect(erp.username == "erp")
        #expect(erp.passwordHash == .file("/etc/m365-relay/erp.hash"))
        #expect(erp.rateLimit == RelayRateLimit(count: 120, period: 60))
        #expect(erp.allowedRecipients == ["*"], "default")

        let tenant = try #require(config.route(named: "tenant"))
        #expect(tenant.mode == .graph)
        #expect(tenant.tenantID == "contoso.onmicrosoft.com")
        #expect(tenant.clientCertificateFile == "/etc/m365-relay/app.crt")
        #expect(tenant.clientKey == .file("/etc/m365-relay/app.key"))
        #expect(tenant.quotas == .init(messagesPerMinute: 30, recipientsPerDay: 10_000, connections: 3, requestsPer10Minutes: 10_000))
        #expect(tenant.fallback == "tenant-smtp")
        #expect(tenant.maxMessageSize == 150 * 1_048_576, "graph default")
        #expect(tenant.effectiveScope == "https://graph.microsoft.com/.default")
        #expect(tenant.quotaMargin == 0.05)
        let smtp = try #require(config.route(named: "tenant-smtp"))
        #expect(smtp.mode == .smtp)
        #expect(smtp.smtpEndpoint == RelayEndpoint(host: "smtp.office365.com", port: 587), "smtp default")
        #expect(smtp.clientSecret == .file("/etc/m365-relay/app.secret"))
        #expect(smtp.tls == .required)
        #expect(smtp.maxMessageSize == 35 * 1_048_576)
        #expect(smtp.effectiveScope == "https://outlook.office365.com/.default")

        #expect(config.delivery.retry == [60, 300, 900, 3600, 14_400])
        #expect(config.delivery.maxAge == 5 * 86_400)
        #expect(config.delivery.bounces == .sender)
        #expect(config.delivery.operatorAddress == "it-alerts@contoso.com")
        #expect(config.delivery.concurrency == 16)

        #expect(config.dkim == [.init(domain: "contoso.com", selector: "relay2026", privateKey: .file("/etc/m365-relay/dkim-contoso.key"))])
        #expect(config.dkim.first?.headers.first == "From")
        #expect(config.admin == .init(address: RelayEndpoint(host: "127.0.0.1", port: 8025), token: .file("/etc/m365-relay/admin.token")))
        #expect(config.alerts?.webhookURL == "https://alerts.contoso.local/relay")
    }

    @Test func productExampleWarnsAboutWhatIsNotActedOn() throws {
        let config = try parse(ConfigurationFixtures.productExample)
        let warnings = config.warnings
        // Graph, connector and Direct Send routes and OAuth app credentials are acted on.
        #expect(!warnings.contains { $0.hasPrefix("routes[") })
        // Password clients and client rate limits are acted on.
        #expect(!warnings.contains { $0.hasPrefix("clients[1].auth:") || $0.hasPrefix("clients[1].rate_limit:") })
        // Sender rewriting is acted on.
        #expect(!warnings.contains { $0.hasPrefix("clients[0].rewrite_") || $0.hasPrefix("clients[0].reply_to_original") })
        // DKIM signing is acted on.
        #expect(!warnings.contains { $0.hasPrefix("dkim") })
        // Alerts are sent.
        #expect(!warnings.contains { $0.hasPrefix("alerts") })
        // With every feature implemented there is nothing to say.
        #expect(config.warnings(notImplemented: []).isEmpty)
    }

    @Test func unknownKeyIsNamedByItsFullPath() {
        let yaml = ConfigurationFixtures.minimal(extra: """
              - name: second
                mode: smtp
                token_file: /run/token
                smtp_endpoin: 127.0.0.1:587
            """)
        let found = problems(yaml)
        #expect(found.count == 1)
        #expect(found.first?.keyPath == "routes[1].smtp_endpoin")
        #expect(found.first?.reason.contains("unknown key") == true)
        #expect(found.first?.reason.contains("smtp_endpoint") == true, "suggests the near miss")
        #expect(found.first?.description.hasPrefix("test.yaml: routes[1].smtp_endpoin: unknown key") == true)
    }

    @Test func unknownTopLevelAndNestedKeys() {
        let found = problems(ConfigurationFixtures.minimal(extra: """
            colour: blue
            server2: {}
            """))
        #expect(found.map(\.keyPath) == ["colour", "server2"])
        let nested = problems("""
            server:
              listeners:
                - address: "127.0.0.1:25"
                  tsl: none
              limits: { max_mesage_size: 10MB }
            """)
        #expect(nested.map(\.keyPath).prefix(2) == ["server.listeners[0].tsl", "server.limits.max_mesage_size"])
    }

    @Test func everyProblemIsListedAtOnce() {
        let yaml = """
            server:
              hostname: relay.example
              listeners:
                - address: "0.0.0.0:25"
                  tls: starttls
                - address: "nonsense"
              limits:
                idle_timeout: 5 minutes
                max_message_size: lots
            clients:
              - name: scanners
                networks: ["10.0.0.0/33", "10.1.0.0/16"]
                route: nowhere
              - name: scanners
                auth: password
                route: out
            routes:
              - name: out
                mode: smtp
                smtp_endpoint: smtp.office365.com:587
                tls: none
                token_file: /run/token
                fallback: out
            delivery:
              retry: []
              bounces: operator
            """
        let found = problems(yaml)
        let paths = found.map(\.keyPath)
        for expected in [
            "server.listeners[1].address",           // does not parse
            "server.limits.idle_timeout",             // bad duration
            "server.limits.max_message_size",         // bad size
            "clients[0].networks[0]",                  // bad CIDR
            "server.listeners[0].tls",                 // starttls without certificate
            "routes[0].fallback",                      // self fallback
            "routes[0].tls",                           // plaintext to Microsoft
            "clients[0].route",                        // no such route
            "clients[1].name",                         // duplicate
            "clients[1].username",                     // password client without username
            "clients[1].password_hash_file",           // ... and without hash
            "delivery.retry",                          // empty
            "delivery.operator",                       // bounces operator without address
        ] {
            #expect(paths.contains(expected), "missing \(expected) in \(paths)")
        }
        let error = RelayConfigurationError(problems: found)
        let lines = error.description.split(separator: "\n")
        #expect(lines.count == found.count)
        #expect(lines.allSatisfy { $0.hasPrefix("test.yaml: ") })
    }

    @Test func inlineSecretsAreRefusedWithTheFix() {
        let found = problems(ConfigurationFixtures.minimal(routeKeys: "client_secret: s3cr3t"))
        #expect(found.map(\.keyPath) == ["routes[0].client_secret"])
        #expect(found.first?.reason.contains("client_secret_file") == true)
        #expect(found.first?.description.contains("s3cr3t") == false, "the secret value is never echoed")
    }

    @Test func secretFromFileOrEnvironmentButNotBoth() throws {
        let config = try parse(ConfigurationFixtures.minimal(routeKeys: "token_env: M365_TOKEN"))
        #expect(config.routes[0].token == .environment("M365_TOKEN"))
        let both = problems(ConfigurationFixtures.minimal(routeKeys: "token_env: M365_TOKEN\ntoken_file: /run/t"))
        #expect(both.map(\.keyPath) == ["routes[0].token_file"])
        let badName = problems(ConfigurationFixtures.minimal(routeKeys: "token_env: \"not a name\""))
        #expect(badName.map(\.keyPath) == ["routes[0].token_env"])
    }

    @Test func yamlSyntaxErrorNamesTheLine() {
        let found = problems("server:\n  listeners: [\n    - address: x\n")
        #expect(found.count == 1)
        #expect(found.first?.keyPath.hasPrefix("line ") == true)
    }

    @Test func emptyDocumentNeedsListenerClientAndRoute() {
        let found = problems("")
        #expect(found.map(\.keyPath) == ["server.listeners", "routes", "clients"])
    }

    @Test func documentMustBeAMapping() {
        let found = problems("- just\n- a list\n")
        #expect(found.first?.keyPath == "(document)")
    }

    // MARK: Semantics

    @Test(arguments: [
        ("127.0.0.1:2526", true),
        ("127.8.9.10:25", true),
        ("[::1]:2526", true),
        ("localhost:25", true),
        ("smtp.office365.com:587", false),
        ("10.0.0.1:25", false),
        ("[fd00::1]:25", false),
    ])
    func plaintextRouteOnlyToLoopback(endpoint: String, accepted: Bool) throws {
        let yaml = ConfigurationFixtures.minimal(routeKeys: "smtp_endpoint: \"\(endpoint)\"\ntls: none")
        if accepted {
            let config = try parse(yaml)
            #expect(config.routes[0].tls == .none)
        } else {
            let found = problems(yaml)
            #expect(found.map(\.keyPath) == ["routes[0].tls"])
            #expect(found.first?.reason.contains("loopback") == true)
        }
    }

    @Test func smtpRouteNeedsCredentials() {
        let yaml = """
            server: { listeners: [{ address: "127.0.0.1:25" }] }
            clients: [{ name: c, networks: ["127.0.0.1"], route: r }]
            routes: [{ name: r, mode: smtp }]
            """
        #expect(problems(yaml).map(\.keyPath) == ["routes[0]"])
    }

    @Test func authNoneNeedsNetworks() {
        let yaml = """
            server: { listeners: [{ address: "127.0.0.1:25" }] }
            clients: [{ name: c, route: r }]
            routes: [{ name: r, mode: sandbox }]
            """
        #expect(problems(yaml).map(\.keyPath) == ["clients[0].networks"])
    }

    @Test func fallbackMustExistAndNotLoop() {
        let missing = problems(ConfigurationFixtures.minimal(routeKeys: "fallback: elsewhere"))
        #expect(missing.map(\.keyPath) == ["routes[0].fallback"])
        let loop = problems(ConfigurationFixtures.minimal(routeKeys: "fallback: b", extra: """
              - name: b
                mode: sandbox
                fallback: out
            """))
        #expect(loop.map(\.keyPath) == ["routes[0].fallback", "routes[1].fallback"])
    }

    @Test func duplicateRouteNames() {
        let found = problems(ConfigurationFixtures.minimal(extra: """
              - name: out
                mode: sandbox
            """))
        #expect(found.map(\.keyPath) == ["routes[1].name"])
    }

    @Test func nonLoopbackAdminNeedsToken() {
        let found = problems(ConfigurationFixtures.minimal(extra: "admin: { address: \"0.0.0.0:8025\" }"))
        #expect(found.map(\.keyPath) == ["admin.token_file"])
    }

    @Test func plainHTTPOnlyForLoopbackEndpoints() throws {
        _ = try parse(ConfigurationFixtures.minimal(routeKeys: "login_url: http://127.0.0.1:8080\ngraph_url: http://localhost:8080"))
        let found = problems(ConfigurationFixtures.minimal(routeKeys: "graph_url: http://graph.example.com"))
        #expect(found.map(\.keyPath) == ["routes[0].graph_url"])
    }

    @Test func sectionsGivenButEmptyTakeDefaults() throws {
        let config = try parse(ConfigurationFixtures.minimal(extra: "delivery:\nadmin:\n"))
        #expect(config.delivery == .init())
        #expect(config.admin == .init(), "an empty admin section turns the admin server on at its default address")
    }

    @Test func listIsAcceptedForSingleValue() throws {
        let config = try parse(ConfigurationFixtures.minimal(clientKeys: "allowed_senders: \"*@contoso.com\""))
        #expect(config.clients[0].allowedSenders == ["*@contoso.com"])
    }

    @Test(arguments: ["user@contoso.com", "*@contoso.com", "*"])
    func addressPatternsAccepted(pattern: String) throws {
        _ = try parse(ConfigurationFixtures.minimal(clientKeys: "allowed_recipients: [\"\(pattern)\"]"))
    }

    @Test(arguments: ["contoso.com", "*@", "user@*", "@contoso.com", "a%b@contoso.com"])
    func addressPatternsRefused(pattern: String) {
        #expect(problems(ConfigurationFixtures.minimal(clientKeys: "allowed_recipients: [\"\(pattern)\"]")).map(\.keyPath)
            == ["clients[0].allowed_recipients[0]"])
    }

    // MARK: Loading, built-in setup, rendering

    @Test func loadNamesAnUnreadableFile() {
        do {
            _ = try Config.load(path: "/nonexistent/m365-relay.yaml")
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.problems.count == 1)
            #expect(error.description.hasPrefix("/nonexistent/m365-relay.yaml: (file): "))
        }
    }

    @Test func loadReadsAFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("relay-config-\(UUID().uuidString).yaml").path
        try ConfigurationFixtures.productExample.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try Config.load(path: path)
        #expect(config == (try parse(ConfigurationFixtures.productExample)))
    }

    @Test func builtInSandboxIsValid() throws {
        let config = Config.builtInSandbox(dataDirectory: "./m365-relay-data/")
        try config.validate()
        #expect(config.server.listeners == [.init(address: RelayEndpoint(host: "127.0.0.1", port: 2525), tls: .none)])
        #expect(config.storage.location == .sqlite(path: "./m365-relay-data/relay.sqlite"))
        #expect(config.clients.map(\.name) == ["local"])
        #expect(config.clients[0].networks.map(\.description) == ["127.0.0.0/8", "::1/128"])
        #expect(config.routes.map(\.mode) == [.sandbox])
        #expect(config.admin?.address == RelayEndpoint(host: "127.0.0.1", port: 8025))
        #expect(config.warnings.isEmpty)
        #expect(try Config.parse(yaml: config.renderRedacted(), fileName: "rendered") == config)
    }

    @Test func renderedConfigurationReadsBackTheSame() throws {
        let config = try parse(ConfigurationFixtures.productExample)
        let rendered = config.renderRedacted()
        var reparsed = try parse(rendered)
        // The webhook's path is redacted on purpose; everything else survives.
        #expect(reparsed.alerts?.webhookURL == "https://alerts.contoso.local/<redacted>")
        reparsed.alerts?.webhookURL = config.alerts?.webhookURL
        #expect(reparsed == config)
        // Defaults are written out.
        #expect(rendered.contains("data_timeout: 10m"))
        #expect(rendered.contains("smtp_endpoint: smtp.office365.com:587"))
    }

    @Test func renderRedactsInlineSecrets() throws {
        let yaml = ConfigurationFixtures.minimal(extra: """
            storage:
              url: "postgres://relay:hunter2@db.internal/relay?sslmode=require&password=hunter3"
            alerts:
              webhook_url: https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456
            """)
        let config = try parse(yaml)
        let rendered = config.renderRedacted()
        #expect(!rendered.contains("hunter2"))
        #expect(!rendered.contains("hunter3"))
        #expect(!rendered.contains("IncomingWebhook"))
        #expect(rendered.contains("postgres://relay:<redacted>@db.internal/relay?sslmode=require&password=<redacted>"))
        #expect(config.warnings.contains { $0.hasPrefix("storage.url: carries an inline password") })
        _ = try parse(rendered)
    }

    @Test func secretReferencesAreShown() throws {
        let config = try parse(ConfigurationFixtures.productExample)
        let rendered = config.renderRedacted()
        #expect(rendered.contains("client_secret_file: /etc/m365-relay/app.secret"))
        #expect(rendered.contains("password_hash_file: /etc/m365-relay/erp.hash"))
    }
}
