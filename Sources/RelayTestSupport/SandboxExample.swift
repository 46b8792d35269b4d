import Foundation
import M365Sandbox

/// examples/sandbox.yaml and its files (examples/sandbox/), made runnable for
/// a test: the ports of a running sandbox and test DNS server, private copies
/// (mode 600) of its secret and key, and its storage in a temporary directory.
/// The doctor's in-process tests and the binary's end-to-end test share it.
public enum SandboxExample {
    public static let clientID = "11111111-2222-3333-4444-555555555555"
    public static let secret = "sandbox-only-client-secret-do-not-use-anywhere-else"

    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A file of the repository, by its path from the root.
    public static func read(_ path: String) throws -> String {
        try String(contentsOfFile: (repositoryRoot as NSString).appendingPathComponent(path), encoding: .utf8)
    }

    /// The text of `name`'s TXT record in examples/sandbox/sandbox.zone, its quoted strings joined.
    public static func zoneTXT(_ name: String) throws -> String {
        let zone = try read("examples/sandbox/sandbox.zone")
        guard let line = zone.split(separator: "\n").first(where: { $0.hasPrefix(name + ". ") && $0.contains(" TXT ") }) else {
            throw Mismatch(description: "no TXT record for \(name) in examples/sandbox/sandbox.zone")
        }
        // The quoted strings are every other part between quotes.
        return line.split(separator: "\"", omittingEmptySubsequences: false).enumerated()
            .filter { $0.offset % 2 == 1 }.map { String($0.element) }.joined()
    }

    /// Writes `name` into `directory`: examples/sandbox.yaml on this run's ports and files.
    /// - Parameter edit: changes the YAML text after the substitution (to break one setting).
    public static func configuration(
        in directory: TemporaryDirectory, sandbox: M365Sandbox, dnsPort: Int, listenerPort: Int,
        name: String = "sandbox.yaml", edit: (String) -> String = { $0 }
    ) throws -> String {
        let secret = try directory.write("app.secret", try read("examples/sandbox/app.secret"), mode: 0o600)
        let key = try directory.write("dkim.key", try read("examples/sandbox/dkim.key"), mode: 0o600)
        let ports = sandbox.ports
        var text = try read("examples/sandbox.yaml")
        let substitutions = [
            ("https://127.0.0.1:8443", sandbox.httpBaseURL ?? ""),
            ("127.0.0.1:2587", "127.0.0.1:\(ports.smtp)"),
            ("127.0.0.1:2526", "127.0.0.1:\(ports.connector ?? 0)"),
            ("127.0.0.1:5353", "127.0.0.1:\(dnsPort)"),
            ("127.0.0.1:2725", "127.0.0.1:\(listenerPort)"),
            ("m365-relay-data/sandbox/ca.pem", sandbox.caFile),
            ("examples/sandbox/app.secret", secret),
            ("examples/sandbox/dkim.key", key),
            ("m365-relay-data/doctor-example/relay.sqlite", directory.file("data/relay.sqlite")),
            // The test DNS server is a python process: give it room on a loaded CI machine.
            ("  timeout: 2s", "  timeout: 10s"),
        ]
        for (from, to) in substitutions {
            guard text.contains(from) else { throw Mismatch(description: "examples/sandbox.yaml no longer contains \(from)") }
            text = text.replacingOccurrences(of: from, with: to)
        }
        return try directory.write(name, edit(text), mode: 0o600)
    }

    public struct Mismatch: Error, CustomStringConvertible {
        public var description: String
    }
}
