import Foundation
import Testing
@testable import RelayCore

@Suite("Alert configuration")
struct RelayAlertConfigurationTests {
    func parse(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> RelayConfiguration {
        do {
            return try RelayConfiguration.parse(yaml: yaml, fileName: "test.yaml")
        } catch {
            Issue.record("refused:\n\(error.description)", sourceLocation: sourceLocation)
            throw error
        }
    }

    func problems(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [RelayConfigurationError.Problem] {
        do {
            _ = try RelayConfiguration.parse(yaml: yaml, fileName: "test.yaml")
            Issue.record("accepted a configuration that should be refused", sourceLocation: sourceLocation)
            return []
        } catch {
            return error.problems
        }
    }

    static func alerts(_ keys: String) -> String {
        let url = keys.contains("webhook_url:") ? "" : "  webhook_url: https://hooks.example.net/services/T000/B000/XXXX\n"
        return ConfigurationFixtures.minimal(extra: "alerts:\n" + url + keys.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
    }

    /// An app registration, which a client secret needs.
    static let app = "tenant_id: contoso.onmicrosoft.com\nclient_id: 11111111-2222-3333-4444-555555555555\n"

    @Test func defaults() throws {
        let alerts = try #require(try parse(Self.alerts("")).alerts)
        #expect(alerts.format == .json)
        #expect(alerts.queueSize == 1000)
        #expect(alerts.queueAge == 3600)
        #expect(alerts.repeatInterval == 900)
        #expect(alerts.authFailures == 20)
        #expect(alerts.authWindow == 300)
        #expect(alerts.expiryWarning == 14 * 86_400)
        #expect(alerts.checkInterval == 30)
        #expect(alerts.caFile == nil)
    }

    @Test func everyKey() throws {
        let alerts = try #require(try parse(Self.alerts("""
            format: teams
            queue_size: 50
            queue_age: 10m
            repeat_interval: 1h
            auth_failures: 5
            auth_window: 1m
            expiry_warning: 30d
            check_interval: 10s
            ca_file: /etc/m365-relay/hooks-ca.pem
            """)).alerts)
        #expect(alerts.format == .teams)
        #expect(alerts.queueSize == 50)
        #expect(alerts.queueAge == 600)
        #expect(alerts.repeatInterval == 3600)
        #expect(alerts.authFailures == 5)
        #expect(alerts.authWindow == 60)
        #expect(alerts.expiryWarning == 30 * 86_400)
        #expect(alerts.checkInterval == 10)
        #expect(alerts.caFile == "/etc/m365-relay/hooks-ca.pem")
        #expect(try parse(Self.alerts("format: slack")).alerts?.format == .slack)
    }

    @Test(arguments: [
        ("format: discord", "alerts.format", "`discord` is not one of `json`, `slack`, `teams`"),
        ("auth_failures: 0", "alerts.auth_failures", "must be at least 1"),
        ("auth_failures: many", "alerts.auth_failures", "expected a whole number"),
        ("auth_window: soon", "alerts.auth_window", "is not a duration"),
        ("auth_window: 0", "alerts.auth_window", "must be positive"),
        ("expiry_warning: two weeks", "alerts.expiry_warning", "is not a duration"),
        ("check_interval: 0s", "alerts.check_interval", "must be positive"),
        ("ca_file: ''", "alerts.ca_file", "empty file name"),
        ("webhook_url: ftp://hooks.example.net/x", "alerts.webhook_url", "expected an `https://` URL"),
        ("check_intervall: 5s", "alerts.check_intervall", "did you mean `check_interval`?"),
    ])
    func refused(keys: String, keyPath: String, reason: String) {
        let found = problems(Self.alerts(keys))
        #expect(found.contains { $0.keyPath == keyPath && $0.reason.contains(reason) }, "\(found)")
    }

    @Test func clientSecretExpiresIsADay() throws {
        let config = try parse(ConfigurationFixtures.minimal(routeKeys: Self.app + """
            client_secret_file: /etc/m365-relay/app.secret
            client_secret_expires: 2026-06-30
            """))
        let expires = try #require(config.routes.first?.clientSecretExpires)
        #expect(expires == Date(timeIntervalSince1970: 1_782_777_600), "2026-06-30T00:00:00Z")
        #expect(config.routes.first?.clientSecretExpires == RelayConfigurationSyntax.day("2026-06-30"))
    }

    @Test(arguments: [
        ("client_secret_file: /s\nclient_secret_expires: 2026-02-30", "is not a day; expected `YYYY-MM-DD`"),
        ("client_secret_file: /s\nclient_secret_expires: 30.06.2026", "is not a day"),
        ("client_secret_file: /s\nclient_secret_expires: 2026-6-30", "is not a day"),
        ("client_secret_expires: 2026-06-30", "given without `client_secret_file` or `client_secret_env`"),
    ])
    func clientSecretExpiresRefused(keys: String, reason: String) {
        let found = problems(ConfigurationFixtures.minimal(routeKeys: Self.app + keys))
        #expect(found.contains { $0.keyPath == "routes[0].client_secret_expires" && $0.reason.contains(reason) }, "\(found)")
    }

    @Test(arguments: ["2024-02-29", "2026-01-01", "1999-12-31"])
    func dayRoundTrips(text: String) throws {
        let day = try #require(RelayConfigurationSyntax.day(text))
        #expect(RelayConfigurationSyntax.formatDay(day) == text)
    }

    @Test func renderingReadsBack() throws {
        let config = try parse(ConfigurationFixtures.minimal(
            routeKeys: Self.app + "client_secret_env: APP_SECRET\nclient_secret_expires: 2026-06-30",
            extra: """
            alerts:
              webhook_url: https://hooks.example.net/services/T000/B000/XXXX
              format: slack
              queue_size: 50
              auth_failures: 7
              auth_window: 2m
              expiry_warning: 21d
              check_interval: 15s
              ca_file: /etc/ca.pem
            """))
        let rendered = config.renderRedacted()
        #expect(rendered.contains("client_secret_expires: 2026-06-30"))
        #expect(rendered.contains("format: slack"))
        #expect(rendered.contains("auth_failures: 7"))
        #expect(rendered.contains("auth_window: 2m"))
        #expect(rendered.contains("expiry_warning: 21d"))
        #expect(rendered.contains("check_interval: 15s"))
        #expect(rendered.contains("ca_file: /etc/ca.pem"))
        #expect(!rendered.contains("B000"), "the webhook's path is a capability")
        var reparsed = try parse(rendered)
        #expect(reparsed.alerts?.webhookURL == "https://hooks.example.net/<redacted>")
        reparsed.alerts?.webhookURL = config.alerts?.webhookURL
        #expect(reparsed == config)
    }
}
