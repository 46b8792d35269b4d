import Foundation
import M365Sandbox
import RelayTestSupport
import Testing

/// `m365-relay connector-script` through the built binary.
@Suite("connector-script command")
struct ConnectorScriptCommandTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func repositoryFile(_ relative: String) -> String { (root as NSString).appendingPathComponent(relative) }

    /// The script docs/connector-script.md shows for `example`.
    static func documented(_ example: String) throws -> String {
        let document = try String(contentsOfFile: repositoryFile("docs/connector-script.md"), encoding: .utf8)
        let opening = "<!-- connector-script: \(example) -->\n```powershell\n"
        guard let start = document.range(of: opening),
              let end = document.range(of: "```\n", range: start.upperBound..<document.endIndex)
        else { throw DocumentError(example: example) }
        return String(document[start.upperBound..<end.lowerBound])
    }

    struct DocumentError: Error { var example: String }

    @Test("Prints the documented script for examples/graph.yaml on stdout, exit 0")
    func graphExample() async throws {
        let result = try await CommandLineTests.run(["connector-script", "--config", Self.repositoryFile("examples/graph.yaml")])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout == (try Self.documented("examples/graph.yaml")))
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test("App-only SMTP: the script asks for the enterprise app's object id, and stderr says so")
    func smtpExampleAsksForTheObjectID() async throws {
        let result = try await CommandLineTests.run(["connector-script", "--config", Self.repositoryFile("examples/smtp-oauth.yaml")])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout == (try Self.documented("examples/smtp-oauth.yaml")))
        #expect(result.stderr.contains("$EnterpriseAppObjectId"), "\(result.stderr)")
        #expect(result.stderr.contains("Enterprise applications"))
    }

    @Test("A certificate connector names the certificate read from client_certificate_file")
    func certificateConnector() async throws {
        let directory = TemporaryDirectory("cli-connector-script")
        let authority = try SandboxCertificateAuthority(commonName: "Contoso test CA")
        let issued = try authority.issueClientCertificate(commonName: "mail.o'hara.example")
        let certificate = try directory.write("client.crt", issued.certificatePEM, mode: 0o644)
        let key = try directory.write("client.key", issued.privateKeyPEM)
        let file = try directory.write("connector.yaml", CommandLineTests.configuration(
            port: freeLoopbackPort(), storage: directory.file("data/relay.sqlite"),
            routes: """
                routes:
                  - name: tenant's mx
                    mode: connector
                    domain: contoso.com
                    client_certificate_file: \(certificate)
                    client_key_file: \(key)
                """, route: "\"tenant's mx\""))
        let result = try await CommandLineTests.run(["connector-script", "--config", file])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        // The apostrophe is not a host name character: the DNS name is refused too, so the script asks.
        #expect(result.stdout.contains("New-InboundConnector -Name 'm365-relay tenant''s mx' -ConnectorType OnPremises -SenderDomains '*' -TlsSenderCertificateName $CertificateName1 -RequireTls $true"),
                "\(result.stdout)")
        #expect(result.stderr.contains("$CertificateName1"))

        let good = try authority.issueClientCertificate(commonName: "relay.contoso.com")
        _ = try directory.write("client.crt", good.certificatePEM, mode: 0o644)
        let again = try await CommandLineTests.run(["connector-script", "--config", file])
        #expect(again.status == 0, "stderr: \(again.stderr)")
        #expect(again.stdout.contains("-TlsSenderCertificateName 'relay.contoso.com' -RequireTls $true"), "\(again.stdout)")
        #expect(again.stderr.isEmpty, "\(again.stderr)")
        #expect(again.stdout.split(separator: "\n").first { !$0.isEmpty && !$0.hasPrefix("#") } == "Connect-ExchangeOnline")
    }

    @Test("Exit 1 with the reason when no route needs a script; exit 1 for an invalid configuration")
    func nothingToPrint() async throws {
        let directory = TemporaryDirectory("cli-connector-script")
        let file = try directory.write("sandbox.yaml", CommandLineTests.configuration(port: freeLoopbackPort(), storage: directory.file("data/relay.sqlite")))
        let result = try await CommandLineTests.run(["connector-script", "--config", file])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("no route needs Exchange Online setup") && result.stderr.contains("sandbox: the built-in sandbox"), "\(result.stderr)")

        let bad = try directory.write("bad.yaml", "routes: 3\n")
        let invalid = try await CommandLineTests.run(["connector-script", "--config", bad])
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains(bad), "\(invalid.stderr)")

        // Without --config and no ./m365-relay.yaml: the built-in sandbox setup, which needs nothing.
        let builtIn = try await ExternalProcess.run(try RelayCommandProcess.binary(), ["connector-script", "--data-directory", directory.file("builtin")])
        #expect(builtIn.status == 1 || FileManager.default.fileExists(atPath: "m365-relay.yaml"), "\(builtIn.stderr)")
    }
}
