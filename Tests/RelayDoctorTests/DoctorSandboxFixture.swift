import Foundation
import Logging
import M365Sandbox
import NIOPosix
import RelayCore
import RelayDoctor
import RelayTestSupport

/// examples/sandbox.yaml made runnable on free ports: the Microsoft 365
/// sandbox in-process, the test DNS server with examples/sandbox/sandbox.zone,
/// and copies of the example's secret and key in a temporary directory.
final class DoctorSandboxFixture: @unchecked Sendable {
    static let clientID = SandboxExample.clientID
    static let secret = SandboxExample.secret

    let directory = TemporaryDirectory("doctor-fixture")
    let sandbox: M365Sandbox
    let dns: TestDNSServer
    let listenerPort = freeLoopbackPort()

    private init(sandbox: M365Sandbox, dns: TestDNSServer) {
        self.sandbox = sandbox
        self.dns = dns
    }

    /// - Parameters:
    ///   - connectorNetworks: the sender networks of the tenant's one inbound connector.
    ///   - zone: edits the example zone (to break one record).
    static func start(connectorNetworks: [String] = ["127.0.0.1/32"], zone edit: (String) -> String = { $0 }) async throws -> DoctorSandboxFixture {
        let data = TemporaryDirectory("doctor-sandbox")
        var configuration = M365SandboxConfiguration(dataDirectory: data.path)
        configuration.apps = [.init(clientID: clientID, secret: secret, mailboxes: ["*"])]
        configuration.connectors = [.init(name: "relay", senderNetworks: connectorNetworks)]
        let sandbox = try M365Sandbox(
            configuration: configuration, smtp: ("127.0.0.1", 0), connector: ("127.0.0.1", 0), http: ("127.0.0.1", 0),
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "doctor-test-sandbox", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await sandbox.start()
        let dns = try await TestDNSServer.start(zone: edit(try SandboxExample.read("examples/sandbox/sandbox.zone")))
        let fixture = DoctorSandboxFixture(sandbox: sandbox, dns: dns)
        fixture.sandboxData = data
        return fixture
    }

    private var sandboxData: TemporaryDirectory?

    func stop() async {
        await sandbox.shutdown()
        dns.stop()
    }

    /// examples/sandbox.yaml with this fixture's ports and private copies of its files.
    /// - Parameter edit: changes the YAML text after the substitution (to break one setting).
    func configurationFile(name: String = "sandbox.yaml", edit: (String) -> String = { $0 }) throws -> String {
        try SandboxExample.configuration(in: directory, sandbox: sandbox, dnsPort: dns.port, listenerPort: listenerPort, name: name, edit: edit)
    }

    /// Runs the checklist in-process on a configuration file.
    func run(_ file: String, sendTest: String? = nil) async -> [RelayDoctorRow] {
        var options = RelayDoctor.Options(configurationFile: file)
        options.sendTest = sendTest
        // Generous: the sandbox shares a loaded CI machine; no check here waits for a timeout.
        options.timeout = 60
        return await RelayDoctor().run(options)
    }
}

extension [RelayDoctorRow] {
    var failures: [RelayDoctorRow] { filter { $0.result == .fail } }

    /// Rows other than pass and info, for failure messages.
    var problems: String {
        filter { $0.result != .pass && $0.result != .info }
            .map { "\($0.result.rawValue.uppercased()) [\($0.step)] \($0.action) | \($0.verification) | \($0.hint)" }
            .joined(separator: "\n")
    }

    func row(_ step: String, _ actionContains: String) -> RelayDoctorRow? {
        first { $0.step == step && $0.action.contains(actionContains) }
    }
}
