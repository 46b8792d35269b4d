import Foundation
import M365Sandbox
import NIOCore
import NIOHTTP1
import NIOPosix
import RelayCore
import SMTPCore
import Testing
@testable import M365Delivery

/// Pure parts of the Graph transport.
struct GraphTransportPureTests {
    @Test(arguments: [
        (202, RelayTransportOutcome.Status.delivered), (400, .permanentFailure), (401, .temporaryFailure), (403, .permanentFailure),
        (404, .permanentFailure), (408, .temporaryFailure), (413, .temporaryFailure), (429, .temporaryFailure),
        (500, .temporaryFailure), (503, .temporaryFailure),
    ])
    func recipientStatus(_ status: Int, _ expected: RelayTransportOutcome.Status) {
        #expect(GraphTransport.recipientStatus(forHTTPStatus: status) == expected)
    }

    @Test func errorBodyAndRetryAfter() {
        var headers = HTTPHeaders()
        headers.add(name: "Retry-After", value: "17")
        let response = GraphTransport.response(
            status: 429, headers: headers, body: ByteBuffer(string: #"{"error":{"code":"ApplicationThrottled","message":"Too many"}}"#))
        #expect(response == M365GraphResponse(status: 429, retryAfter: 17, errorCode: "ApplicationThrottled", message: "Too many"))
        let plain = GraphTransport.response(status: 500, headers: HTTPHeaders(), body: ByteBuffer(string: "oops"))
        #expect(plain == M365GraphResponse(status: 500))
    }

    @Test func base64InPiecesEqualsBase64OfTheWhole() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for split in [1, 2, 3, 4, 100, 999] {
            var encoder = GraphBase64Encoder()
            var out = ByteBuffer()
            encoder.append(bytes[..<split], into: &out)
            encoder.append(bytes[split...], into: &out)
            encoder.finish(into: &out)
            #expect(String(buffer: out) == Data(bytes).base64EncodedString())
        }
        #expect(GraphBase64Encoder.encodedLength(1000) == Data(bytes).base64EncodedString().utf8.count)
    }

    @Test func draftCarriesHeadersBodyAndSmallAttachmentsInline() throws {
        let mime = """
        From: "Sender, S." <s@x.test>\r
        To: a@x.test\r
        Cc: C <c@x.test>\r
        Reply-To: r@x.test\r
        Subject: =?utf-8?Q?Caf=C3=A9?=\r
        X-Ticket: 42\r
        Content-Type: multipart/mixed; boundary=b\r
        \r
        --b\r
        Content-Type: text/plain\r
        \r
        hello\r
        --b\r
        Content-Type: application/octet-stream\r
        Content-Disposition: attachment; filename=small.bin\r
        Content-Transfer-Encoding: base64\r
        \r
        AAECAw==\r
        --b--\r

        """
        let draft = GraphDraftMessage(message: RelayMIMEParser.parse(Array(mime.utf8)), extraBcc: ["hidden@y.test"], requestLimit: 4_194_304)
        #expect(draft.resource["subject"] as? String == "Café")
        #expect((draft.resource["body"] as? [String: Any])?["content"] as? String == "hello")
        let bcc = try #require(draft.resource["bccRecipients"] as? [[String: Any]])
        #expect((bcc.first?["emailAddress"] as? [String: Any])?["address"] as? String == "hidden@y.test")
        let from = try #require((draft.resource["from"] as? [String: Any])?["emailAddress"] as? [String: Any])
        #expect(from["name"] as? String == "Sender, S.")
        let headers = try #require(draft.resource["internetMessageHeaders"] as? [[String: String]])
        #expect(headers == [["name": "X-Ticket", "value": "42"]])
        let attachments = try #require(draft.resource["attachments"] as? [[String: Any]])
        #expect(attachments.first?["contentBytes"] as? String == "AAECAw==")
        #expect(draft.remaining.isEmpty)
        // With a small limit the attachment must go separately.
        let tight = GraphDraftMessage(message: RelayMIMEParser.parse(Array(mime.utf8)), extraBcc: [], requestLimit: 600)
        #expect(tight.remaining.map(\.name) == ["small.bin"])
        #expect(tight.remaining.first?.bytes == [0, 1, 2, 3])
    }
}

/// The Graph transport against the sandbox's Graph endpoints.
@Suite(.timeLimit(.minutes(5)))
struct GraphTransportSandboxTests {
    static let sender = "app@contoso.test"

