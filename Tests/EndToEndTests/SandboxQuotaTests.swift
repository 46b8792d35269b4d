import Foundation
import M365Sandbox
import RelayTestSupport
import Testing

// The sandbox's per-mailbox submission quotas (SMTP AUTH and Graph
// together) and its injectable faults, against ../shared/M365.md: past the
// per-minute rate a submission is delayed (or refused in strict mode); past
// the daily recipients `554 5.2.0 ... SubmissionQuotaExceededException`.

/// Sends `count` messages on one connection as alice (XOAUTH2) and reports MAIL and DATA replies; a dropped connection is `{"code": -1}`.
private let sandboxQuotaScript = #"""
results = []
s = secure()
xoauth2(s, args["user"], args["token"])
for n in range(args["count"]):
    try:
        mail = reply(s.mail(args["user"]))
        if mail["code"] != 250:
            results.append({"mail": mail, "data": None})
            s.rset()
            continue
        for r in args["to"]:
            s.rcpt(r)
        sent = data(s, ("From: %s\r\nTo: %s\r\nSubject: %d\r\n\r\nbody\r\n" % (args["user"], ", ".join(args["to"]), n)).encode())
        results.append({"mail": mail, "data": sent})
    except smtplib.SMTPServerDisconnected:
        results.append({"mail": {"code": -1, "text": "disconnected"}, "data": None})
        s = secure()
        xoauth2(s, args["user"], args["token"])
