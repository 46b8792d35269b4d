import Foundation
import M365Sandbox
import RelayTestSupport
import Testing

/// Exchange's Send As check at the end of DATA: the envelope sender and the
/// header From must be the authenticated mailbox or one it has Send As rights
/// for; otherwise `554 5.2.252 SendAsDenied` and nothing is delivered.
@Suite("Sandbox Send As, seen by python smtplib")
struct SandboxSendAsTests {
    private struct Attempt: Decodable {
        var auth: SandboxReply
        var mail: SandboxReply
        var rcpt: SandboxReply
        var data: SandboxReply
    }

    private struct Case: Sendable, CustomStringConvertible {
        var user: String
        var token: String
        var envelope: String
        var from: String
        /// nil: accepted; otherwise the address named in the SendAsDenied text.
        var deniedAs: String?
        var description: String { "\(user) sending as envelope \(envelope), From: \(from)" }
    }

    private static let script = #"""
        results = []
        for case in args["cases"]:
            s = secure()
            auth = xoauth2(s, case["user"], case["token"])
            mail = reply(s.mail(case["envelope"]))
            rcpt = reply(s.rcpt("someone@fabrikam.com"))
            content = ("From: %s\r\nTo: someone@fabrikam.com\r\nSubject: %s\r\n\r\nbody\r\n" % (case["from"], case["envelope"])).encode()
            sent = data(s, content)
            close(s)
            results.append({"auth": auth, "mail": mail, "rcpt": rcpt, "data": sent})
        done(results)
        """#

    private static let cases: [Case] = [
        // alice has no Send As rights: neither the envelope nor the header may name bob.
        Case(user: "alice@contoso.com", token: "alice-token", envelope: "bob@contoso.com", from: "Alice <alice@contoso.com>", deniedAs: "bob@contoso.com"),
        Case(user: "alice@contoso.com", token: "alice-token", envelope: "alice@contoso.com", from: "Bob <bob@contoso.com>", deniedAs: "bob@contoso.com"),
        Case(user: "alice@contoso.com", token: "alice-token", envelope: "alice@contoso.com", from: "info@contoso.com", deniedAs: "info@contoso.com"),
        // frontdesk may send as info (any letter case), and as itself.
        Case(user: "frontdesk@contoso.com", token: "frontdesk-token", envelope: "info@contoso.com", from: "Info <info@contoso.com>", deniedAs: nil),
        Case(user: "frontdesk@contoso.com", token: "frontdesk-token", envelope: "frontdesk@contoso.com", from: "\"Contoso, Info\" <INFO@Contoso.com>", deniedAs: nil),
        Case(user: "frontdesk@contoso.com", token: "frontdesk-token", envelope: "Info@Contoso.com", from: "frontdesk@contoso.com", deniedAs: nil),
        Case(user: "frontdesk@contoso.com", token: "frontdesk-token", envelope: "frontdesk@contoso.com", from: "Bob <bob@contoso.com>", deniedAs: "bob@contoso.com"),
        // The tenant-wide token lets any mailbox in, but only as itself.
        Case(user: "carol@contoso.com", token: "tenant-token", envelope: "carol@contoso.com", from: "carol@contoso.com", deniedAs: nil),
        Case(user: "carol@contoso.com", token: "tenant-token", envelope: "carol@contoso.com", from: "Dave <dave@contoso.com>", deniedAs: "dave@contoso.com"),
    ]

    /// Denied at end of data (`554 5.2.252`, nothing stored); with Send As rights accepted and stored.
    @Test func sendAsIsCheckedOnEnvelopeAndHeader() async throws {
        try await SandboxSubmissionEndpoint.with({
            $0.mailboxes = [
                .init(address: "alice@contoso.com", tokens: ["alice-token"]),
                .init(address: "frontdesk@contoso.com", tokens: ["frontdesk-token"], sendAs: ["info@contoso.com"]),
            ]
            $0.anyMailboxToken = "tenant-token"
        }) { endpoint in
            let arguments = Self.cases.map { ["user": $0.user, "token": $0.token, "envelope": $0.envelope, "from": $0.from] }
            let results = try await endpoint.python(Self.script, ["cases": arguments], as: [Attempt].self)
            try #require(results.count == Self.cases.count)
            for (attempt, sendCase) in zip(results, Self.cases) {
                #expect(attempt.auth.status == "235 2.7.0", "\(sendCase): \(attempt.auth)")
                // The check happens once the message is in, not at MAIL FROM.
                #expect(attempt.mail.status == "250 2.1.0", "\(sendCase): \(attempt.mail)")
                #expect(attempt.rcpt.status == "250 2.1.5", "\(sendCase): \(attempt.rcpt)")
                if let denied = sendCase.deniedAs {
                    #expect(attempt.data.status == "554 5.2.252", "\(sendCase): \(attempt.data)")
                    #expect(attempt.data.text.contains("SendAsDenied; \(sendCase.user) not allowed to send as \(denied)"), "\(sendCase): \(attempt.data)")
                } else {
                    #expect(attempt.data.status == "250 2.0.0", "\(sendCase): \(attempt.data)")
                }
            }

            // Only the accepted ones were stored, under the mailbox that sent them.
            let stored = try endpoint.sandbox.mailStore.messages()
            let accepted = Self.cases.filter { $0.deniedAs == nil }
            #expect(stored.count == accepted.count, "\(stored)")
            #expect(Set(stored.map { "\($0.mailbox) \($0.sender)" }) == Set(accepted.map { "\($0.user) \($0.envelope)" }), "\(stored)")
            let files = try endpoint.storedFiles()
            #expect(files.filter { $0.hasSuffix(".eml") }.count == accepted.count, "\(files)")
            #expect(!files.contains { $0.hasSuffix(".tmp") }, "a refused message left its temporary file: \(files)")
        }
    }
}
