import Foundation
import RelayTestSupport
import Testing

/// Schemathesis (`pip install schemathesis`) generates requests from
/// docs/openapi.json, valid and invalid, and checks every answer against the
/// document: no 5xx, declared statuses, content types and schemas, 405 for
/// undeclared methods.
@Suite("Admin API: schemathesis against docs/openapi.json")
struct RelayAdminSchemathesisTests {
    static let executable: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/schemathesis"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// CI installs schemathesis (scripts/test.sh); a machine without it fails here rather than skipping.
    @Test("the live server conforms to its document")
    func conforms() async throws {
        let executable = try #require(Self.executable, "schemathesis is not installed: pip install schemathesis (scripts/test.sh does)")
        let fixture = try await AdminFixture.standard()
        let token = "schemathesis-token"
        let document = RelayOpenAPIDocumentTests.documentPath
        // Its working files (.hypothesis, .schemathesis) go to a temporary directory, not the package.
        let workingDirectory = TemporaryDirectory("schemathesis")
        let result = try await withStartedAdminServer(backend: fixture.backend(), token: token) { port in
            let command = [
                executable, "run", document, "--url", "http://127.0.0.1:\(port)", "--header", "Authorization: Bearer \(token)",
                "--checks", "all",
                // A random string is never a valid `cursor` (it is opaque), so "schema-valid request rejected" is expected there.
                "--exclude-checks", "positive_data_acceptance",
                "--max-examples", "25", "--generation-deterministic", "--workers", "1",
            ].map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            return try await ExternalProcess.run("/bin/sh", ["-c", "cd '\(workingDirectory.path)' && exec \(command)"], timeout: 120)
        }
        #expect(result.status == 0, "schemathesis found problems:\n\(result.stdout.suffix(6000))\n\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("Operations:") && result.stdout.contains("11 selected"), "\(result.stdout.suffix(3000))")
    }
}
