import Foundation
import RelayTestSupport
import Testing

/// The built `m365-relay` binary as a child process, with its own working
/// directory and stdout and stderr captured in separate files.
///
/// Unlike ``RelayChildProcess`` it never blocks the caller: exits are awaited
/// by polling, so a test on the cooperative pool stays responsive.
final class RelayCommandProcess: @unchecked Sendable {
    /// posix_spawn, not Foundation's Process (see SpawnedProcess in RelayTestSupport).
    let process: SpawnedProcess
    private let output = TemporaryDirectory("relay-cli-output")

    init(_ arguments: [String], workingDirectory: String? = nil) throws {
        process = try SpawnedProcess(
            try Self.binary(), arguments, stdoutFile: output.file("stdout"), stderrFile: output.file("stderr"), workingDirectory: workingDirectory)
    }

    /// `M365_RELAY_BINARY` when set (to run these tests against another
    /// build, say an optimised one), else the binary `swift test` built.
    static func binary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["M365_RELAY_BINARY"], !path.isEmpty { return path }
        return try RelayChildProcess.binary()
    }

    var pid: Int32 { process.pid }
    var isRunning: Bool { process.isRunning }
    var stdout: String { (try? String(contentsOfFile: output.file("stdout"), encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: output.file("stderr"), encoding: .utf8)) ?? "" }

    /// The exit status once the process has ended by itself; nil if it was
    /// still running after `timeout` or was ended by a signal.
    func exitStatus(timeout: TimeInterval = 30) async -> Int32? {
        guard await eventually(timeout: timeout, { !process.isRunning }) else { return nil }
        return process.endedBySignal ? nil : process.exitStatus
    }

    /// SIGTERM, then the exit status (nil: still running after `timeout`, or killed by a signal).
    func terminate(timeout: TimeInterval = 30) async -> Int32? {
        process.signal(SIGTERM)
        return await exitStatus(timeout: timeout)
    }

    deinit {
        // A failed test must not leave a relay behind holding a port.
        process.signal(SIGKILL)
    }
}

/// The command-line contract of PRODUCT.md, run against the built binary:
/// exit codes 0 success, 1 a check failed, 2 usage error, 3 could not start.
@Suite("Command line")
struct CommandLineTests {
    static func run(_ arguments: [String], timeout: TimeInterval = 60) async throws -> ExternalProcess.Result {
        try await ExternalProcess.run(try RelayCommandProcess.binary(), arguments, timeout: timeout)
    }

    /// A minimal configuration in the shape of PRODUCT.md's example.
    static func configuration(port: Int, storage: String, routes: String = """
        routes:
          - name: sandbox
            mode: sandbox
        """, route: String = "sandbox", limits: String = "") -> String {
        """
        server:
          hostname: relay.test
          listeners:
            - address: "127.0.0.1:\(port)"
              tls: none
        \(limits)
        storage:
          url: "sqlite:\(storage)"
        clients:
          - name: local
            networks: ["127.0.0.1/32"]
            auth: none
            allowed_senders: ["*"]
            allowed_recipients: ["*"]
            route: \(route)
        \(routes)
        """
    }

    // MARK: check-config

    @Test func checkConfigPrintsTheEffectiveConfiguration() async throws {
        let directory = TemporaryDirectory("cli-check")
        let file = try directory.write("good.yaml", Self.configuration(port: freeLoopbackPort(), storage: directory.file("data/relay.sqlite")))
        let result = try await Self.run(["check-config", "--config", file])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        // Defaults the file left out are filled in.
        for line in ["max_recipients: 500", "max_message_size: 35MB", "max_connections_per_ip: 50", "retry: [1m, 5m, 15m, 1h, 4h]", "bounces: sender"] {
            #expect(result.stdout.contains(line), "missing `\(line)` in:\n\(result.stdout)")
        }
        // The values the file gave are kept.
        for line in ["hostname: relay.test", "url: sqlite:\(directory.file("data/relay.sqlite"))", "mode: sandbox", "route: sandbox"] {
            #expect(result.stdout.contains(line), "missing `\(line)` in:\n\(result.stdout)")
        }
        // Nothing is created by a check.
        #expect(!FileManager.default.fileExists(atPath: directory.file("data")))

        // The output is itself a valid configuration that reads back to the same thing.
        let rendered = try directory.write("effective.yaml", result.stdout)
        let again = try await Self.run(["check-config", "--config", rendered])
        #expect(again.status == 0, "the effective configuration does not read back: \(again.stderr)")
        #expect(again.stdout == result.stdout)
    }

