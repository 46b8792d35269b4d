import Foundation
import M365Sandbox
import RelayTestSupport
import Testing

@Suite("End to end: a real SMTP client through the relay to the sandbox")
struct RelayEndToEndTests {
    /// Content that exercises the framing: dot lines, 8-bit text, a long line, empty lines.
    static let message: [UInt8] = Array((
        "From: Scanner <scanner@contoso.com>\r\n" +
        "To: someone@contoso.com\r\n" +
        "Subject: Scan from the second floor\r\n" +
        "Message-ID: <scan-0001@scanner.contoso.local>\r\n" +
        // With a Date too, the relay has nothing to repair: it must change no octet.
        "Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Transfer-Encoding: 8bit\r\n" +
        "\r\n" +
        ".a line that begins with a dot\r\n" +
        "..two dots\r\n" +
        ".\r\n" +
        "Grüße aus dem Büro\r\n" +
        "\r\n" +
        String(repeating: "x", count: 990) + "\r\n" +
        "QUIT\r\n" +
        "last line\r\n").utf8)

    @Test func messageArrivesByteForByteApartFromTheReceivedHeader() async throws {
        let relay = try await RelayHarness { RelayHarness.sandboxYAML($0) }
        let result = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["someone@contoso.com", "other@contoso.com"], content: Self.message)
        #expect(result["ok"] as? Bool == true, "\(result)")

        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 1 }, "the sandbox never got the message")
        let stored = try #require(try store.messages().first)
        #expect(stored.sender == "scanner@contoso.com")
        #expect(Set(stored.recipients) == ["someone@contoso.com", "other@contoso.com"])
        #expect(stored.tlsVersion?.hasPrefix("TLSv1.") == true, "the relay must use TLS to the sandbox")
        let (received, rest) = splitReceived(try store.content(of: stored))
        #expect(rest == Self.message, "the content changed on the way")
        #expect(received.hasPrefix("Received: from client.test ([127.0.0.1])\r\n\tby relay.test (m365-relay) with ESMTP\r\n\tid "))
        try await relay.stop()
    }

    @Test func swaksThroughTheRelay() async throws {
        let relay = try await RelayHarness { RelayHarness.sandboxYAML($0) }
        let swaks = try await ExternalProcess.run("/usr/bin/env", [
            // swaks waits 30 s for a reply by default; a loaded CI machine once needed longer for the end-of-data reply.
            "swaks", "--timeout", "120", "--server", "127.0.0.1:\(relay.port)", "--from", "scanner@contoso.com", "--to", "someone@contoso.com",
            "--header", "From: scanner@contoso.com", "--header", "Subject: sent by swaks", "--body", "hello from swaks",
        ])
        #expect(swaks.status == 0, "\(swaks.stdout)\(swaks.stderr)")
        #expect(swaks.stdout.contains("<-  250 2.0.0 Ok: queued as "), "\(swaks.stdout)")
        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 1 })
        let content = String(decoding: try store.content(of: try #require(try store.messages().first)), as: UTF8.self)
        #expect(content.contains("Subject: sent by swaks\r\n"))
        #expect(content.contains("hello from swaks"))
        try await relay.stop()
    }

    @Test func startTLSWithATestCertificate() async throws {
        let (relay, caFile) = try await RelayHarness.withTestCertificate(listener: "tls: starttls\n      require_tls: true")

        // Without STARTTLS the listener refuses MAIL.
        let plain = try await sendWithPython(port: relay.port, from: "a@contoso.com", to: ["b@contoso.com"], content: Array("Subject: x\r\n\r\nx\r\n".utf8))
        #expect(plain["ok"] as? Bool == false)
        #expect((plain["error"] as? String)?.contains("5.7.0") == true, "\(plain)")

        let result = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["b@contoso.com"], content: Self.message, startTLS: caFile)
        #expect(result["ok"] as? Bool == true, "\(result)")
        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 1 })
        let (received, rest) = splitReceived(try store.content(of: try #require(try store.messages().first)))
        #expect(rest == Self.message)
        #expect(received.contains("with ESMTPS (TLSv1.3)"), "\(received)")
        try await relay.stop()
    }

    @Test func plaintextAndImplicitTLSListenersFromOneConfiguration() async throws {
        let (relay, caFile) = try await RelayHarness.withTestCertificate(listener: "tls: none\n    - address: \"127.0.0.1:0\"\n      tls: implicit")
        #expect(relay.ports.count == 2)
        let plain = try await sendWithPython(port: relay.ports[0], from: "scanner@contoso.com", to: ["a@contoso.com"], content: Self.message)
        let implicit = try await sendWithPython(port: relay.ports[1], from: "scanner@contoso.com", to: ["b@contoso.com"], content: Self.message, implicitTLS: caFile)
        #expect(plain["ok"] as? Bool == true, "\(plain)")
        #expect(implicit["ok"] as? Bool == true, "\(implicit)")
        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 2 })
        let received = try store.messages().map { splitReceived(try store.content(of: $0)).received }
        #expect(received.contains { $0.contains("with ESMTPS (TLSv1.3)") && $0.contains("for <b@contoso.com>") }, "\(received)")
        #expect(received.contains { $0.contains("with ESMTP\r\n") && $0.contains("for <a@contoso.com>") }, "\(received)")
        try await relay.stop()
    }

    /// CVE-2011-0411 family: a command pipelined behind STARTTLS in plaintext is never run after the handshake.
    @Test func plaintextInjectedBehindStartTLSIsDiscarded() async throws {
        let (relay, caFile) = try await RelayHarness.withTestCertificate(listener: "tls: starttls")
        let script = """
        import socket, ssl, sys, json
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
        f = s.makefile("rb")
        def reply(f):
            lines = []
            while True:
                line = f.readline().decode().rstrip("\\r\\n")
                lines.append(line)
                if len(line) < 4 or line[3] == " ":
                    return lines
        reply(f)
        s.sendall(b"EHLO attacker.test\\r\\n"); reply(f)
        s.sendall(b"STARTTLS\\r\\nNOOP injected\\r\\n")
        ready = reply(f)
        context = ssl.create_default_context(cafile=sys.argv[2])
        t = context.wrap_socket(s, server_hostname="localhost")
        g = t.makefile("rb")
        t.sendall(b"MAIL FROM:<a@contoso.com>\\r\\n")
        first = reply(g)
        print(json.dumps({"ready": ready, "first": first, "tls": t.version()}))
        """
        let result = try await ExternalProcess.python(script, [String(relay.port), caFile])
        let output = try #require(result.stdout.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }, "\(result.stderr)")
        #expect((output["ready"] as? [String])?.first?.hasPrefix("220 2.0.0") == true, "\(output)")
        // Had the injected NOOP run, its 250 would be the first reply over TLS.
        #expect((output["first"] as? [String]) == ["503 5.5.1 Send HELO or EHLO first"], "\(output)")
        #expect((output["tls"] as? String)?.hasPrefix("TLSv1.") == true)
        try await relay.stop()
    }

    @Test func aClientOutsideTheAllowlistRelaysNothing() async throws {
        let relay = try await RelayHarness { RelayHarness.sandboxYAML($0, networks: "[\"127.0.0.1/32\", \"127.0.0.2/32\"]") }
        let refused = try await sendWithPython(port: relay.port, from: "a@contoso.com", to: ["b@contoso.com"], content: Self.message, source: "127.0.0.3")
        #expect(refused["ok"] as? Bool == false)
        #expect((refused["error"] as? String)?.contains("5.7.1") == true, "\(refused)")
        let allowed = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["b@contoso.com"], content: Self.message, source: "127.0.0.2")
        #expect(allowed["ok"] as? Bool == true, "\(allowed)")
        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 1 })
        #expect(try store.messages().allSatisfy { $0.sender == "scanner@contoso.com" })
        try await relay.stop()
    }

    @Test func allowedSendersAndRecipientsAreEnforced() async throws {
        let relay = try await RelayHarness {
            RelayHarness.sandboxYAML($0, senders: "[\"*@contoso.com\"]", recipients: "[\"*@contoso.com\", \"partner@fabrikam.com\"]")
        }
        let spoofed = try await sendWithPython(port: relay.port, from: "ceo@fabrikam.com", to: ["a@contoso.com"], content: Array("From: ceo@fabrikam.com\r\n\r\nx\r\n".utf8))
        #expect((spoofed["error"] as? String)?.contains("5.7.1") == true, "\(spoofed)")
        let outside = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["someone@elsewhere.test"], content: Self.message)
        #expect((outside["error"] as? String)?.contains("5.7.1") == true, "\(outside)")
        let mixed = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["partner@fabrikam.com", "other@fabrikam.com"], content: Self.message)
        #expect(mixed["ok"] as? Bool == true, "\(mixed)")
        #expect((mixed["refused"] as? [String: Any])?.keys.sorted() == ["other@fabrikam.com"], "\(mixed)")
        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 1 })
        #expect(try store.messages().map(\.recipients) == [["partner@fabrikam.com"]])
        try await relay.stop()
    }

    @Test func shutdownAnswersAnIdleSession421() async throws {
        let relay = try await RelayHarness { RelayHarness.sandboxYAML($0) }
        let script = """
        import socket, sys
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
        f = s.makefile("rb")
        print(f.readline().decode().strip(), flush=True)
        s.sendall(b"EHLO idle.test\\r\\n")
        while True:
            line = f.readline().decode()
            if line[3:4] == " ": break
        open(sys.argv[2], "w").write("ready")
        print(f.readline().decode().strip(), flush=True)
        """
        let marker = relay.directory.file("ready")
        let port = relay.port
        let client = Task { try await ExternalProcess.python(script, [String(port), marker], timeout: 120) }
        #expect(await eventually { FileManager.default.fileExists(atPath: marker) })
        try await relay.stop()
        let output = try await client.value.stdout.split(separator: "\n").map(String.init)
        #expect(output.last?.hasPrefix("421 4.3.2") == true, "\(output)")
    }
}
