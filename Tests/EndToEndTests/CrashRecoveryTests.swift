import Foundation
import Logging
import M365Sandbox
import NIOPosix
import RelayTestSupport
import Testing

/// The relay as a child process, so that it can be killed with SIGKILL.
final class RelayChildProcess {
    /// posix_spawn, not Foundation's Process (see SpawnedProcess in RelayTestSupport).
    let process: SpawnedProcess
    let logFile: String

    init(configuration: String, log: String) throws {
        logFile = log
        FileManager.default.createFile(atPath: log, contents: nil)
        process = try SpawnedProcess(
            try Self.binary(), ["serve", "--config", configuration, "--log-level", "debug"], stdoutFile: log, stderrFile: log)
    }

    var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    func kill() {
        process.signal(SIGKILL)
        _ = process.waitUntilExit()
    }

    /// SIGTERM, then the exit status.
    func terminate() -> Int32 {
        process.signal(SIGTERM)
        return process.waitUntilExit()
    }

    /// The `m365-relay` executable next to the test bundle (both are built by `swift test`).
    static func binary() throws -> String {
        var candidates: [String] = []
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("m365-relay").path)
            directory = directory.deletingLastPathComponent()
        }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(packageRoot.appendingPathComponent(".build/debug/m365-relay").path)
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CocoaError(.fileNoSuchFile, userInfo: ["candidates": candidates])
        }
        return found
    }
}

@Suite("Crash recovery")
struct CrashRecoveryTests {
    /// kill -9 right after the 250: the message is delivered once the relay is back.
    @Test func sigkillAfterTheReplyLosesNothing() async throws {
        let directory = TemporaryDirectory("crash")
        let relayPort = freeLoopbackPort()
        let sandboxPort = freeLoopbackPort()
        let token = "crash-test-token"
        // The sandbox is created (its CA written) but not yet listening: the first relay cannot deliver.
        var sandboxConfiguration = M365SandboxConfiguration(dataDirectory: directory.file("sandbox"))
        sandboxConfiguration.anyMailboxToken = token
        let sandbox = try M365Sandbox(configuration: sandboxConfiguration, smtp: ("127.0.0.1", sandboxPort), group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "sandbox"))
        let tokenFile = try directory.write("token", token + "\n")
        let configuration = try directory.write("relay.yaml", """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:\(relayPort)"
                  tls: none
            storage:
              url: "sqlite:\(directory.file("data/relay.sqlite"))"
            clients:
              - name: local
                networks: ["127.0.0.1/32"]
                auth: none
                allowed_senders: ["*"]
                allowed_recipients: ["*"]
                route: tenant
            routes:
              - name: tenant
                mode: smtp
                smtp_endpoint: "127.0.0.1:\(sandboxPort)"
                ca_file: \(sandbox.caFile)
                token_file: \(tokenFile)
            delivery:
              retry: [1s]
            """)

        let first = try RelayChildProcess(configuration: configuration, log: directory.file("relay.log"))
        #expect(await eventually { first.log.contains("SMTP listener started") }, "the relay did not start: \(first.log)")
        let message = Array("From: a@contoso.com\r\nTo: b@contoso.com\r\nSubject: survive\r\nMessage-ID: <crash@test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nstill here\r\n".utf8)
        let result = try await sendWithPython(port: relayPort, from: "a@contoso.com", to: ["b@contoso.com"], content: message)
        first.kill()
        #expect(result["ok"] as? Bool == true, "\(result)")
        #expect(first.log.contains("Message queued"))

        try await sandbox.start()
        let second = try RelayChildProcess(configuration: configuration, log: directory.file("relay.log"))
        let store = sandbox.mailStore
        #expect(try await eventually(timeout: 60) { try store.messages().count == 1 }, "the message was lost: \(second.log)")
        if let stored = try store.messages().first {
            #expect(splitReceived(try store.content(of: stored)).rest == message)
        }
        #expect(second.terminate() == 0, "SIGTERM must end the relay cleanly")
        #expect(try store.messages().count == 1, "delivered twice")
        await sandbox.shutdown()
    }
}
