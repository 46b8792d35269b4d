import Foundation
import M365Sandbox
import RelayCore
import RelayTestSupport
import Testing
import X509

@testable import RelayDoctor

/// The repository's root, for the example configurations and the docs.
enum RepositoryFiles {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func path(_ relative: String) -> String { (root as NSString).appendingPathComponent(relative) }

    /// The example configurations `connector-script` is documented for (sandbox.yaml has no tenant side).
    static let scriptedExamples = ["examples/connector.yaml", "examples/smtp-oauth.yaml", "examples/graph.yaml", "examples/direct-send.yaml"]
}

/// The certificate `examples/connector.yaml` names, as the docs assume it: one issued for relay.contoso.com.
enum ExampleCertificates {
    static let clientCertificatePath = "/etc/m365-relay/relay-client.crt"
    static let clientCertificatePEM: String = {
        let authority = try! SandboxCertificateAuthority(commonName: "Contoso test CA")
        return try! authority.issueClientCertificate(commonName: "relay.contoso.com").certificatePEM
    }()

    /// Serves that certificate for its path and nothing else, so the output does not depend on this machine.
    static func read(_ path: String) -> Data? {
        path == clientCertificatePath ? Data(clientCertificatePEM.utf8) : nil
    }
}

@Suite("Connector script: documentation")
struct ConnectorScriptDocumentationTests {
    static let documentPath = RepositoryFiles.path("docs/connector-script.md")
    static let marker = "<!-- connector-script: "

    /// Each example's script, between its marker's ```powershell fence and the closing fence.
    static func blocks(in document: String) -> [String: String] {
        var blocks: [String: String] = [:]
        let lines = document.components(separatedBy: "\n")
        var index = 0
        while index < lines.count {
            let line = lines[index]
            index += 1
            guard line.hasPrefix(marker), line.hasSuffix(" -->") else { continue }
            let example = String(line.dropFirst(marker.count).dropLast(4))
            guard index < lines.count, lines[index] == "```powershell" else { continue }
            index += 1
            var body: [String] = []
            while index < lines.count, lines[index] != "```" {
                body.append(lines[index])
                index += 1
            }
            blocks[example] = body.map { $0 + "\n" }.joined()
        }
        return blocks
    }

    static func generated(_ example: String) throws -> String {
        let configuration = try RelayConfiguration.load(path: RepositoryFiles.path(example))
        return RelayConnectorScript.generate(configuration: configuration, readFile: ExampleCertificates.read).text
    }

    /// Rewrites every block from the generator (`M365_RELAY_UPDATE_DOCS=1`).
    static func regenerate() throws {
        var document = try String(contentsOfFile: documentPath, encoding: .utf8)
        for example in RepositoryFiles.scriptedExamples {
            let opening = marker + example + " -->\n```powershell\n"
            guard let start = document.range(of: opening),
                  let end = document.range(of: "```\n", range: start.upperBound..<document.endIndex)
            else { continue }
            document.replaceSubrange(start.upperBound..<end.lowerBound, with: try generated(example))
        }
        try document.write(toFile: documentPath, atomically: true, encoding: .utf8)
    }

