import Foundation
import M365Sandbox
import RelayCore
import RelayTestSupport
import Testing

/// Sender rules and message repair, from a real SMTP client through the relay
/// to the sandbox: what Microsoft 365 receives.
///
/// One relay per test, clients told apart by loopback source address
/// (127.0.0.1, .2, .3), so one relay shows several rules.
@Suite("End to end: sender rules and message repair")
struct SenderRulesEndToEndTests {
    /// A relay with the given client entries (YAML list items), routed to its embedded sandbox.
    /// `max_line_length` is raised so that long lines reach the repair instead of the framer's refusal.
    static func relay(clients: String) async throws -> RelayHarness {
        try await RelayHarness { directory in
            """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:0"
                  tls: none
              limits:
                max_line_length: 8192
            storage:
              url: "sqlite:\(directory.file("relay.sqlite"))"
            clients:
            \(clients)
            routes:
              - name: sandbox
                mode: sandbox
            """
        }
    }

    static func client(_ name: String, _ address: String, _ keys: String = "") -> String {
        var text = "  - name: \(name)\n    networks: [\"\(address)/32\"]\n    auth: none\n    route: sandbox\n"
        for line in keys.split(separator: "\n") { text += "    \(line)\n" }
        return text
    }

    static let complete = "Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n"

    /// The stored message whose Subject is `subject`, once it has arrived.
    static func arrived(_ relay: RelayHarness, subject: String) async throws -> (M365SandboxMessage, String)? {
        let store = relay.sandbox.mailStore
        func find() throws -> (M365SandboxMessage, String)? {
            for message in try store.messages() {
                let text = String(decoding: try store.content(of: message), as: UTF8.self)
                if text.contains("Subject: \(subject)\r\n") { return (message, text) }
            }
            return nil
        }
        _ = try await eventually(timeout: 60) { try find() != nil }
        return try find()
    }

    /// The header section of `text` after the relay's Received field, unfolded field by field.
    static func header(_ text: String) -> RelayHeaderSection {
        RelayHeaderSection.parse(Array(text.utf8))
    }

    @Test func rewrittenSenderArrivesRewrittenInEnvelopeAndHeader() async throws {
        let relay = try await Self.relay(clients:
            // allowed_senders is judged on the rewritten sender: the device's own address passes MAIL.
            Self.client("keep", "127.0.0.1", "rewrite_sender: scanner@contoso.com\nallowed_senders: [\"scanner@contoso.com\"]")
            + Self.client("drop", "127.0.0.2", "rewrite_sender: scanner@contoso.com\nrewrite_display_name: drop")
            + Self.client("replace", "127.0.0.3", "rewrite_sender: scanner@contoso.com\nrewrite_display_name: \"Contoso Scanners\"\nreply_to_original: true"))
        for (source, subject) in [("127.0.0.1", "keep"), ("127.0.0.2", "drop"), ("127.0.0.3", "replace")] {
            let content = Array("From: Jane Doe <jane@printer.local>\r\nSender: device@printer.local\r\nTo: team@contoso.com\r\nSubject: \(subject)\r\nMessage-ID: <\(subject)@device>\r\n\(Self.complete)\r\nscan\r\n".utf8)
            let sent = try await sendWithPython(port: relay.port, from: "device@printer.local", to: ["team@contoso.com"], content: content, source: source)
            #expect(sent["ok"] as? Bool == true, "\(subject): \(sent)")
        }
        let expected = [
            "keep": ("Jane Doe <scanner@contoso.com>", nil as String?),
            "drop": ("scanner@contoso.com", nil),
            "replace": ("Contoso Scanners <scanner@contoso.com>", "Jane Doe <jane@printer.local>"),
        ]
        for (subject, (from, replyTo)) in expected {
            let (stored, text) = try #require(try await Self.arrived(relay, subject: subject), "\(subject) never arrived")
            #expect(stored.sender == "scanner@contoso.com", "\(subject): the envelope sender is rewritten")
            let (_, rest) = splitReceived(Data(text.utf8))
            let headers = Self.header(String(decoding: rest, as: UTF8.self))
            #expect(headers.values("From") == [from], "\(subject)")
            #expect(headers.values("Reply-To") == (replyTo.map { [$0] } ?? []), "\(subject)")
            #expect(headers.values("Sender").isEmpty, "\(subject): the device's Sender is gone")
            #expect(!text.contains("jane@printer.local>\r\nSender") && !text.contains("device@printer.local"), "\(subject): \(text)")
        }
        try await relay.stop()
    }

    @Test func spoofedFromIsRefusedAndNothingIsQueued() async throws {
        let relay = try await Self.relay(clients: Self.client("scanner", "127.0.0.1", "allowed_senders: [\"scanner@contoso.com\"]"))
        let spoof = Array("From: CEO <ceo@contoso.com>\r\nTo: finance@contoso.com\r\nSubject: urgent wire\r\n\(Self.complete)\r\npay now\r\n".utf8)
        let refused = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["finance@contoso.com"], content: spoof)
        #expect(refused["ok"] as? Bool == false)
        #expect((refused["error"] as? String)?.contains("550") == true, "\(refused)")
        #expect((refused["error"] as? String)?.contains("From:") == true, "\(refused)")

