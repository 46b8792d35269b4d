import Foundation
import Testing
@testable import RelayCore

@Suite("Configuration value syntax")
struct ConfigurationSyntaxTests {
    @Test(arguments: [
        ("30s", 30.0), ("5m", 300), ("1h", 3600), ("5d", 432_000), ("90", 90), ("0", 0), ("10 m", 600), (" 2h ", 7200),
    ])
    func durations(text: String, seconds: TimeInterval) {
        #expect(RelayConfigurationSyntax.duration(text) == seconds)
    }

    @Test(arguments: ["", "m", "5x", "1h30m", "-5m", "5.5m", "five", "5 minutes", "1w", "5M"])
    func malformedDurations(text: String) {
        #expect(RelayConfigurationSyntax.duration(text) == nil)
    }

    @Test(arguments: [(30.0, "30s"), (300, "5m"), (3600, "1h"), (432_000, "5d"), (90, "90s"), (5400, "90m"), (0, "0s")])
    func durationsFormatInTheLargestExactUnit(seconds: TimeInterval, text: String) {
        #expect(RelayConfigurationSyntax.formatDuration(seconds) == text)
        #expect(RelayConfigurationSyntax.duration(text) == seconds)
    }

    @Test(arguments: [
        ("35MB", 36_700_160), ("150 MB", 157_286_400), ("512KB", 524_288), ("1048576", 1_048_576), ("2GB", 2_147_483_648),
        ("10mb", 10_485_760), ("10MiB", 10_485_760), ("64k", 65_536), ("100B", 100),
    ])
    func sizes(text: String, bytes: Int) {
        #expect(RelayConfigurationSyntax.size(text) == bytes)
    }

    @Test(arguments: ["", "MB", "35 TB", "3.5MB", "-1", "lots", "99999999999999999999", "999999999999GB"])
    func malformedSizes(text: String) {
        #expect(RelayConfigurationSyntax.size(text) == nil)
    }

    @Test(arguments: [(36_700_160, "35MB"), (157_286_400, "150MB"), (524_288, "512KB"), (1000, "1000"), (2_147_483_648, "2GB")])
    func sizesFormatInTheLargestExactUnit(bytes: Int, text: String) {
        #expect(RelayConfigurationSyntax.formatSize(bytes) == text)
        #expect(RelayConfigurationSyntax.size(text) == bytes)
    }

    @Test(arguments: [
        ("120/min", 120, 60.0), ("5/s", 5, 1), ("1000/h", 1000, 3600), ("10 / minute", 10, 60), ("3/sec", 3, 1), ("7/hour", 7, 3600),
    ])
    func rateLimits(text: String, count: Int, period: TimeInterval) {
        #expect(RelayRateLimit(parsing: text) == RelayRateLimit(count: count, period: period))
    }

    @Test(arguments: ["120", "/min", "0/min", "-1/min", "120/day", "120/min/s", "x/min"])
    func malformedRateLimits(text: String) {
        #expect(RelayRateLimit(parsing: text) == nil)
    }

    @Test(arguments: [
        ("sqlite:/var/lib/m365-relay/relay.sqlite", RelayStorageLocation.sqlite(path: "/var/lib/m365-relay/relay.sqlite")),
        ("sqlite:relay.sqlite", .sqlite(path: "relay.sqlite")),
        ("sqlite:///var/lib/relay.sqlite", .sqlite(path: "/var/lib/relay.sqlite")),
        ("postgres://relay@db.internal/relay", .postgres(url: "postgres://relay@db.internal/relay")),
        ("postgresql://db/relay", .postgres(url: "postgresql://db/relay")),
    ])
    func storageLocations(text: String, expected: RelayStorageLocation) {
        #expect(RelayStorageLocation(parsing: text) == expected)
    }

    @Test(arguments: ["sqlite:", "mysql://db/relay", "/var/lib/relay.sqlite", "postgres://"])
    func malformedStorageLocations(text: String) {
        #expect(RelayStorageLocation(parsing: text) == nil)
    }

    @Test func configurationFileValuesUseTheseSyntaxes() throws {
        let config = try RelayConfiguration.parse(yaml: ConfigurationFixtures.minimal(extra: """
            delivery:
              retry: [30s, 2m, 1h]
              max_age: 2d
            """), fileName: "test.yaml")
        #expect(config.delivery.retry == [30, 120, 3600])
        #expect(config.delivery.maxAge == 172_800)

        let bad = #expect(throws: RelayConfigurationError.self) {
            try RelayConfiguration.parse(yaml: """
                server:
                  listeners: [{ address: "127.0.0.1:25" }]
                  limits: { max_message_size: 35 TB, idle_timeout: 5 minutes, max_command_line_length: 100 }
                clients: [{ name: c, networks: ["127.0.0.1"], route: r, rate_limit: lots }]
                routes: [{ name: r, mode: sandbox, quota_margin: 80% }]
                delivery: { retry: [1m, 0s, soon] }
                """, fileName: "test.yaml")
        }
        #expect(bad?.problems.map(\.keyPath) == [
            "server.limits.max_message_size",
            "server.limits.idle_timeout",
            "server.limits.max_command_line_length",
            "clients[0].rate_limit",
            "routes[0].quota_margin",
            "delivery.retry[1]",
            "delivery.retry[2]",
        ])
    }

    @Test func quotaMarginAcceptsPercentOrFraction() throws {
        for (text, value) in [("5%", 0.05), ("0.1", 0.1), ("12.5%", 0.125), ("0", 0.0)] {
            let config = try RelayConfiguration.parse(yaml: ConfigurationFixtures.minimal(routeKeys: "quota_margin: \"\(text)\""), fileName: "t")
            #expect(config.routes[0].quotaMargin == value)
            #expect(try RelayConfiguration.parse(yaml: config.renderRedacted(), fileName: "t") == config)
        }
    }
}