    @Test("docs/connector-script.md shows what the generator prints for each example", arguments: RepositoryFiles.scriptedExamples)
    func documentMatchesGenerator(example: String) throws {
        if ProcessInfo.processInfo.environment["M365_RELAY_UPDATE_DOCS"] == "1" { try Self.regenerate() }
        let document = try String(contentsOfFile: Self.documentPath, encoding: .utf8)
        let shown = try #require(Self.blocks(in: document)[example], "docs/connector-script.md has no block for \(example)")
        let generated = try Self.generated(example)
        #expect(shown == generated, """
            docs/connector-script.md differs from the connector script generated for \(example). \
            Regenerate it with: M365_RELAY_UPDATE_DOCS=1 swift test --filter ConnectorScriptDocumentationTests
            """)
    }

    @Test("Every example configuration loads and validates", arguments: RepositoryFiles.scriptedExamples + ["examples/sandbox.yaml"])
    func exampleLoads(example: String) throws {
        let path = RepositoryFiles.path(example)
        // sandbox.yaml is another part's; it is checked here once it exists.
        guard example != "examples/sandbox.yaml" || FileManager.default.fileExists(atPath: path) else { return }
        let configuration = try RelayConfiguration.load(path: path)
        #expect(!configuration.routes.isEmpty)
        if example != "examples/sandbox.yaml" {
            #expect(!RelayConnectorScript.routesNeedingSetup(in: configuration).isEmpty, "\(example) needs a connector script")
        }
    }

    @Test("Paths to secrets in the examples are under /etc/m365-relay/", arguments: RepositoryFiles.scriptedExamples)
    func examplesKeepSecretsUnderEtc(example: String) throws {
        let configuration = try RelayConfiguration.load(path: RepositoryFiles.path(example))
        let audit = Audit(configuration: configuration, options: .init(), now: Date())
        for file in audit.referencedFiles {
            guard case .file(let path) = file.source else { continue }
            #expect(path.hasPrefix("/etc/m365-relay/"), "\(example): \(file.keyPath) is \(path)")
        }
    }
}

@Suite("Connector script")
struct ConnectorScriptTests {
    static func configuration(_ yaml: String) throws -> RelayConfiguration {
        try RelayConfiguration.parse(yaml: """
            server:
              listeners:
                - address: "127.0.0.1:2525"
            clients:
              - name: local
                networks: ["127.0.0.1/32"]
                route: \(yaml.contains("name: main") ? "main" : "sandbox")
            \(yaml)
            """, fileName: "test.yaml")
    }

    /// Reads a PowerShell single-quoted string starting at `text`'s first
    /// character as PowerShell does: a quote character followed by another is
    /// one literal quote; a lone one ends the string. Returns the value and the rest.
    static func readSingleQuoted(_ text: Substring) -> (value: String, rest: Substring)? {
        guard let first = text.first, PowerShellText.quoteCharacters.contains(first) else { return nil }
        var value = ""
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let character = text[index]
            if PowerShellText.quoteCharacters.contains(character) {
                let next = text.index(after: index)
                if next < text.endIndex, PowerShellText.quoteCharacters.contains(text[next]) {
                    value.append(text[next])
                    index = text.index(after: next)
                    continue
                }
                return (value, text[next...])
            }
            value.append(character)
            index = text.index(after: index)
        }
        return nil
    }

    @Test("A hostile route name stays one single-quoted argument", arguments: [
        "o'brien", "it's ‘quoted’ ’ ‚ ‛", "$(Remove-Mailbox -Identity ceo)", "a'; Remove-InboundConnector x; '",
    ])
    func hostileNamesAreQuoted(name: String) throws {
        var configuration = try Self.configuration("""
            routes:
              - name: main
                mode: connector
                domain: contoso.com
            """)
        configuration.routes[0].name = name
        configuration.clients[0].route = name
        configuration.server.publicAddresses = [RelayIPAddress(parsing: "203.0.113.25")!]
        let script = RelayConnectorScript.render(configuration: configuration)
        let command = try #require(script.components(separatedBy: "\n").first { $0.hasPrefix("New-InboundConnector ") })
        let argument = try #require(command.range(of: "-Name "))
        let (value, rest) = try #require(Self.readSingleQuoted(command[argument.upperBound...]))
        #expect(value == "m365-relay " + name)
        #expect(rest.hasPrefix(" -ConnectorType OnPremises -SenderDomains '*' -SenderIPAddresses '203.0.113.25' -RequireTls $true"))
    }

    @Test("A line break in a value cannot end a comment or a string")
    func lineBreaksAreNeutralised() throws {
        var configuration = try Self.configuration("""
            routes:
              - name: main
                mode: connector
                domain: contoso.com
            """)
        let name = "x\nRemove-InboundConnector y\u{2028}z"
        configuration.routes[0].name = name
        configuration.clients[0].route = name
        configuration.server.publicAddresses = [RelayIPAddress(parsing: "203.0.113.25")!]
        let script = RelayConnectorScript.render(configuration: configuration)
        for line in script.components(separatedBy: "\n") {
            #expect(!line.hasPrefix("Remove-InboundConnector"), "a value started a command: \(line)")
            #expect(!line.contains("\u{2028}"))
        }
        #expect(script.contains("-Name ('m365-relay x' + [char]0x0A + 'Remove-InboundConnector y' + [char]0x2028 + 'z')"))
        #expect(script.contains("# --- Route x?Remove-InboundConnector y?z: inbound connector by IP address ---"))
    }

    @Test("The certificate name comes from a real certificate's subject CN and DNS names")
    func certificateNames() throws {
        let authority = try SandboxCertificateAuthority(commonName: "Contoso test CA")
        let client = try authority.issueClientCertificate(commonName: "relay.contoso.com")
        let names = try #require(RelayConnectorCertificateNames(pem: client.chainPEM))
        #expect(names.commonName == "relay.contoso.com")
        #expect(names.dnsNames == ["relay.contoso.com"])
        #expect(names.connectorName == "relay.contoso.com")

        // A CN that is no host name (a single label) gives way to the DNS names.
        let server = try authority.issueServerCertificate(dnsNames: ["relay", "mail.contoso.com"], ipAddresses: [])
        let serverNames = try #require(RelayConnectorCertificateNames(pem: server.certificatePEM))
        #expect(serverNames.commonName == "relay")
        #expect(serverNames.connectorName == "mail.contoso.com")
        #expect(RelayConnectorCertificateNames(pem: "not a certificate") == nil)
    }

    @Test("A certificate connector reads the name from client_certificate_file on disk")
    func certificateConnectorFromFile() throws {
        let directory = TemporaryDirectory("connector-script")
        let authority = try SandboxCertificateAuthority(commonName: "Contoso test CA")
        let issued = try authority.issueClientCertificate(commonName: "relay.contoso.com")
        let certificate = try directory.write("client.crt", issued.certificatePEM, mode: 0o644)
        let key = try directory.write("client.key", issued.privateKeyPEM)
        let configuration = try Self.configuration("""
            routes:
              - name: main
                mode: connector
                domain: contoso.com
                client_certificate_file: \(certificate)
                client_key_file: \(key)
            """)
        let script = RelayConnectorScript.generate(configuration: configuration)
        #expect(script.valuesToFillIn.isEmpty)
        #expect(script.text.contains("New-InboundConnector -Name 'm365-relay main' -ConnectorType OnPremises -SenderDomains '*' -TlsSenderCertificateName 'relay.contoso.com' -RequireTls $true"))
        #expect(!script.text.contains("BEGIN"), "no PEM in the script")

        // Unreadable: the script asks for the name and refuses to run without it.
        try FileManager.default.removeItem(atPath: certificate)
        let asking = RelayConnectorScript.generate(configuration: configuration)
        #expect(asking.valuesToFillIn.count == 1)
        #expect(asking.text.contains("$CertificateName1 = ''"))
        #expect(asking.text.contains("if (-not $CertificateName1) { throw"))
        #expect(asking.text.contains("-TlsSenderCertificateName $CertificateName1 -RequireTls $true"))
    }

    @Test("Connect-ExchangeOnline is the first command, after the values to fill in")
    func connectFirst() throws {
        let configuration = try RelayConfiguration.load(path: RepositoryFiles.path("examples/smtp-oauth.yaml"))
        let commands = RelayConnectorScript.render(configuration: configuration).components(separatedBy: "\n")
            .filter { !$0.isEmpty && !$0.hasPrefix("#") && !$0.hasPrefix("$") && !$0.hasPrefix("if (") }
        #expect(commands.first == "Connect-ExchangeOnline")
        #expect(commands.dropFirst().first == "New-ServicePrincipal -AppId '11111111-2222-3333-4444-555555555555' -ObjectId $EnterpriseAppObjectId -DisplayName 'm365-relay tenant'")
    }

    @Test("Shared work is written once: one service principal per app, one connector per address set")
    func sharedWorkOnce() throws {
        let configuration = try Self.configuration("""
            routes:
              - name: main
                mode: smtp
                tenant_id: contoso.onmicrosoft.com
                client_id: app-1
                client_secret_file: /etc/m365-relay/app.secret
                mailbox: relay@contoso.com
              - name: second
                mode: smtp
                tenant_id: contoso.onmicrosoft.com
                client_id: app-1
                client_secret_file: /etc/m365-relay/app.secret
                mailbox: other@contoso.com
              - name: mx-a
                mode: connector
                domain: contoso.com
              - name: mx-b
                mode: connector
                domain: contoso.com
              - name: sandbox
                mode: sandbox
            """)
        var withAddresses = configuration
        withAddresses.server.publicAddresses = [RelayIPAddress(parsing: "203.0.113.25")!, RelayIPAddress(parsing: "2001:db8::25")!]
        let script = RelayConnectorScript.render(configuration: withAddresses)
        let lines = script.components(separatedBy: "\n")
        #expect(lines.filter { $0.hasPrefix("New-ServicePrincipal ") }.count == 1)
        #expect(lines.filter { $0.hasPrefix("Add-MailboxPermission ") }.count == 2)
        #expect(lines.filter { $0.hasPrefix("New-InboundConnector ") } == [
            "New-InboundConnector -Name 'm365-relay mx-a' -ConnectorType OnPremises -SenderDomains '*' -SenderIPAddresses '203.0.113.25','2001:db8::25' -RequireTls $true",
        ])
        #expect(script.contains("# --- Route sandbox (sandbox): nothing to set up in Exchange Online: the built-in sandbox."))

        // Without public addresses the one IP connector asks for them.
        let asking = RelayConnectorScript.generate(configuration: configuration)
        #expect(asking.valuesToFillIn.count == 2)
        #expect(asking.text.contains("$RelayPublicAddresses = @()"))
        #expect(asking.text.contains("-SenderIPAddresses $RelayPublicAddresses -RequireTls $true"))
    }

    @Test("A Graph route without a mailbox puts its clients' senders in the group and names the patterns")
    func graphSenders() throws {
        let configuration = try RelayConfiguration.parse(yaml: """
            server:
              listeners:
                - address: "127.0.0.1:2525"
            clients:
              - name: printers
                networks: ["10.0.0.0/24"]
                rewrite_sender: printers@contoso.com
                route: big
              - name: apps
                networks: ["10.0.1.0/24"]
                allowed_senders: ["app@contoso.com", "*@contoso.com"]
                route: graph
            routes:
              - name: graph
                mode: graph
                tenant_id: contoso.onmicrosoft.com
                client_id: app-2
                client_secret_file: /etc/m365-relay/graph.secret
              - name: big
                mode: smtp
                smtp_endpoint: smtp.office365.com:587
                token_file: /etc/m365-relay/token
                fallback: graph
            """, fileName: "test.yaml")
        let script = RelayConnectorScript.render(configuration: configuration)
        // printers reach the graph route through big's fallback.
        #expect(script.contains("New-DistributionGroup -Name 'm365-relay graph senders' -Alias 'm365-relay-graph-senders' -Type Security -Members 'printers@contoso.com','app@contoso.com'"))
        #expect(script.contains("New-ApplicationAccessPolicy -AppId 'app-2' -PolicyScopeGroupId 'm365-relay graph senders' -AccessRight RestrictAccess"))
        #expect(script.contains("# Clients apps also send as *@contoso.com: add each such mailbox with Add-DistributionGroupMember"))
        #expect(script.contains("Test-ApplicationAccessPolicy -Identity 'printers@contoso.com' -AppId 'app-2'"))
        #expect(!script.contains("Add-RecipientPermission"), "no mailbox: each message is sent as its own sender")
        #expect(script.contains("nothing to set up in Exchange Online: a token you manage"))
    }

    @Test("No route needing setup: nothing to print, and the reason names each route")
    func nothingToDo() throws {
        let configuration = try Self.configuration("""
            routes:
              - name: sandbox
                mode: sandbox
              - name: sink
                mode: smtp
                smtp_endpoint: 127.0.0.1:2587
                tls: none
            """)
        #expect(RelayConnectorScript.routesNeedingSetup(in: configuration).isEmpty)
        let reason = RelayConnectorScript.noSetupReason(in: configuration)
        #expect(reason.contains("sandbox: the built-in sandbox"))
        #expect(reason.contains("sink: smtp_endpoint 127.0.0.1:2587 is loopback"))
    }
}
