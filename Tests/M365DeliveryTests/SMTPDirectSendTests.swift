import Foundation
import NIOCore
import NIOPosix
import RelayCore
import SMTPCore
import Testing
@testable import M365Delivery

struct SMTPDirectSendTests {
    @Test(arguments: [
        ("contoso.com", "contoso-com.mail.protection.outlook.com"),
        ("Contoso.COM.", "contoso-com.mail.protection.outlook.com"),
        ("my-company.co.uk", "my-company-co-uk.mail.protection.outlook.com"),
        ("sub.example.org", "sub-example-org.mail.protection.outlook.com"),
    ])
    func tenantMXHost(_ domain: String, _ host: String) {
        #expect(SMTPSubmissionTransport.tenantMXHost(forDomain: domain) == host)
    }

    @Test func directSendSplitsRecipientsByAcceptedDomain() {
        let split = SMTPSubmissionTransport.directSendRefusals(["a@contoso.com", "b@CONTOSO.com", "c@gmail.com", "d@sub.contoso.com"], acceptedDomains: ["contoso.com", "fabrikam.com"])
        #expect(split.accepted == ["a@contoso.com", "b@CONTOSO.com"])
        #expect(split.refused.map(\.address) == ["c@gmail.com", "d@sub.contoso.com"])
        #expect(split.refused[0].reason.contains("accepted domains (contoso.com, fabrikam.com)"))
        #expect(split.refused[0].reason.contains("connector or SMTP AUTH route"))
    }

    /// A listener that counts accepted connections and never answers.
    final class CountingListener: @unchecked Sendable {
        let channel: any Channel
        let accepted = NIOLockedValueBoxCounter()
        init(group: any EventLoopGroup) async throws {
            let counter = accepted
            channel = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    counter.increment()
                    return channel.close()
                }
                .bind(host: "127.0.0.1", port: 0).get()
        }
        var port: Int { channel.localAddress?.port ?? 0 }
    }

    @Test(.timeLimit(.minutes(5)))
    func externalOnlyMessageNeverConnects() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await CountingListener(group: group)
        defer { listener.channel.close(promise: nil) }
        var settings = SMTPSubmissionTransport.Settings(host: "127.0.0.1", port: listener.port, tls: .none, tlsContext: nil, heloName: "relay.test", mailbox: nil)
        settings.acceptedDomains = ["contoso.com"]
        let transport = SMTPSubmissionTransport(settings: settings, credentials: StaticCredentialProvider(.none), group: group, logger: testLogger)
        let message = testMessage(sender: "app@contoso.com", recipients: ["x@gmail.com", "y@example.org"], size: 20)
        let outcome = await transport.deliver(message, recipients: message.pendingRecipients, content: TestContentReader(Array("Subject: x\r\n\r\nhi\r\n".utf8)))
        #expect(outcome.recipients.map(\.status) == [.permanentFailure, .permanentFailure])
        #expect(outcome.recipients.allSatisfy { $0.reply.contains("Direct Send delivers only to the tenant's accepted domains (contoso.com)") })
        #expect(outcome.reply == nil)
        #expect(!outcome.submitted)
        #expect(listener.accepted.value == 0)
        await transport.shutdown()
    }

    @Test(.timeLimit(.minutes(5)))
    func mixedRecipientsStillTryTheInternalOnes() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await CountingListener(group: group)
        defer { listener.channel.close(promise: nil) }
        var settings = SMTPSubmissionTransport.Settings(host: "127.0.0.1", port: listener.port, tls: .none, tlsContext: nil, heloName: "relay.test", mailbox: nil)
        settings.acceptedDomains = ["contoso.com"]
        let transport = SMTPSubmissionTransport(settings: settings, credentials: StaticCredentialProvider(.none), group: group, logger: testLogger)
        let message = testMessage(sender: "app@contoso.com", recipients: ["x@gmail.com", "in@contoso.com"], size: 20)
        let outcome = await transport.deliver(message, recipients: message.pendingRecipients, content: TestContentReader(Array("Subject: x\r\n\r\nhi\r\n".utf8)))
        let byAddress = Dictionary(uniqueKeysWithValues: outcome.recipients.map { ($0.address, $0.status) })
        #expect(byAddress["x@gmail.com"] == .permanentFailure)
        // The listener closes at once: a temporary failure for the internal one, after one connection.
        #expect(byAddress["in@contoso.com"] == .temporaryFailure)
        #expect(listener.accepted.value >= 1)
        if case .connectionFailed? = outcome.reply {} else { Issue.record("expected a connection failure, got \(String(describing: outcome.reply)): \(outcome.summary)") }
        await transport.shutdown()
    }

    @Test(arguments: [
        (SMTPReply(250, SMTPEnhancedStatus(2, 0, 0), "OK <DM6PR@namprd.prod.outlook.com> [Hostname=DM6PR11MB]"), "<DM6PR@namprd.prod.outlook.com> [Hostname=DM6PR11MB]"),
        (SMTPReply(250, SMTPEnhancedStatus(2, 0, 0), "OK 123456 queued"), "123456 queued"),
        (SMTPReply(550, SMTPEnhancedStatus(5, 7, 1), "<x> refused"), nil),
    ] as [(SMTPReply, String?)])
    func upstreamIDFromTheEndOfDataReply(_ reply: SMTPReply, _ id: String?) {
        #expect(SMTPSubmissionTransport.upstreamID(fromEndOfData: reply) == id)
    }
}

/// A thread-safe counter for listener callbacks.
final class NIOLockedValueBoxCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