    func transport(_ harness: SandboxHarness, largeMessages: GraphTransport.LargeMessages = .uploadSession) throws -> (GraphTransport, M365TokenProvider) {
        let tokens = try harness.tokenProvider()
        var settings = GraphTransport.Settings(graphURL: harness.baseURL, mailbox: nil)
        settings.largeMessages = largeMessages
        return (GraphTransport(settings: settings, tokens: tokens, httpClient: harness.client, logger: testLogger), tokens)
    }

    static func message(to: String, body: String = "Hello from the relay.\r\n") -> [UInt8] {
        Array("From: App <\(sender)>\r\nTo: \(to)\r\nSubject: Graph test\r\nMessage-ID: <t1@contoso.test>\r\n\r\n\(body)".utf8)
    }

    @Test func sendMailDeliversAndAddsEnvelopeOnlyRecipientsAsBcc() async throws {
        let harness = try await SandboxHarness()
        let (graph, tokens) = try transport(harness)
        let content = Self.message(to: "Alice <alice@contoso.test>")
        let recipients = ["alice@contoso.test", "hidden@fabrikam.test"]
        let queued = testMessage(sender: Self.sender, recipients: recipients, size: content.count)
        let outcome = await graph.deliver(queued, recipients: recipients, content: TestContentReader(content))

        #expect(outcome.recipients.map(\.status) == [.delivered, .delivered])
        #expect(outcome.submitted)
        #expect(outcome.sendingMailbox == Self.sender)
        #expect(outcome.reply == .graph(M365GraphResponse(status: 202)))
        let requestID = try #require(outcome.upstreamID)
        #expect(outcome.summary == "202 Accepted request-id=\(requestID)")

        let stored = try harness.sandbox.mailStore.messages()
        try #require(stored.count == 1)
        #expect(Set(stored[0].recipients.map { $0.lowercased() }) == Set(recipients))
        #expect(stored[0].requestID == requestID)
        #expect(stored[0].via == "graph")
        await tokens.shutdown()
        await harness.stop()
    }

