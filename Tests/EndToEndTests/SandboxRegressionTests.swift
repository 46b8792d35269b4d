import Foundation
import M365Sandbox
import RelayTestSupport
import Testing

/// Regressions found by testing the sandbox with python smtplib, kept so they stay fixed.
@Suite("Sandbox regressions, seen by python smtplib")
struct SandboxRegressionTests {
    private struct Outcome: Decodable {
        var after: SandboxReply
        var attempts: Int
    }

    /// Clients that send AUTH and vanish before the reply must not use up the
    /// mailbox's three connections for good.
    /// (The credential check runs in a task that may finish after the
    /// connection closed; such a check must not take a slot.)
    @Test(arguments: ["fin", "rst"]) func clientsThatVanishDuringAuthDoNotLeakConnectionSlots(closing mode: String) async throws {
        try await SandboxSubmissionEndpoint.with(sandboxTestMailboxes) { endpoint in
            let result = try await endpoint.python(#"""
                raw = "user=alice@contoso.com\x01auth=Bearer alice-token\x01\x01"
                line = ("AUTH XOAUTH2 " + base64.b64encode(raw.encode()).decode() + "\r\n").encode()
                for _ in range(20):
                    s = secure()
                    s.sock.sendall(line)
                    if args["mode"] == "rst":
                        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, (1).to_bytes(4, sys.byteorder) + (0).to_bytes(4, sys.byteorder))
                        if s.file is not None:
                            s.file.close()
                        s.sock.close()
                    else:
                        s.sock.shutdown(socket.SHUT_RDWR)
                deadline = time.time() + 1.5
                attempts = 0
                while True:
                    attempts += 1
                    s = secure()
                    r = xoauth2(s, "alice@contoso.com", "alice-token")
                    close(s)
                    if r["code"] == 235 or time.time() > deadline:
                        break
                    time.sleep(0.1)
                done({"after": r, "attempts": attempts})
                """#, ["mode": mode], as: Outcome.self)
            #expect(result.after.status == "235 2.7.0", "\(mode): after \(result.attempts) attempts: \(result.after)")
        }
    }

    private struct Folded: Decodable {
        var data: SandboxReply
    }

    /// A Message-ID folded onto its own line (long ids are) is still `<id>` in the reply and the record.

    @Test func foldedMessageIDIsUnfolded() async throws {
        try await SandboxSubmissionEndpoint.with(sandboxTestMailboxes) { endpoint in
            let result = try await endpoint.python(#"""
                s = secure()
                xoauth2(s, "alice@contoso.com", "alice-token")
                s.mail("alice@contoso.com")
                s.rcpt("x@fabrikam.com")
                sent = data(s, b"From: alice@contoso.com\r\nMessage-ID:\r\n <folded-id@client.test>\r\nSubject: folded\r\n\r\nbody\r\n")
                close(s)
                done({"data": sent})
                """#, as: Folded.self)
            let stored = try endpoint.sandbox.mailStore.messages()
            #expect(result.data.text == "2.0.0 OK <folded-id@client.test> [Hostname=\(SandboxSubmissionEndpoint.hostname)]", "\(result.data)")
            #expect(stored.map(\.messageID) == ["<folded-id@client.test>"], "\(stored.map(\.messageID))")
        }
    }
}