close(s)
done({"results": results})
"""#

private struct QuotaRun: Decodable {
    struct Result: Decodable {
        var mail: SandboxReply
        var data: SandboxReply?
    }
    var results: [Result]
}

extension SandboxHTTPEndpoint {
    fileprivate func submit(_ count: Int, to recipients: [String] = ["carol@fabrikam.com"], user: String = "alice@contoso.com", token: String = "alice-token") async throws -> [QuotaRun.Result] {
        try await python(sandboxQuotaScript, ["count": count, "to": recipients, "user": user, "token": token], as: QuotaRun.self).results
    }
}

@Suite("Sandbox submission quotas and faults")
struct SandboxQuotaTests {
    static func configure(_ configuration: inout M365SandboxConfiguration) {
        SandboxApps.configure(&configuration)
        configuration.mailboxes[0].tokens = ["alice-token"]
        // Microsoft's minute, shortened so that a delay is seen in seconds.
        configuration.messagesPerMinute = 2
        configuration.messageRateWindow = 2
    }

    /// Past the per-minute rate Microsoft delays: every message is accepted, the third one window after the first.
    @Test func excessIsDelayedByDefault() async throws {
        // A window long enough that a loaded machine's own delays cannot pass for the sandbox's.
        try await SandboxHTTPEndpoint.with({ Self.configure(&$0); $0.messageRateWindow = 5 }) { endpoint in
            let started = Date()
            let results = try await endpoint.submit(3)
            #expect(results.compactMap(\.data?.code) == [250, 250, 250], "\(results.map(\.data))")
            let times = endpoint.sandbox.mailStore.acceptances.map(\.acceptedAt).sorted()
            #expect(times.count == 3)
            if times.count == 3 {
                #expect(times[2].timeIntervalSince(times[0]) >= 4.9, "\(times)")
                #expect(times[1].timeIntervalSince(times[0]) < 4.9, "\(times)")
            }
            // Delayed by the 5 s window, not by a default minute (a loaded machine once needed 22 s in all).
            #expect(Date().timeIntervalSince(started) < 55)
            #expect(endpoint.sandbox.stats.throttleRejections == 0)
            let recorded = try endpoint.sandbox.mailStore.messages().compactMap(\.acceptedAt)
            #expect(recorded.count == 3)
        }
    }

    /// Strict: the third is a `450 4.7.0` tempfail citing the rate, and Graph's next is `429` with `Retry-After` (they share the count).
    @Test func strictQuotasRefuse() async throws {
        try await SandboxHTTPEndpoint.with({ Self.configure(&$0); $0.strictQuotas = true; $0.messageRateWindow = 30 }) { endpoint in
            let results = try await endpoint.submit(3)
            let statuses = results.map { $0.data?.status ?? "" }
            #expect(statuses == ["250 2.0.0", "250 2.0.0", "450 4.7.0"], "\(results.map(\.data))")
            #expect(results.last?.data?.text.contains("2 messages per minute") == true)
            let token = try await endpoint.accessToken(scope: SandboxApps.graphScope)
            let graph = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: token)
            #expect(graph.status == 429, "\(graph.text)")
            let retryAfter = Int(graph.headers["retry-after"] ?? "") ?? 0
            #expect((1...30).contains(retryAfter), "\(graph.headers)")
            // Another mailbox has its own quota.
            let bob = try await endpoint.sendMail("bob@contoso.com", mime: sandboxMIME(from: "bob@contoso.com"), token: token)
            #expect(bob.status == 202)
            #expect(endpoint.sandbox.stats.throttleRejections == 2)
            #expect(try endpoint.sandbox.mailStore.messages().count == 3)
        }
    }

    /// The rolling day's recipients, shared by SMTP and Graph: `554 5.2.0 ... SubmissionQuotaExceededException`, then Graph `403 ErrorSubmissionQuotaExceeded`.
    @Test func dailyRecipientsQuota() async throws {
        try await SandboxHTTPEndpoint.with({ Self.configure(&$0); $0.messagesPerMinute = 600; $0.recipientsPerDay = 3 }) { endpoint in
            let results = try await endpoint.submit(2, to: ["carol@fabrikam.com", "dave@fabrikam.com"])
            #expect(results.first?.data?.status == "250 2.0.0", "\(results.map(\.data))")
            #expect(results.last?.data?.status == "554 5.2.0", "\(results.map(\.data))")
            #expect(results.last?.data?.text == "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Message submission quota exceeded[EndDiagnosticData]")
            let token = try await endpoint.accessToken(scope: SandboxApps.graphScope)
            let third = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: token)
            #expect(third.status == 202, "one more recipient fits: \(third.text)")
            let over = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: token)
            #expect(over.status == 403 && over.errorCode == "ErrorSubmissionQuotaExceeded", "\(over.text)")
            #expect(over.text.contains("SubmissionQuotaExceeded"))
            #expect(endpoint.sandbox.stats.throttleRejections == 2)
            #expect(try endpoint.sandbox.mailStore.messages().map(\.recipients.count) == [2, 1])
        }
    }

    /// Each SMTP fault once: a reply at MAIL, replies at the final dot, a connection dropped after it (nothing stored); then normal service.
    @Test func injectedSMTPFaults() async throws {
        try await SandboxHTTPEndpoint.with({ Self.configure(&$0); $0.messagesPerMinute = 600 }) { endpoint in
            let quotaReply = "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Message submission quota exceeded[EndDiagnosticData]"
            try endpoint.sandbox.inject(.smtpReply("550 5.7.708 Access denied, traffic not accepted from this IP", at: .mail))
            try endpoint.sandbox.inject(.smtpReply("451 4.7.500 Access denied, please try again later", at: .data, mailbox: "alice@contoso.com"))
            try endpoint.sandbox.inject(.smtpReply(quotaReply, at: .data))
            try endpoint.sandbox.inject(.closeAfterData())
            // For another mailbox: never strikes alice.
            try endpoint.sandbox.inject(.smtpReply("550 5.7.708 Access denied, traffic not accepted from this IP", at: .mail, mailbox: "bob@contoso.com"))
            let results = try await endpoint.submit(5)
            #expect(results.count == 5)
            guard results.count == 5 else { return }
            #expect(results[0].mail.status == "550 5.7.708", "\(results[0])")
            #expect(results[0].mail.text == "5.7.708 Access denied, traffic not accepted from this IP")
            #expect(results[1].data?.status == "451 4.7.500", "\(results[1])")
            #expect(results[2].data?.status == "554 5.2.0", "\(results[2])")
            #expect(results[3].data?.code == -1 || results[3].mail.code == -1, "dropped after the dot: \(results[3])")
            #expect(results[4].data?.status == "250 2.0.0", "\(results[4])")
            #expect(try endpoint.sandbox.mailStore.messages().count == 1)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: endpoint.sandbox.mailStore.directory).filter { $0.hasSuffix(".tmp") }
            #expect(leftovers.isEmpty)
            #expect(endpoint.sandbox.stats.faultsPending == 1)
        }
    }

    /// Faults from the configuration, at the MX: the reply at the final dot, then normal service.
    @Test func configuredConnectorFault() async throws {
        try await SandboxHTTPEndpoint.with({ configuration in
            SandboxConnectorTests.configure(&configuration)
            configuration.faults = [.smtpReply("550 5.7.708 Access denied, traffic not accepted from this IP", endpoint: .connector, at: .data)]
        }) { endpoint in
            let first = try await endpoint.mx(from: "127.0.0.2", to: ["carol@fabrikam.com"])
            #expect(first.data?.status == "550 5.7.708", "\(String(describing: first.data))")
            let second = try await endpoint.mx(from: "127.0.0.2", to: ["carol@fabrikam.com"])
            #expect(second.data?.code == 250)
            #expect(try endpoint.sandbox.mailStore.messages().count == 1)
        }
    }
}
