import Foundation
import M365Sandbox
import RelayTestSupport
import Testing

/// Microsoft 365's per-mailbox connection limit and message size limit, as a
/// real client meets them.
@Suite("Sandbox limits, seen by python smtplib")
struct SandboxLimitsTests {
    private struct Concurrency: Decodable {
        var held: [SandboxReply]
        var fourth: SandboxReply
        var fourthOtherCase: SandboxReply
        var otherMailbox: SandboxReply
        var afterQuit: SandboxReply
        var afterQuitAttempts: Int
        var afterReset: SandboxReply
        var afterResetAttempts: Int
    }

    /// Three authenticated sessions per mailbox; the fourth gets `432 4.3.2`; a closed one frees its place.
    @Test func fourthConcurrentConnectionOfAMailboxIsRefused() async throws {
        try await SandboxSubmissionEndpoint.with(sandboxTestMailboxes) { endpoint in
            let result = try await endpoint.python(#"""
                USER, TOKEN = "alice@contoso.com", "alice-token"
                held, replies = [], []
                for _ in range(3):
                    s = secure()
                    replies.append(xoauth2(s, USER, TOKEN))
                    held.append(s)
                extra = secure()
                fourth = xoauth2(extra, USER, TOKEN)
                # The limit is the mailbox's, whatever letter case the client uses.
                fourth_other_case = xoauth2(extra, USER.upper(), TOKEN)
                close(extra)
                other = secure()
                other_mailbox = xoauth2(other, "bob@contoso.com", "bob-token")

                def until_admitted():
                    # The server learns of a close asynchronously: allow it a moment.
                    deadline = time.time() + 5
                    attempts = 0
                    while True:
                        attempts += 1
                        s = secure()
                        r = xoauth2(s, USER, TOKEN)
                        if r["code"] == 235 or time.time() > deadline:
                            return s, r, attempts
                        close(s)
                        time.sleep(0.05)

                close(held.pop())
                s4, after_quit, quit_attempts = until_admitted()
                held.append(s4)
                # A client that vanishes without QUIT (a TCP reset) frees its place too.
                gone = held.pop(0)
                gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, (1).to_bytes(4, sys.byteorder) + (0).to_bytes(4, sys.byteorder))
                if gone.file is not None:
                    gone.file.close()  # it holds a reference: the socket would stay open
                gone.sock.close()
                s5, after_reset, reset_attempts = until_admitted()
                held.append(s5)
                for s in held + [other]:
                    close(s)
                done({"held": replies, "fourth": fourth, "fourthOtherCase": fourth_other_case,
                      "otherMailbox": other_mailbox, "afterQuit": after_quit, "afterQuitAttempts": quit_attempts,
                      "afterReset": after_reset, "afterResetAttempts": reset_attempts})
                """#, as: Concurrency.self)

            #expect(result.held.map(\.status) == ["235 2.7.0", "235 2.7.0", "235 2.7.0"], "\(result.held)")
            #expect(result.fourth.status == "432 4.3.2", "\(result.fourth)")
            #expect(result.fourth.text == "4.3.2 Concurrent connections limit exceeded")
            #expect(result.fourthOtherCase.status == "432 4.3.2", "\(result.fourthOtherCase)")
            #expect(result.otherMailbox.status == "235 2.7.0", "the limit is per mailbox: \(result.otherMailbox)")
            #expect(result.afterQuit.status == "235 2.7.0", "after QUIT (\(result.afterQuitAttempts) attempts): \(result.afterQuit)")
            #expect(result.afterReset.status == "235 2.7.0", "after a reset (\(result.afterResetAttempts) attempts): \(result.afterReset)")
        }
    }

    private struct Size: Decodable {
        var sizeAdvertised: String?
        var mailTooBig: SandboxReply
        var mailAtLimit: SandboxReply
        var rcptAtLimit: SandboxReply
        var dataTooBig: SandboxReply
        var bdatTooBig: SandboxReply
        var dataAtLimit: SandboxReply
    }

    /// A message of `count` octets (CRLF included) ending with CRLF, lines under 1000 octets.
    private static func message(octets count: Int) -> [UInt8] {
        var text = "From: alice@contoso.com\r\nTo: x@fabrikam.com\r\nSubject: size \(count)\r\n\r\n"
        while text.utf8.count + 160 < count {
            text += String(repeating: "s", count: 78) + "\r\n"
        }
        let rest = count - text.utf8.count - 2
        text += String(repeating: "e", count: rest) + "\r\n"
        precondition(text.utf8.count == count)
        return Array(text.utf8)
    }

    /// `SIZE=` over the limit: `552 5.3.4` at MAIL; content over it without SIZE: `552 5.3.4` at the end.
    @Test func messageSizeLimitIsEnforced() async throws {
        let limit = 10_000
        try await SandboxSubmissionEndpoint.with({
            sandboxTestMailboxes(&$0)
            $0.maxMessageSize = limit
        }) { endpoint in
            let over = endpoint.directory.file("over.eml"), exact = endpoint.directory.file("exact.eml")
            try Data(Self.message(octets: limit + 1)).write(to: URL(fileURLWithPath: over))
            try Data(Self.message(octets: limit)).write(to: URL(fileURLWithPath: exact))

            let result = try await endpoint.python(#"""
                s = secure()
                advertised = s.esmtp_features.get("size")
                xoauth2(s, "alice@contoso.com", "alice-token")
                too_big = reply(s.mail("alice@contoso.com", ["SIZE=%d" % (2 * args["limit"])]))
                s.rset()
                at_limit = reply(s.mail("alice@contoso.com", ["SIZE=%d" % args["limit"]]))
                rcpt_at_limit = reply(s.rcpt("x@fabrikam.com"))
                s.rset()

                # No SIZE parameter: the server finds out while reading the content.
                with open(args["over"], "rb") as f:
                    over = f.read()
                s.mail("alice@contoso.com")
                s.rcpt("x@fabrikam.com")
                data_too_big = data(s, over)

                # BDAT announces its size: refused after its octets have been read.
                s.mail("alice@contoso.com")
                s.rcpt("x@fabrikam.com")
                payload = b"x" * (2 * args["limit"])
                s.putcmd("BDAT", "%d LAST" % len(payload))
                s.send(payload)
                bdat_too_big = reply(s.getreply())

                # The connection is still good, and a message of exactly the limit goes through.
                with open(args["exact"], "rb") as f:
                    exact = f.read()
                s.mail("alice@contoso.com")
                s.rcpt("x@fabrikam.com")
                data_at_limit = data(s, exact)
                close(s)
                done({"sizeAdvertised": advertised, "mailTooBig": too_big, "mailAtLimit": at_limit,
                      "rcptAtLimit": rcpt_at_limit, "dataTooBig": data_too_big, "bdatTooBig": bdat_too_big,
                      "dataAtLimit": data_at_limit})
                """#, ["limit": limit, "over": over, "exact": exact], as: Size.self)

            #expect(result.sizeAdvertised == String(limit))
            #expect(result.mailTooBig.status == "552 5.3.4", "\(result.mailTooBig)")
            #expect(result.mailAtLimit.status == "250 2.1.0", "\(result.mailAtLimit)")
            #expect(result.rcptAtLimit.status == "250 2.1.5", "\(result.rcptAtLimit)")
            #expect(result.dataTooBig.status == "552 5.3.4", "\(result.dataTooBig)")
            #expect(result.bdatTooBig.status == "552 5.3.4", "\(result.bdatTooBig)")
            #expect(result.dataAtLimit.status == "250 2.0.0", "\(result.dataAtLimit)")

            let stored = try endpoint.sandbox.mailStore.messages()
            #expect(stored.map(\.size) == [limit], "only the message at the limit is stored: \(stored)")
            let files = try endpoint.storedFiles()
            #expect(!files.contains { $0.hasSuffix(".tmp") }, "a refused message left its temporary file: \(files)")
        }
    }
}