    @Test func largeMessageGoesThroughAnUploadSessionWhole() async throws {
        let harness = try await SandboxHarness()
        let (graph, tokens) = try transport(harness)
        // 5 MB of attachment: its base64 alone is over the 4 MB request limit.
        var generator = SystemRandomNumberGenerator()
        let attachment = (0..<(5 * 1024 * 1024)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let small = Array("small attachment".utf8)
        let encoded = Data(attachment).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        let mime = """
        From: App <\(Self.sender)>\r
        To: alice@contoso.test\r
        Subject: Big one\r
        X-Relay-Test: upload\r
        MIME-Version: 1.0\r
        Content-Type: multipart/mixed; boundary="sep"\r
        \r
        --sep\r
        Content-Type: text/html; charset=utf-8\r
        \r
        <p>See attached.</p>\r
        --sep\r
        Content-Type: text/plain; name=small.txt\r
        Content-Disposition: attachment; filename=small.txt\r
        \r
        small attachment\r
        --sep\r
        Content-Type: application/octet-stream\r
        Content-Disposition: attachment; filename="big.bin"\r
        Content-Transfer-Encoding: base64\r
        \r
        \(encoded)\r
        --sep--\r

        """
        let content = Array(mime.utf8)
        #expect(content.count > 6 * 1024 * 1024)
        let recipients = ["alice@contoso.test", "hidden@fabrikam.test"]
        let queued = testMessage(sender: Self.sender, recipients: recipients, size: content.count)
        let outcome = await graph.deliver(queued, recipients: recipients, content: TestContentReader(content, chunk: 1 << 20))

        #expect(outcome.recipients.map(\.status) == [.delivered, .delivered], "\(outcome.summary)")
        #expect(outcome.summary.hasPrefix("202 Accepted request-id="))
        #expect(outcome.summary.contains("draft="))

        let stored = try harness.sandbox.mailStore.messages()
        try #require(stored.count == 1)
        #expect(Set(stored[0].recipients.map { $0.lowercased() }) == Set(recipients))
        let parsed = RelayMIMEParser.parse(Array(try harness.sandbox.mailStore.content(of: stored[0])))
        let leaves = parsed.leaves
        let big = try #require(leaves.first { $0.filename == "big.bin" })
        #expect(big.decodedBody.count == attachment.count)
        #expect(big.decodedBody == attachment)
        #expect(leaves.first { $0.filename == "small.txt" }?.decodedBody == small)
        #expect(leaves.contains { $0.contentType.value == "text/html" && $0.text.contains("See attached.") })
        await tokens.shutdown()
        await harness.stop()
    }

    @Test func fallbackAnswers413WithoutContactingGraph() async throws {
        let harness = try await SandboxHarness()
        let (graph, tokens) = try transport(harness, largeMessages: .fallback)
        let content = Self.message(to: "alice@contoso.test", body: String(repeating: "x", count: 3_200_000))
        let queued = testMessage(sender: Self.sender, recipients: ["alice@contoso.test"], size: content.count)
        let outcome = await graph.deliver(queued, recipients: ["alice@contoso.test"], content: TestContentReader(content))
        #expect(outcome.recipients.map(\.status) == [.temporaryFailure])
        #expect(outcome.reply == .graph(M365GraphResponse(status: 413, errorCode: "ErrorMessageSizeExceeded", message: outcome.reply.flatMap { if case .graph(let r) = $0 { r.message } else { nil } } ?? "")))
        #expect(!outcome.submitted)
        #expect(harness.sandbox.stats.tokensIssued == 0)
        #expect(try harness.sandbox.mailStore.messages().isEmpty)
        await tokens.shutdown()
        await harness.stop()
    }

    @Test func unauthorizedRefreshesTheTokenOnceAndSucceeds() async throws {
        let harness = try await SandboxHarness()
        let (graph, tokens) = try transport(harness)
        try harness.sandbox.inject(.graphError(status: 401, code: "InvalidAuthenticationToken", message: "Access token has expired or is not yet valid."))
        let content = Self.message(to: "alice@contoso.test")
        let queued = testMessage(sender: Self.sender, recipients: ["alice@contoso.test"], size: content.count)
        let outcome = await graph.deliver(queued, recipients: ["alice@contoso.test"], content: TestContentReader(content))
        #expect(outcome.recipients.map(\.status) == [.delivered], "\(outcome.summary)")
        #expect(outcome.credentialsRefreshed)
        #expect(harness.sandbox.stats.tokensIssued == 2)
        #expect(try harness.sandbox.mailStore.messages().count == 1)
        await tokens.shutdown()
        await harness.stop()
    }

    @Test func graphErrorsAreMappedPerRecipient() async throws {
        let harness = try await SandboxHarness()
        let (graph, tokens) = try transport(harness)
        try harness.sandbox.inject(.graphError(status: 429, code: "ApplicationThrottled", retryAfter: 9))
        let content = Self.message(to: "alice@contoso.test")
        let queued = testMessage(sender: Self.sender, recipients: ["alice@contoso.test"], size: content.count)
        let outcome = await graph.deliver(queued, recipients: ["alice@contoso.test"], content: TestContentReader(content))
        #expect(outcome.recipients.map(\.status) == [.temporaryFailure])
        guard case .graph(let response)? = outcome.reply else { Issue.record("expected a Graph reply"); return }
        #expect(response.status == 429)
        #expect(response.errorCode == "ApplicationThrottled")
        #expect(response.retryAfter == 9)
        #expect(outcome.upstreamID != nil)

        // Sending as someone the mailbox may not send as: permanent.
        let foreign = Array("From: boss@elsewhere.test\r\nTo: alice@contoso.test\r\nSubject: x\r\n\r\nhi\r\n".utf8)
        let denied = await graph.deliver(testMessage(sender: Self.sender, recipients: ["alice@contoso.test"], size: foreign.count), recipients: ["alice@contoso.test"], content: TestContentReader(foreign))
        #expect(denied.recipients.map(\.status) == [.permanentFailure])
        if case .graph(let response)? = denied.reply { #expect(response.errorCode == "ErrorSendAsDenied") } else { Issue.record("expected ErrorSendAsDenied") }
        await tokens.shutdown()
        await harness.stop()
    }
}

/// SMTP AUTH XOAUTH2 with the token provider, against the sandbox's submission endpoint.
@Suite(.timeLimit(.minutes(5)))
struct SMTPOAuthSandboxTests {
    /// Returns a token the sandbox never issued first, the real one after a refusal.
    struct FirstRefusedCredentials: SMTPCredentialProvider {
        let real: OAuthCredentialProvider
        let refused = RefusalCounter()
        func authentication(forMailbox mailbox: String) async throws -> SMTPClientAuthentication? {
            if refused.value == 0 { return .xoauth2(username: mailbox, accessToken: "not-a-real-token") }
            return try await real.authentication(forMailbox: mailbox)
        }
        func credentialsRefused(forMailbox mailbox: String, authentication: SMTPClientAuthentication?) async -> Bool {
            refused.increment()
            return await real.credentialsRefused(forMailbox: mailbox, authentication: authentication)
        }
    }

    final class RefusalCounter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func increment() { lock.lock(); count += 1; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    }

    func transport(_ harness: SandboxHarness, credentials: any SMTPCredentialProvider) throws -> SMTPSubmissionTransport {
        let settings = SMTPSubmissionTransport.Settings(
            host: "127.0.0.1", port: harness.sandbox.ports.smtp, tls: .required,
            tlsContext: try SMTPSubmissionTransport.makeTLSContext(caFile: harness.sandbox.caFile), heloName: "relay.test", mailbox: nil)
        return SMTPSubmissionTransport(settings: settings, credentials: credentials, group: MultiThreadedEventLoopGroup.singleton, logger: testLogger)
    }

    @Test func deliversWithXOAUTH2AndFillsTheOutcome() async throws {
        let harness = try await SandboxHarness()
        let tokens = try harness.tokenProvider()
        let smtp = try transport(harness, credentials: OAuthCredentialProvider(tokens: tokens))
        let content = GraphTransportSandboxTests.message(to: "alice@contoso.test")
        let queued = testMessage(sender: GraphTransportSandboxTests.sender, recipients: ["alice@contoso.test"], size: content.count)
        let outcome = await smtp.deliver(queued, recipients: ["alice@contoso.test"], content: TestContentReader(content))
        #expect(outcome.recipients.map(\.status) == [.delivered], "\(outcome.summary)")
        #expect(outcome.submitted)
        #expect(outcome.sendingMailbox == GraphTransportSandboxTests.sender)
        if case .smtp(let reply)? = outcome.reply { #expect(reply.code == 250) } else { Issue.record("expected the end-of-data reply") }
        #expect(outcome.upstreamID != nil)
        #expect(!outcome.credentialsRefreshed)
        await smtp.shutdown()
        await tokens.shutdown()
        await harness.stop()
    }

    @Test func refusedTokenIsRefreshedOnceOnAFreshConnection() async throws {
        let harness = try await SandboxHarness()
        let tokens = try harness.tokenProvider()
        let credentials = FirstRefusedCredentials(real: OAuthCredentialProvider(tokens: tokens))
        let smtp = try transport(harness, credentials: credentials)
        let content = GraphTransportSandboxTests.message(to: "alice@contoso.test")
        let queued = testMessage(sender: GraphTransportSandboxTests.sender, recipients: ["alice@contoso.test"], size: content.count)
        let outcome = await smtp.deliver(queued, recipients: ["alice@contoso.test"], content: TestContentReader(content))
        #expect(outcome.recipients.map(\.status) == [.delivered], "\(outcome.summary)")
        #expect(outcome.credentialsRefreshed)
        #expect(credentials.refused.value == 1)
        await smtp.shutdown()
        await tokens.shutdown()
        await harness.stop()
    }

    @Test func refusedTwiceReportsThe535() async throws {
        let harness = try await SandboxHarness()
        let smtp = try transport(harness, credentials: StaticCredentialProvider(.xoauth2(token: "never-valid")))
        let content = GraphTransportSandboxTests.message(to: "alice@contoso.test")
        let queued = testMessage(sender: GraphTransportSandboxTests.sender, recipients: ["alice@contoso.test"], size: content.count)
        let outcome = await smtp.deliver(queued, recipients: ["alice@contoso.test"], content: TestContentReader(content))
        #expect(outcome.recipients.map(\.status) == [.temporaryFailure])
        #expect(!outcome.submitted)
        if case .smtp(let reply)? = outcome.reply { #expect(reply.code == 535) } else { Issue.record("expected 535, got \(outcome.summary)") }
        await smtp.shutdown()
        await harness.stop()
    }
}