    @Test func checkConfigListsEveryProblemWithFileKeyAndReason() async throws {
        let directory = TemporaryDirectory("cli-check")
        let file = try directory.write("bad.yaml", Self.configuration(
            port: freeLoopbackPort(), storage: directory.file("data/relay.sqlite"),
            limits: """
                  limits:
                    max_recipents: 10
                    max_message_size: lots
                """))
        let result = try await Self.run(["check-config", "--config", file])
        #expect(result.status == 1, "stdout: \(result.stdout) stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty, "no effective configuration for an invalid file: \(result.stdout)")
        let lines = result.stderr.split(separator: "\n").map(String.init)
        let unknown = lines.first { $0.contains("server.limits.max_recipents") }
        let badValue = lines.first { $0.contains("server.limits.max_message_size") }
        #expect(unknown?.hasPrefix(file + ": ") == true, "stderr: \(result.stderr)")
        #expect(unknown?.contains("unknown key") == true, "stderr: \(result.stderr)")
        #expect(badValue?.hasPrefix(file + ": ") == true, "stderr: \(result.stderr)")
        #expect(badValue?.contains("lots") == true && badValue?.contains("not a size") == true, "stderr: \(result.stderr)")
    }

    @Test func checkConfigShowsSecretFilesButNeverTheirContent() async throws {
        let directory = TemporaryDirectory("cli-redact")
        let secret = "S3cret-\(UUID().uuidString)"
        let passwordFile = try directory.write("smtp.password", secret + "\n")
        let file = try directory.write("smtp.yaml", Self.configuration(
            port: freeLoopbackPort(), storage: directory.file("data/relay.sqlite"),
            routes: """
                routes:
                  - name: tenant
                    mode: smtp
                    username: relay@contoso.com
                    password_file: \(passwordFile)
                """, route: "tenant"))
        let result = try await Self.run(["check-config", "--config", file])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("password_file: \(passwordFile)"), "\(result.stdout)")
        #expect(result.stdout.contains("username: relay@contoso.com"))
        #expect(!result.stdout.contains(secret), "the password leaked into check-config's output")
        #expect(!result.stderr.contains(secret), "the password leaked into check-config's warnings")
    }

    @Test func checkConfigOfAMissingFileFails() async throws {
        let directory = TemporaryDirectory("cli-missing")
        let result = try await Self.run(["check-config", "--config", directory.file("absent.yaml")])
        #expect(result.status == 1)
        #expect(result.stderr.contains(directory.file("absent.yaml")), "stderr: \(result.stderr)")
    }

    // MARK: Usage errors

    @Test(arguments: [
        ["serve", "--no-such-flag"],
        ["frobnicate"],
        ["check-config"],
        ["check-config", "--config"],
        ["serve", "--log-level", "loud"],
    ])
    func usageErrorsExitWithTwo(_ arguments: [String]) async throws {
        let result = try await Self.run(arguments, timeout: 30)
        #expect(result.status == 2, "\(arguments): status \(result.status), stderr: \(result.stderr)")
        #expect(!result.stderr.isEmpty, "a usage error says what is wrong")
    }

    // MARK: Could not start

    @Test func aSecondRelayOnTheSamePortOrTheSameQueueCannotStart() async throws {
        let directory = TemporaryDirectory("cli-start")
        let port = freeLoopbackPort()
        let firstStorage = directory.file("first/relay.sqlite")
        let first = try RelayCommandProcess(["serve", "--config", try directory.write("first.yaml", Self.configuration(port: port, storage: firstStorage))])
        #expect(await eventually(timeout: 60) { first.stderr.contains("m365-relay started") || !first.isRunning },
                "the first relay did not start: \(first.stderr)")
        try #require(first.isRunning, "the first relay exited: \(first.stderr)")
        #expect(first.stderr.contains("127.0.0.1:\(port)"))

        // Same port, its own queue.
        let samePort = try directory.write("same-port.yaml", Self.configuration(port: port, storage: directory.file("second/relay.sqlite")))
        let second = try await Self.run(["serve", "--config", samePort], timeout: 30)
        #expect(second.status == 3, "status \(second.status), stderr: \(second.stderr)")
        #expect(second.stderr.contains("could not start"), "stderr: \(second.stderr)")
        #expect(second.stderr.contains("127.0.0.1:\(port)"), "the reason names the address: \(second.stderr)")

        // Same queue, its own port: the store is locked by the first relay.
        let sameQueue = try directory.write("same-queue.yaml", Self.configuration(port: freeLoopbackPort(), storage: firstStorage))
        let third = try await Self.run(["serve", "--config", sameQueue], timeout: 30)
        #expect(third.status == 3, "status \(third.status), stderr: \(third.stderr)")
        #expect(third.stderr.contains("could not start"), "stderr: \(third.stderr)")
        #expect(third.stderr.contains(firstStorage), "the reason names the queue: \(third.stderr)")

        #expect(first.isRunning, "the failed starts must not disturb the running relay: \(first.stderr)")
        #expect(await first.terminate() == 0, "SIGTERM must end the relay cleanly: \(first.stderr)")

        // With the first one gone, the same queue opens again.
        let fourth = try RelayCommandProcess(["serve", "--config", sameQueue])
        #expect(await eventually(timeout: 60) { fourth.stderr.contains("m365-relay started") || !fourth.isRunning },
                "the queue stayed locked: \(fourth.stderr)")
        #expect(await fourth.terminate() == 0, "stderr: \(fourth.stderr)")
    }

    @Test func unusableStorageCannotStart() async throws {
        let directory = TemporaryDirectory("cli-storage")
        let file = try directory.write("relay.yaml", Self.configuration(port: freeLoopbackPort(), storage: "/proc/nope/relay.sqlite"))
        let result = try await Self.run(["serve", "--config", file], timeout: 30)
        #expect(result.status == 3, "status \(result.status), stderr: \(result.stderr)")
        #expect(result.stderr.contains("could not start"), "stderr: \(result.stderr)")
        #expect(result.stderr.contains("/proc/nope/relay.sqlite"), "stderr: \(result.stderr)")
    }

    @Test func serveWithAnInvalidConfigurationFailsTheCheck() async throws {
        let directory = TemporaryDirectory("cli-serve-invalid")
        let file = try directory.write("relay.yaml", "server:\n  hostnam: relay.test\n")
        let result = try await Self.run(["serve", "--config", file], timeout: 30)
        #expect(result.status == 1, "status \(result.status), stderr: \(result.stderr)")
        #expect(result.stderr.contains("\(file): server.hostnam: unknown key"), "stderr: \(result.stderr)")
    }

    // MARK: The built-in sandbox setup

    /// `serve` with no configuration: SMTP on 127.0.0.1:2525, SQLite under
    /// `./m365-relay-data/`, route `sandbox`, and it says so. Port 2525 may
    /// be taken by someone else on this machine; then the contract is exit 3
    /// naming the port.
    @Test func serveWithoutAConfigurationRunsTheBuiltInSandboxSetup() async throws {
        let workingDirectory = TemporaryDirectory("cli-builtin")
        let relay = try RelayCommandProcess(["serve"], workingDirectory: workingDirectory.path)
        let settled = await eventually(timeout: 60) {
            relay.stderr.contains("Built-in sandbox setup") || !relay.isRunning
        }
        #expect(settled, "neither started nor failed: \(relay.stderr)")

        if !relay.isRunning {
            // Port 2525 is in use by another program: could not start, with the reason.
            print("CommandLineTests: 127.0.0.1:2525 is taken; checked the could-not-start branch")
            let status = await relay.exitStatus()
            #expect(status == 3, "status \(String(describing: status)), stderr: \(relay.stderr)")
            #expect(relay.stderr.contains("could not start"), "stderr: \(relay.stderr)")
            // Either of the built-in setup's fixed ports: SMTP 2525 or the admin server's 8025.
            #expect(relay.stderr.contains("127.0.0.1:2525") || relay.stderr.contains("127.0.0.1:8025"), "stderr: \(relay.stderr)")
            return
        }

        print("CommandLineTests: 127.0.0.1:2525 was free; checked the built-in sandbox setup end to end")
        let notice = relay.stderr.split(separator: "\n").first { $0.contains("Built-in sandbox setup") }.map(String.init) ?? ""
        #expect(notice.contains("127.0.0.1:2525"), "the notice says where to send: \(notice)")
        #expect(notice.contains("sandbox"), "\(notice)")
        #expect(notice.contains("m365-relay-data"), "the notice says where the data is: \(notice)")
        #expect(notice.contains("http://127.0.0.1:8025/"), "the notice says where the dashboard is: \(notice)")
        let data = workingDirectory.file("m365-relay-data")
        #expect(FileManager.default.fileExists(atPath: data + "/relay.sqlite"), "the queue lives under ./m365-relay-data/")

        // Mail flows end to end into the sandbox, as PRODUCT.md promises a new user.
        let message = Array("From: a@contoso.com\r\nTo: b@contoso.com\r\nSubject: built-in\r\nMessage-ID: <builtin@cli.test>\r\n\r\nhello sandbox\r\n".utf8)
        let sent = try await sendWithPython(port: 2525, from: "a@contoso.com", to: ["b@contoso.com"], content: message)
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        let messages = data + "/sandbox/messages"
        #expect(await eventually(timeout: 60) {
            ((try? FileManager.default.contentsOfDirectory(atPath: messages)) ?? []).filter { $0.hasSuffix(".json") }.count == 1
        }, "the sandbox did not receive the message: \(relay.stderr)")

        #expect(await relay.terminate() == 0, "SIGTERM must end the relay cleanly: \(relay.stderr)")
    }
}
