import Foundation
import Logging
import M365Sandbox
import RelayCore
import RelayServer
import RelayTestSupport
import Testing

/// A relay running in this process, on port 0, with its data in a temporary directory.
final class RelayHarness: @unchecked Sendable {
    let directory: TemporaryDirectory
    let application: RelayApplication
    private let runner: Task<Void, any Error>

    init(yaml: (TemporaryDirectory) throws -> String) async throws {
        directory = TemporaryDirectory("relay-e2e")
        let text = try yaml(directory)
        let configuration = try RelayConfiguration.parse(yaml: text, fileName: "test.yaml")
        var logger = Logger(label: "e2e")
        logger.logLevel = .notice
        application = try await RelayApplication.start(configuration: configuration, logger: logger, handleSignals: false)
        let application = self.application
        runner = Task { try await application.run() }
    }

    var port: Int { application.smtpPort }
    /// Ports of every listener, in configuration order.
    var ports: [Int] { application.smtpAddresses.compactMap(\.port) }
    var sandbox: M365Sandbox { application.sandbox! }

    func stop() async throws {
        await application.shutdown()
        try await runner.value
    }

    /// A relay whose listeners (`listener` is their YAML) use a certificate from
    /// a CA made for the test; returns the relay and the CA's PEM file for clients.
    static func withTestCertificate(listener: String) async throws -> (RelayHarness, caFile: String) {
        let authority = try SandboxCertificateAuthority(commonName: "e2e test CA")
        let leaf = try authority.issueServerCertificate(dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        let relay = try await RelayHarness { directory in
            let certificate = try directory.write("relay.crt", leaf.certificatePEM + "\n", mode: 0o644)
            let key = try directory.write("relay.key", leaf.privateKeyPEM + "\n")
            return sandboxYAML(directory, listener: listener, extraServer: """
              tls:
                certificate_file: \(certificate)
                private_key_file: \(key)
            """)
        }
        let caFile = try relay.directory.write("ca.pem", authority.certificatePEM + "\n", mode: 0o644)
        return (relay, caFile)
    }

    /// The built-in sandbox setup, on port 0, for the clients given.
    static func sandboxYAML(
        _ directory: TemporaryDirectory, listener: String = "tls: none", networks: String = "[\"127.0.0.1/32\"]", extraServer: String = "",
        senders: String = "[\"*\"]", recipients: String = "[\"*\"]"
    ) -> String {
        """
        server:
          hostname: relay.test
          listeners:
            - address: "127.0.0.1:0"
              \(listener)
        \(extraServer)
        storage:
          url: "sqlite:\(directory.file("relay.sqlite"))"
        clients:
          - name: local
            networks: \(networks)
            auth: none
            allowed_senders: \(senders)
            allowed_recipients: \(recipients)
            route: sandbox
        routes:
          - name: sandbox
            mode: sandbox
        """
    }
}

/// Sends `content` with python's smtplib; returns what the script printed.
func sendWithPython(port: Int, from: String, to: [String], content: [UInt8], source: String = "127.0.0.1", startTLS caFile: String? = nil, implicitTLS implicitCAFile: String? = nil) async throws -> [String: Any] {
    let directory = TemporaryDirectory("python-send")
    let file = directory.file("message.eml")
    try Data(content).write(to: URL(fileURLWithPath: file))
    var arguments: [String: Any] = ["host": "127.0.0.1", "port": port, "from": from, "to": to, "file": file, "source": source]
    if let caFile {
        arguments["starttls"] = true
        arguments["cafile"] = caFile
    }
    if let implicitCAFile {
        arguments["implicit"] = true
        arguments["cafile"] = implicitCAFile
    }
    let json = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
    let result = try await ExternalProcess.python(pythonSendScript, [json])
    guard let line = result.stdout.split(separator: "\n").last,
          let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        Issue.record("python printed nothing usable; stderr: \(result.stderr)")
        return [:]
    }
    return object
}

/// Splits what the sandbox stored into the relay's Received header and the rest.
func splitReceived(_ stored: Data) -> (received: String, rest: [UInt8]) {
    let bytes = [UInt8](stored)
    // The Received field is folded over lines that begin with a tab; the original starts after it.
    var index = 0
    var lines = 0
    while index < bytes.count {
        guard let end = bytes[index...].firstIndex(of: 10) else { break }
        let next = end + 1
        lines += 1
        if next >= bytes.count || (bytes[next] != 9 && bytes[next] != 32) {
            index = next
            break
        }
        index = next
    }
    return (String(decoding: bytes[..<index], as: UTF8.self), Array(bytes[index...]))
}
