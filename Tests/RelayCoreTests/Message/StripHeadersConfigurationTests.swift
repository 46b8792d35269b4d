import RelayCore
import Testing

/// `clients[].strip_headers`: parsed, checked, rendered back, and free of "not yet" warnings.
@Suite("Configuration: strip_headers and sender rules")
struct StripHeadersConfigurationTests {
    static func yaml(_ clientKeys: String) -> String {
        """
        server:
          listeners:
            - address: "127.0.0.1:2525"
        clients:
          - name: scanners
            networks: ["10.20.0.0/24"]
            route: out
        \(clientKeys.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        routes:
          - name: out
            mode: sandbox
        """
    }

    @Test func parsedAndRenderedBack() throws {
        let config = try RelayConfiguration.parse(yaml: Self.yaml("strip_headers: [X-Originating-IP, X-Mailer]"), fileName: "test.yaml")
        #expect(config.clients[0].stripHeaders == ["X-Originating-IP", "X-Mailer"])
        let rendered = config.renderRedacted()
        #expect(rendered.contains("strip_headers: [X-Originating-IP, X-Mailer]"), "\(rendered)")
        #expect(try RelayConfiguration.parse(yaml: rendered, fileName: "rendered") == config)
    }

    @Test func absentMeansNoneAndIsNotRendered() throws {
        let config = try RelayConfiguration.parse(yaml: Self.yaml(""), fileName: "test.yaml")
        #expect(config.clients[0].stripHeaders.isEmpty)
        #expect(!config.renderRedacted().contains("strip_headers"))
    }

    @Test(arguments: ["\"X Originating\"", "\"X-Bad:\"", "\"\"", "\"Ünicode\""])
    func aNameThatIsNotAFieldNameIsRefused(_ name: String) {
        do {
            _ = try RelayConfiguration.parse(yaml: Self.yaml("strip_headers: [\(name)]"), fileName: "test.yaml")
            Issue.record("accepted \(name)")
        } catch {
            #expect(error.problems.map(\.keyPath) == ["clients[0].strip_headers[0]"])
        }
    }

    @Test func senderRulesAreNoLongerWarnedAbout() throws {
        let config = try RelayConfiguration.parse(yaml: Self.yaml("""
            rewrite_sender: scanner@contoso.com
            rewrite_display_name: "Contoso Scanner"
            reply_to_original: true
            """), fileName: "test.yaml")
        #expect(config.clients[0].rewriteDisplayName == .replace("Contoso Scanner"))
        #expect(!config.warnings.contains { $0.contains("rewrite_") || $0.contains("reply_to_original") }, "\(config.warnings)")
    }
}
