import Foundation
import Logging
import M365Sandbox
import NIOPosix
import RelayCore
import RelayTestSupport
import Testing

/// A sandbox the test controls, and a relay whose `smtp` route points at it.
private struct TenantFixture {
    let directory: TemporaryDirectory
    let sandbox: M365Sandbox
    let sandboxPort: Int

    init(unknownRecipients: Set<String> = [], listening: Bool = true) async throws {
        directory = TemporaryDirectory("delivery")
        sandboxPort = freeLoopbackPort()
        var configuration = M365SandboxConfiguration(dataDirectory: directory.file("sandbox"))
        configuration.anyMailboxToken = "delivery-token"
        configuration.unknownRecipients = unknownRecipients
        sandbox = try M365Sandbox(configuration: configuration, smtp: ("127.0.0.1", sandboxPort), group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "sandbox"))
        if listening { try await sandbox.start() }
    }

    func relayYAML(_ relayDirectory: TemporaryDirectory, delivery: String = "") throws -> String {
        let token = try relayDirectory.write("token", "delivery-token\n")
        return """
        server:
          hostname: relay.test
          listeners:
            - address: "127.0.0.1:0"
              tls: none
        storage:
          url: "sqlite:\(relayDirectory.file("relay.sqlite"))"
        clients:
          - name: local
            networks: ["127.0.0.1/32"]
            auth: none
            route: tenant
        routes:
          - name: tenant
            mode: smtp
            smtp_endpoint: "127.0.0.1:\(sandboxPort)"
            ca_file: \(sandbox.caFile)
            token_file: \(token)
        \(delivery)
        """
    }
}

private func message(from: String, subject: String) -> [UInt8] {
    Array("From: \(from)\r\nTo: team@contoso.com\r\nSubject: \(subject)\r\nMessage-ID: <\(subject)@test>\r\n\r\nbody of \(subject)\r\n".utf8)
}

@Suite("Delivery")
struct DeliveryTests {
    @Test func eachRecipientHasItsOwnResultAndTheFailedOneIsBounced() async throws {
        let tenant = try await TenantFixture(unknownRecipients: ["nobody@contoso.com"])
        // A quick retry, so that a transient failure on a loaded machine does not outlast the test.
        let relay = try await RelayHarness { try tenant.relayYAML($0, delivery: "delivery:\n  retry: [1s]") }
        let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["someone@contoso.com", "nobody@contoso.com"], content: message(from: "scanner@contoso.com", subject: "split"))
        #expect(sent["ok"] as? Bool == true, "\(sent)")

        let store = tenant.sandbox.mailStore
        // The original for the known recipient, then the DSN to the sender.
        #expect(try await eventually(timeout: 60) { try store.messages().count == 2 }, "\((try? store.messages()) ?? [])")
        let received = try store.messages()
        let original = try #require(received.first { $0.sender == "scanner@contoso.com" })
        #expect(original.recipients == ["someone@contoso.com"])
        let dsn = try #require(received.first { $0.sender.isEmpty })
        #expect(dsn.recipients == ["scanner@contoso.com"])
        #expect(dsn.mailbox == "postmaster@relay.test")
        let report = String(decoding: try store.content(of: dsn), as: UTF8.self)
        #expect(report.contains("Content-Type: multipart/report; report-type=delivery-status"))
        #expect(report.contains("Final-Recipient: rfc822; nobody@contoso.com"))
        #expect(report.contains("Status: 5.1.10"))
        #expect(report.contains("Subject: split"), "the DSN carries the original headers")
        #expect(!report.contains("someone@contoso.com\r\nAction: failed"))

        let queued = try await relay.application.store.list(state: nil, limit: 10)
        let stored = try #require(queued.first { $0.envelope.sender == "scanner@contoso.com" })
        #expect(stored.recipients.map(\.status) == [.delivered, .failed])
        #expect(stored.state == .failed)
        try await relay.stop()
        await tenant.sandbox.shutdown()
    }

    @Test func oneConnectionCarriesSuccessiveMessages() async throws {
        let tenant = try await TenantFixture()
        let relay = try await RelayHarness { try tenant.relayYAML($0) }
        let store = tenant.sandbox.mailStore
        for number in 1...3 {
            let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["someone@contoso.com"], content: message(from: "scanner@contoso.com", subject: "m\(number)"))
            #expect(sent["ok"] as? Bool == true)
            #expect(try await eventually { try store.messages().count == number })
        }
        let connections = Set(try store.messages().compactMap(\.connection))
        #expect(connections.count == 1, "expected one reused connection, got \(connections)")
        try await relay.stop()
        await tenant.sandbox.shutdown()
    }

    @Test func aMessageThatCannotBeDeliveredExpiresAndIsBouncedOnce() async throws {
        // The tenant never answers: every attempt fails, until the message is too old.
        let tenant = try await TenantFixture(listening: false)
        let relay = try await RelayHarness { try tenant.relayYAML($0, delivery: "delivery:\n  retry: [1s]\n  max_age: 6s") }
        let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["someone@contoso.com"], content: message(from: "scanner@contoso.com", subject: "late"))
        #expect(sent["ok"] as? Bool == true)

        let queue = relay.application.store
        // The original fails for good, its DSN (null sender) too, and nothing bounces the bounce.
        var settled = false
        for _ in 0..<600 where !settled {
            let all = try await queue.list(state: nil, limit: 10)
            settled = all.count == 2 && all.allSatisfy { $0.state == .failed }
            if !settled { try await Task.sleep(for: .milliseconds(100)) }
        }
        let all = try await queue.list(state: nil, limit: 10)
        #expect(settled, "\(all.map { ($0.envelope.sender, $0.state, $0.attempts) })")
        let original = try #require(all.first { $0.envelope.sender == "scanner@contoso.com" })
        // How many attempts fit in the 6 s depends on the machine's load; the retry timing itself is table-tested in RelayCoreTests.
        #expect(original.attempts >= 1)
        #expect(original.recipients.first?.lastReply?.contains("expired") == true)
        let bounce = try #require(all.first { $0.envelope.sender.isEmpty })
        #expect(bounce.envelope.recipients == ["scanner@contoso.com"])
        try await relay.stop()
    }
}