        let spoofSender = Array("From: scanner@contoso.com\r\nSender: ceo@contoso.com\r\nSubject: sender spoof\r\n\(Self.complete)\r\nx\r\n".utf8)
        let refusedSender = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["finance@contoso.com"], content: spoofSender)
        #expect((refusedSender["error"] as? String)?.contains("Sender:") == true, "\(refusedSender)")

        // A legitimate message after them: once it is through, nothing else was.
        let honest = Array("From: Scanner <scanner@contoso.com>\r\nSubject: honest scan\r\n\(Self.complete)\r\nscan\r\n".utf8)
        let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["finance@contoso.com"], content: honest)
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        #expect(try await Self.arrived(relay, subject: "honest scan") != nil)
        #expect(try relay.sandbox.mailStore.messages().count == 1)
        #expect(try await relay.application.store.list(state: nil, limit: 10).count == 1, "a refused message left something in the queue")
        try await relay.stop()
    }

    @Test func brokenMessageIsRepaired() async throws {
        let relay = try await Self.relay(clients: Self.client("scanner", "127.0.0.1", "strip_headers: [X-Originating-IP, X-Mailer]"))
        let longSubject = (0..<300).map { "word\($0)" }.joined(separator: " ")
        let longLine = String(repeating: "0123456789", count: 150)
        let lines: [String] = [
            "From: Smith, John <scanner@contoso.com>",
            "To: team@contoso.com",
            "Subject: repaired",
            "X-Long: \(longSubject)",
            "X-Originating-IP: [10.0.0.5]",
            "x-mailer: ScanMaster 2009",
            "Content-Type: text/plain; charset=utf-8",
            "",
            "Grüße",
            longLine,
            "end",
        ]
        let content = Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
        let sent = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["team@contoso.com"], content: content)
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        let (stored, text) = try #require(try await Self.arrived(relay, subject: "repaired"))
        let (_, rest) = splitReceived(Data(text.utf8))
        let headers = Self.header(String(decoding: rest, as: UTF8.self))

        // From made RFC 5322 compliant (5.7.512).
        #expect(headers.values("From") == ["\"Smith, John\" <scanner@contoso.com>"])
        // Message-ID and Date added; the Message-ID is the queue id at the relay.
        let queued = try await relay.application.store.list(state: nil, limit: 10)
        let id = try #require(queued.first?.id.rawValue)
        let messageID = try #require(headers.value("Message-ID"))
        #expect(messageID.hasPrefix("<\(id)@") && messageID.hasSuffix(">"), "\(messageID)")
        #expect(stored.messageID == messageID, "the sandbox saw the same Message-ID")
        #expect(headers.value("Date")?.hasSuffix("+0000") == true)
        // Configured headers stripped, whatever their case.
        #expect(headers.value("X-Originating-IP") == nil)
        #expect(headers.value("X-Mailer") == nil)
        // The long header folded, its value unchanged.
        #expect(headers.value("X-Long") == longSubject)
        // The long body line re-encoded as quoted-printable, decoding to the original.
        #expect(headers.value("Content-Transfer-Encoding") == "quoted-printable")
        #expect(text.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 998 })
        let body = Array(rest[headers.length...])
        #expect(RelayTransferEncoding.decodeQuotedPrintable(body) == Array("Grüße\r\n\(longLine)\r\nend\r\n".utf8))
        try await relay.stop()
    }

    @Test func unrepairableMessagesAreRefusedWithTheReason() async throws {
        let relay = try await Self.relay(clients: Self.client("scanner", "127.0.0.1"))
        let token = String(repeating: "A", count: 1500)
        let unfoldable = Array("From: scanner@contoso.com\r\nSubject: token\r\nX-Token: \(token)\r\n\r\nx\r\n".utf8)
        let first = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["team@contoso.com"], content: unfoldable)
        #expect((first["error"] as? String)?.contains("554") == true, "\(first)")
        #expect((first["error"] as? String)?.contains("no whitespace") == true, "\(first)")

        let multipart = Array(("From: scanner@contoso.com\r\nSubject: multipart\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
            "--b\r\nContent-Type: text/plain\r\n\r\n\(token)\r\n--b--\r\n").utf8)
        let second = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["team@contoso.com"], content: multipart)
        #expect((second["error"] as? String)?.contains("554") == true, "\(second)")
        #expect((second["error"] as? String)?.contains("multipart/mixed") == true, "\(second)")
        #expect(try await relay.application.store.list(state: nil, limit: 10).isEmpty)
        try await relay.stop()
    }
}
