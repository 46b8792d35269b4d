import Foundation
import RelayCore
import Testing

/// The header decisions, one fixture per rule: what a device sends, what is queued.
@Suite("Message repair: header section")
struct RelayMessageRepairTests {
    static let date = Date(timeIntervalSince1970: 0)
    static let dateField = "Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"
    static let idField = "Message-ID: <Q1@relay.test>\r\n"
    /// The two fields a complete message already has, so that fixtures show only what they test.
    static let complete = "Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <m1@device>\r\n"

    struct Fixture: CustomTestStringConvertible, Sendable {
        var name: String
        var header: String
        var rules = RelaySenderRules()
        var sender = "scanner@contoso.com"
        /// The header section queued, its empty line included; nil when refused.
        var expected: String?
        var repairs: [RelayRepair] = []
        var refusal: String?
        var envelopeSender: String?
        var testDescription: String { name }
    }

    static func run(_ fixture: Fixture) -> Result<RelayRepairedHeader, RelayRepairRefusal> {
        let context = RelayMessageRepair.Context(
            rules: fixture.rules, envelopeSender: fixture.sender, queueID: "Q1", hostname: "relay.test", date: date)
        return RelayMessageRepair.repairHeader(Array(fixture.header.utf8), context: context)
    }

    static let fixtures: [Fixture] = [
        // Nothing to do.
        Fixture(name: "compliant message unchanged",
                header: "From: Scanner <scanner@contoso.com>\r\nTo: a@contoso.com\r\n" + complete,
                expected: "From: Scanner <scanner@contoso.com>\r\nTo: a@contoso.com\r\n" + complete + "\r\n"),
        Fixture(name: "folded and commented fields keep their bytes",
                header: "From: scanner@contoso.com (Scanner)\r\nSubject: a\r\n  folded subject\r\n" + complete,
                expected: "From: scanner@contoso.com (Scanner)\r\nSubject: a\r\n  folded subject\r\n" + complete + "\r\n"),
        Fixture(name: "quoted display name with specials is compliant",
                header: "From: \"Smith, John\" <scanner@contoso.com>\r\n" + complete,
                expected: "From: \"Smith, John\" <scanner@contoso.com>\r\n" + complete + "\r\n"),
        Fixture(name: "encoded-word display name is compliant",
                header: "From: =?utf-8?Q?J=C3=B6rg?= <scanner@contoso.com>\r\n" + complete,
                expected: "From: =?utf-8?Q?J=C3=B6rg?= <scanner@contoso.com>\r\n" + complete + "\r\n"),

        // Message-ID and Date.
        Fixture(name: "missing Message-ID and Date are added",
                header: "From: scanner@contoso.com\r\nSubject: scan\r\n",
                expected: "From: scanner@contoso.com\r\nSubject: scan\r\n" + idField + dateField + "\r\n",
                repairs: [.messageIDAdded, .dateAdded]),
        Fixture(name: "empty Message-ID and Date are replaced",
                header: "From: scanner@contoso.com\r\nMessage-ID:\r\nDate: \r\n",
                expected: "From: scanner@contoso.com\r\n" + idField + dateField + "\r\n",
                repairs: [.messageIDAdded, .dateAdded]),
        Fixture(name: "header field names compare without case",
                header: "from: scanner@contoso.com\r\nmessage-id: <x@y>\r\nDATE: Mon, 2 Mar 2026 10:00:00 +0100\r\n",
                expected: "from: scanner@contoso.com\r\nmessage-id: <x@y>\r\nDATE: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\n"),

        // From (5.7.512).
        Fixture(name: "missing From takes the envelope sender",
                header: "Subject: scan\r\n" + complete,
                expected: "Subject: scan\r\n" + complete + "From: scanner@contoso.com\r\n\r\n",
                repairs: [.fromAdded]),
        Fixture(name: "missing From with a null envelope sender is refused",
                header: "Subject: scan\r\n" + complete, sender: "",
                refusal: "no-from-and-null-sender"),
        Fixture(name: "bare display name gets the envelope address",
                header: "From: Scanner 2nd floor\r\n" + complete,
                expected: "From: Scanner 2nd floor <scanner@contoso.com>\r\n" + complete + "\r\n",
                repairs: [.fromRepaired]),
        Fixture(name: "From without a domain gets the envelope address",
                header: "From: Scanner <scanner>\r\n" + complete,
                expected: "From: Scanner <scanner@contoso.com>\r\n" + complete + "\r\n",
                repairs: [.fromRepaired]),
        Fixture(name: "empty angle address gets the envelope address",
                header: "From: <>\r\n" + complete,
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.fromRepaired]),
        Fixture(name: "empty From gets the envelope address",
                header: "From:\r\n" + complete,
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.fromRepaired]),
        Fixture(name: "unquoted comma in the display name is quoted",
                header: "From: Smith, John <scanner@contoso.com>\r\n" + complete,
                expected: "From: \"Smith, John\" <scanner@contoso.com>\r\n" + complete + "\r\n",
                repairs: [.fromRepaired]),
        Fixture(name: "unquoted dot and parenthesis-free specials are quoted",
                header: "From: Dept. Scan @ 2F <scanner@contoso.com>\r\n" + complete,
                expected: "From: \"Dept. Scan @ 2F\" <scanner@contoso.com>\r\n" + complete + "\r\n",
                repairs: [.fromRepaired]),
        Fixture(name: "a quoted word inside an unquoted name becomes one quoted name",
                header: "From: The \"big\" scanner, 2F <scanner@contoso.com>\r\n" + complete,
                expected: "From: \"The big scanner, 2F\" <scanner@contoso.com>\r\n" + complete + "\r\n",
                repairs: [.fromRepaired]),
        Fixture(name: "two From fields become one with a Sender",
                header: "From: scanner@contoso.com\r\nTo: a@contoso.com\r\nFrom: Ops <ops@contoso.com>\r\n" + complete,
                expected: "From: scanner@contoso.com, Ops <ops@contoso.com>\r\nTo: a@contoso.com\r\n" + complete
                    + "Sender: scanner@contoso.com\r\n\r\n",
                repairs: [.fromRepaired, .senderFieldAdded]),
        Fixture(name: "two identical From fields become one",
                header: "From: scanner@contoso.com\r\nFrom: scanner@contoso.com\r\n" + complete,
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.fromRepaired]),
        Fixture(name: "a group in From is flattened",
                header: "From: Devices: scanner@contoso.com;\r\n" + complete,
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.fromRepaired]),
        Fixture(name: "two authors in one compliant From get a Sender",
                header: "From: a@contoso.com, b@contoso.com\r\n" + complete,
                expected: "From: a@contoso.com, b@contoso.com\r\n" + complete + "Sender: scanner@contoso.com\r\n\r\n",
                repairs: [.senderFieldAdded]),
        Fixture(name: "an empty Sender is removed",
                header: "From: scanner@contoso.com\r\nSender:\r\n" + complete,
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.senderFieldRemoved]),

        // allowed_senders on the header.
        Fixture(name: "spoofed From is refused",
                header: "From: CEO <ceo@contoso.com>\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["scanner@contoso.com"]),
                refusal: "header-from-not-allowed"),
        Fixture(name: "any spoofed author among several is refused",
                header: "From: scanner@contoso.com, ceo@contoso.com\r\nSender: scanner@contoso.com\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["scanner@contoso.com"]),
                refusal: "header-from-not-allowed"),
        Fixture(name: "spoofed From hidden in a second From field is refused",
                header: "From: scanner@contoso.com\r\nFrom: ceo@contoso.com\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["scanner@contoso.com"]),
                refusal: "header-from-not-allowed"),
        Fixture(name: "spoofed Sender is refused",
                header: "From: scanner@contoso.com\r\nSender: ceo@contoso.com\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["scanner@contoso.com"]),
                refusal: "header-sender-not-allowed"),
        Fixture(name: "domain pattern allows any author of the domain, without case",
                header: "From: Ops <OPS@Contoso.com>\r\nSender: scanner@contoso.com\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["*@contoso.com"]),
                expected: "From: Ops <OPS@Contoso.com>\r\nSender: scanner@contoso.com\r\n" + complete + "\r\n"),
        Fixture(name: "domain pattern refuses another domain",
                header: "From: x@fabrikam.com\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["*@contoso.com"]),
                refusal: "header-from-not-allowed"),
        Fixture(name: "a repaired From is checked too",
                header: "From: CEO, Contoso <ceo@contoso.com>\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["scanner@contoso.com"]),
                refusal: "header-from-not-allowed"),

        // rewrite_sender.
        Fixture(name: "rewrite keeps the display name",
                header: "From: Scanner 2F <device@printer.local>\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["scanner@contoso.com"], rewriteSender: "scanner@contoso.com"),
                sender: "device@printer.local",
                expected: "From: Scanner 2F <scanner@contoso.com>\r\n" + complete + "\r\n",
                repairs: [.envelopeSenderRewritten, .fromRewritten], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite drops the display name",
                header: "From: Scanner 2F <device@printer.local>\r\n" + complete,
                rules: RelaySenderRules(rewriteSender: "scanner@contoso.com", rewriteDisplayName: .drop),
                sender: "device@printer.local",
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.envelopeSenderRewritten, .fromRewritten], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite replaces the display name, quoting it when needed",
                header: "From: Scanner 2F <device@printer.local>\r\n" + complete,
                rules: RelaySenderRules(rewriteSender: "scanner@contoso.com", rewriteDisplayName: .replace("Contoso Scanners, 2F")),
                sender: "device@printer.local",
                expected: "From: \"Contoso Scanners, 2F\" <scanner@contoso.com>\r\n" + complete + "\r\n",
                repairs: [.envelopeSenderRewritten, .fromRewritten], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite adds Reply-To with the original author",
                header: "From: Jane <jane@printer.local>\r\nTo: a@contoso.com\r\n" + complete,
                rules: RelaySenderRules(rewriteSender: "scanner@contoso.com", replyToOriginal: true),
                sender: "device@printer.local",
                expected: "From: Jane <scanner@contoso.com>\r\nReply-To: Jane <jane@printer.local>\r\nTo: a@contoso.com\r\n" + complete + "\r\n",
                repairs: [.envelopeSenderRewritten, .fromRewritten, .replyToAdded], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite keeps an existing Reply-To",
                header: "From: Jane <jane@printer.local>\r\nReply-To: helpdesk@contoso.com\r\n" + complete,
                rules: RelaySenderRules(rewriteSender: "scanner@contoso.com", replyToOriginal: true),
                sender: "device@printer.local",
                expected: "From: Jane <scanner@contoso.com>\r\nReply-To: helpdesk@contoso.com\r\n" + complete + "\r\n",
                repairs: [.envelopeSenderRewritten, .fromRewritten], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite without From: Reply-To names the envelope sender",
                header: complete,
                rules: RelaySenderRules(rewriteSender: "scanner@contoso.com", replyToOriginal: true),
                sender: "device@printer.local",
                expected: complete + "From: scanner@contoso.com\r\nReply-To: device@printer.local\r\n\r\n",
                repairs: [.envelopeSenderRewritten, .fromRewritten, .replyToAdded], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite of a bare-name From keeps the name",
                header: "From: Scanner\r\n" + complete,
                rules: RelaySenderRules(rewriteSender: "scanner@contoso.com"),
                sender: "device@printer.local",
                expected: "From: Scanner <scanner@contoso.com>\r\n" + complete + "\r\n",
                repairs: [.envelopeSenderRewritten, .fromRewritten], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite when the original is the rewrite address adds no Reply-To",
                header: "From: scanner@contoso.com\r\n" + complete,
                rules: RelaySenderRules(rewriteSender: "scanner@contoso.com", replyToOriginal: true),
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.fromRewritten], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite merges several From fields into one and removes Sender",
                header: "From: ceo@contoso.com\r\nSender: device@printer.local\r\nFrom: x@y.z\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["scanner@contoso.com"], rewriteSender: "scanner@contoso.com"),
                sender: "device@printer.local",
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.envelopeSenderRewritten, .fromRewritten, .senderFieldRemoved], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite of the null sender",
                header: "From: device@printer.local\r\n" + complete,
                rules: RelaySenderRules(rewriteSender: "scanner@contoso.com"), sender: "",
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.envelopeSenderRewritten, .fromRewritten], envelopeSender: "scanner@contoso.com"),
        Fixture(name: "rewrite result outside allowed_senders is refused (a configuration mistake)",
                header: "From: device@printer.local\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["*@fabrikam.com"], rewriteSender: "scanner@contoso.com"),
                refusal: "header-from-not-allowed"),

        // strip_headers.
        Fixture(name: "configured headers are stripped, every occurrence, without case",
                header: "From: scanner@contoso.com\r\nx-originating-ip: [10.0.0.5]\r\nX-Mailer: Scan2Mail\r\n  1.0\r\nX-Originating-IP: [10.0.0.6]\r\n" + complete,
                rules: RelaySenderRules(stripHeaders: ["X-Originating-IP", "X-Mailer", "X-Absent"]),
                expected: "From: scanner@contoso.com\r\n" + complete + "\r\n",
                repairs: [.headerStripped("X-Originating-IP"), .headerStripped("X-Mailer")]),
        Fixture(name: "a stripped From is made again from the envelope",
                header: "From: ceo@contoso.com\r\n" + complete,
                rules: RelaySenderRules(allowedSenders: ["scanner@contoso.com"], stripHeaders: ["From"]),
                expected: complete + "From: scanner@contoso.com\r\n\r\n",
                repairs: [.headerStripped("From"), .fromAdded]),

        // Line length.
        Fixture(name: "a long Subject is folded at whitespace",
                header: "From: scanner@contoso.com\r\nSubject: " + String(repeating: "word ", count: 300) + "end\r\n" + complete,
                expected: "From: scanner@contoso.com\r\nSubject: " + folded(String(repeating: "word ", count: 300) + "end", firstLineRoom: 998 - 9)
                    + complete + "\r\n",
                repairs: [.headerFolded]),
        Fixture(name: "a long line without whitespace is refused",
                header: "From: scanner@contoso.com\r\nX-Token: " + String(repeating: "a", count: 1200) + "\r\n" + complete,
                refusal: "header-line-unfoldable"),
        Fixture(name: "a 998-octet line is left alone",
                header: "From: scanner@contoso.com\r\nX-Pad: " + String(repeating: "a", count: 998 - 7) + "\r\n" + complete,
                expected: "From: scanner@contoso.com\r\nX-Pad: " + String(repeating: "a", count: 998 - 7) + "\r\n" + complete + "\r\n"),
        Fixture(name: "a 999-octet line with only the space after the colon is refused",
                header: "From: scanner@contoso.com\r\nX-Pad: " + String(repeating: "a", count: 999 - 7) + "\r\n" + complete,
                refusal: "header-line-unfoldable"),
    ]

    /// What the folder should make of `value` after `Subject: `: cut at the last space that keeps each line within 998.
    static func folded(_ value: String, firstLineRoom: Int) -> String {
        var lines: [String] = []
        var rest = Substring(value)
        var room = firstLineRoom
        while rest.utf8.count > room {
            let window = rest.prefix(room + 1)
            let cut = window.lastIndex(of: " ")!
            lines.append(String(rest[..<cut]))
            rest = rest[cut...]
            room = 998
        }
        lines.append(String(rest))
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    @Test(arguments: fixtures)
    func repairs(_ fixture: Fixture) throws {
        switch Self.run(fixture) {
        case .success(let repaired):
            let rendered = String(decoding: repaired.rendered(), as: UTF8.self)
            #expect(fixture.refusal == nil, "expected a refusal (\(fixture.refusal ?? "")), got \(rendered)")
            if let expected = fixture.expected { #expect(rendered == expected) }
            #expect(repaired.applied == fixture.repairs)
            #expect(repaired.envelopeSender == (fixture.envelopeSender ?? fixture.sender))
            for line in rendered.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 998) }
        case .failure(let refusal):
            #expect(refusal.reason == fixture.refusal, "refused unexpectedly: \(refusal.reply)")
            #expect(refusal.reply.code / 100 == 5)
        }
    }

    @Test func refusalsNameTheProblemAndNotTheAddress() throws {
        let spoof = Fixture(name: "", header: "From: ceo@contoso.com\r\n", rules: RelaySenderRules(allowedSenders: ["scanner@contoso.com"]))
        guard case .failure(let refusal) = Self.run(spoof) else { Issue.record("not refused"); return }
        #expect(refusal.reply.code == 550)
        #expect(refusal.reply.enhanced?.description == "5.7.1")
        #expect(refusal.reply.text.contains("From:"))
        #expect(!refusal.reply.text.contains("ceo@"))

        let sender = Fixture(name: "", header: "From: scanner@contoso.com\r\nSender: ceo@contoso.com\r\n", rules: spoof.rules)
        guard case .failure(let refusal) = Self.run(sender) else { Issue.record("not refused"); return }
        #expect(refusal.reply.text.contains("Sender:"))

        let long = Fixture(name: "", header: "X-Token: " + String(repeating: "a", count: 1200) + "\r\n")
        guard case .failure(let refusal) = Self.run(long) else { Issue.record("not refused"); return }
        #expect(refusal.reply.code == 554)
        #expect(refusal.reply.enhanced?.description == "5.6.0")
        #expect(refusal.reply.text.contains("X-Token"))
        #expect(refusal.reply.text.contains("998"))
    }

    @Test func missingEmptyLineIsNamedAsARepair() throws {
        let context = RelayMessageRepair.Context(rules: .init(), envelopeSender: "a@b.c", queueID: "Q1", hostname: "relay.test", date: Self.date)
        let repaired = try RelayMessageRepair.repairHeader(Array(("From: a@b.c\r\n" + Self.complete).utf8), endsWithEmptyLine: false, context: context).get()
        #expect(repaired.applied == [.headerEndAdded])
        #expect(String(decoding: repaired.rendered(), as: UTF8.self).hasSuffix("\r\n\r\n"))
    }

    @Test(arguments: [
        ("Content-Type: text/plain; charset=iso-8859-1\r\n", true),
        ("Content-Type: text/html\r\nContent-Transfer-Encoding: 8bit\r\n", true),
        ("Content-Transfer-Encoding: 7BIT\r\n", true),
        ("", true),
        ("Content-Type: multipart/mixed; boundary=x\r\n", false),
        ("Content-Type: application/pdf\r\n", false),
        ("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n", false),
        ("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n", false),
        ("Content-Type: message/rfc822\r\n", false),
    ])
    func bodyCanBeReencodedOnlyWhenSingleTextPart(_ mime: String, _ expected: Bool) throws {
        let context = RelayMessageRepair.Context(rules: .init(), envelopeSender: "a@b.c", queueID: "Q1", hostname: "relay.test", date: Self.date)
        let repaired = try RelayMessageRepair.repairHeader(Array(("From: a@b.c\r\n" + Self.complete + mime).utf8), context: context).get()
        #expect(repaired.canReencodeBody == expected)
        #expect((repaired.whyBodyCannotBeReencoded == nil) == expected)
    }

    @Test func reencodingRewritesTheTransferEncodingAndMakesTheMessageMIME() throws {
        let context = RelayMessageRepair.Context(rules: .init(), envelopeSender: "a@b.c", queueID: "Q1", hostname: "relay.test", date: Self.date)
        let plain = try RelayMessageRepair.repairHeader(Array(("From: a@b.c\r\n" + Self.complete).utf8), context: context).get()
        #expect(String(decoding: plain.rendered(quotedPrintableBody: true), as: UTF8.self) == "From: a@b.c\r\n" + Self.complete
            + "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")

        let mime = "MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\nContent-Type: text/plain; charset=iso-8859-1\r\ncontent-transfer-encoding: 7bit\r\n"
        let declared = try RelayMessageRepair.repairHeader(Array(("From: a@b.c\r\n" + mime).utf8), context: context).get()
        #expect(String(decoding: declared.rendered(quotedPrintableBody: true), as: UTF8.self) == "From: a@b.c\r\n"
            + "MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
            + Self.idField + Self.dateField + "\r\n")
    }
}
