import Testing
@testable import RelayCore

/// `server.limits.greeting_delay`, `min_data_rate` and `max_junk_commands`.
@Suite("Configuration: abuse limits")
struct ConfigurationAbuseLimitsTests {
    static func yaml(limits: String) -> String {
        """
        server:
          listeners:
            - address: "127.0.0.1:2525"
          limits:
        \(limits.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        clients:
          - name: local
            networks: ["127.0.0.0/8"]
            route: out
        routes:
          - name: out
            mode: sandbox
        """
    }

    @Test func defaults() throws {
        let limits = RelayConfiguration.Limits()
        #expect(limits.greetingDelay == 0, "off: the relay's clients are known devices")
        #expect(limits.minDataRate == 500, "Postfix's smtpd_min_data_rate")
    }

    @Test(arguments: [
        ("greeting_delay: 2s\nmin_data_rate: 1000", 2.0, 1000),
        ("greeting_delay: 0s\nmin_data_rate: 0", 0.0, 0),
        ("greeting_delay: 0\nmin_data_rate: 1KB", 0.0, 1024),
        ("min_data_rate: 2KB/s", 0.0, 2048),
    ])
    func parsed(text: String, delay: Double, rate: Int) throws {
        let configuration = try RelayConfiguration.parse(yaml: Self.yaml(limits: text), fileName: "test.yaml")
        #expect(configuration.server.limits.greetingDelay == delay)
        #expect(configuration.server.limits.minDataRate == rate)
        // Rendered and read back, the same.
        let rendered = configuration.renderRedacted()
        #expect(rendered.contains("greeting_delay: "))
        #expect(rendered.contains("min_data_rate: \(rate)"))
        #expect(try RelayConfiguration.parse(yaml: rendered, fileName: "rendered") == configuration)
    }

    @Test func junkCommandLimit() throws {
        #expect(RelayConfiguration.Limits().maxJunkCommands == 100, "Postfix's smtpd_junk_command_limit")
        let configuration = try RelayConfiguration.parse(yaml: Self.yaml(limits: "max_junk_commands: 0"), fileName: "test.yaml")
        #expect(configuration.server.limits.maxJunkCommands == 0, "0: every NOOP, RSET, VRFY and HELP counts as an error")
        let rendered = configuration.renderRedacted()
        #expect(rendered.contains("max_junk_commands: 0"))
        #expect(try RelayConfiguration.parse(yaml: rendered, fileName: "rendered") == configuration)
    }

    @Test(arguments: [
        ("max_junk_commands: -1", "server.limits.max_junk_commands", "expected a whole number"),
        ("greeting_delay: soon", "server.limits.greeting_delay", "not a duration"),
        ("greeting_delay: 2m", "server.limits.greeting_delay", "under a minute"),
        ("greeting_delay: 20s\ncommand_timeout: 10s", "server.limits.greeting_delay", "shorter than command_timeout"),
        ("min_data_rate: fast", "server.limits.min_data_rate", "not a rate"),
        ("min_data_rate: -5", "server.limits.min_data_rate", "not a rate"),
    ])
    func refused(text: String, keyPath: String, reason: String) {
        do {
            _ = try RelayConfiguration.parse(yaml: Self.yaml(limits: text), fileName: "test.yaml")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.problems.contains { $0.keyPath == keyPath && $0.reason.contains(reason) }, "\(error.description)")
        }
    }

    @Test func minimumTLSVersionDefaultsTo12() throws {
        let yaml = """
            server:
              listeners:
                - address: "127.0.0.1:2525"
                  tls: starttls
              tls:
                certificate_file: /etc/relay.crt
                private_key_file: /etc/relay.key
            clients:
              - name: local
                networks: ["127.0.0.0/8"]
                route: out
            routes:
              - name: out
                mode: sandbox
            """
        let configuration = try RelayConfiguration.parse(yaml: yaml, fileName: "test.yaml")
        #expect(configuration.server.tls?.minimumVersion == .v1_2)
    }
}
