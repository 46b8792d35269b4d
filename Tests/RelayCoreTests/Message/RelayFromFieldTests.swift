import RelayCore
import Testing

/// What Exchange accepts as `From:` (5.7.512), and how a broken one is read.
@Suite("Message repair: From field")
struct RelayFromFieldTests {
    @Test(arguments: [
        ("a@contoso.com", true),
        ("<a@contoso.com>", true),
        ("Scanner <a@contoso.com>", true),
        ("\"Smith, John\" <a@contoso.com>", true),
        ("a@contoso.com (a comment)", true),
        ("a@contoso.com, b@contoso.com", true),
        ("\"quoted local\"@contoso.com", true),
        ("a@[10.0.0.1]", true),
        ("Jörg <a@contoso.com>", true),
        ("Scanner <a@contoso.com>\r\n (folded)", true),
        ("", false),
        ("Scanner", false),
        ("<>", false),
        ("scanner", false),
        ("Scanner <scanner>", false),
        ("Smith, John <a@contoso.com>", false),
        ("Dept. Scan <a@contoso.com>", false),
        ("Scan@2F <a@contoso.com>", false),
        ("Team: a@contoso.com;", false),
        ("a@contoso.com,", true),
        ("a..b@contoso.com", false),
        ("a@contoso..com", false),
        ("a b@contoso.com", false),
        ("<a@contoso.com> trailing", false),
        ("Bell\u{07} <a@contoso.com>", false),
    ])
    func compliance(_ value: String, _ compliant: Bool) {
        #expect(RelayFromField.isCompliant(value) == compliant)
    }

    @Test(arguments: [
        ("Scanner <a@contoso.com>", ["Scanner <a@contoso.com>"], nil as String?),
        ("Smith, John <a@contoso.com>", ["\"Smith, John\" <a@contoso.com>"], nil),
        ("a@contoso.com, B <b@contoso.com>", ["a@contoso.com", "B <b@contoso.com>"], nil),
        ("Scanner", [], "Scanner"),
        ("  Scan   2F ", [], "Scan 2F"),
        ("Scanner <scanner>", [], "Scanner"),
        ("<>", [], nil),
        ("<@relay.example:a@contoso.com>", ["a@contoso.com"], nil),
        ("Team: a@contoso.com, b@contoso.com;", ["a@contoso.com", "b@contoso.com"], nil),
    ])
    func reading(_ value: String, _ mailboxes: [String], _ bareName: String?) {
        let reading = RelayFromField.read([value])
        #expect(reading.mailboxes.map(RelayFromField.render) == mailboxes)
        #expect(reading.bareName == bareName)
    }

    @Test func readingSeveralFieldsDropsDuplicateAuthors() {
        let reading = RelayFromField.read(["A <a@contoso.com>", "a@CONTOSO.com", "b@contoso.com"])
        #expect(reading.mailboxes.map(\.address) == ["a@contoso.com", "b@contoso.com"])
        #expect(reading.displayName == "A")
    }

    @Test(arguments: [
        ("Scanner", "Scanner"),
        ("Scanner 2F", "Scanner 2F"),
        ("Smith, John", "\"Smith, John\""),
        ("Say \"hi\"", "\"Say \\\"hi\\\"\""),
        ("back\\slash", "\"back\\\\slash\""),
        ("two  spaces", "\"two  spaces\""),
        ("=?utf-8?B?SsO2cmc=?=", "=?utf-8?B?SsO2cmc=?="),
        ("Jörg", "Jörg"),
    ])
    func phrase(_ name: String, _ rendered: String) {
        #expect(RelayFromField.phrase(name) == rendered)
    }

    @Test(arguments: [
        (RelayConfiguration.DisplayNameRewrite.keep, false, "Jane <scanner@contoso.com>", nil as String?),
        (.drop, false, "scanner@contoso.com", nil),
        (.replace("Contoso Scanners"), false, "Contoso Scanners <scanner@contoso.com>", nil),
        (.replace(""), false, "scanner@contoso.com", nil),
        (.keep, true, "Jane <scanner@contoso.com>", "Jane <jane@printer.local>"),
        (.drop, true, "scanner@contoso.com", "Jane <jane@printer.local>"),
    ])
    func senderRewrite(_ displayName: RelayConfiguration.DisplayNameRewrite, _ replyTo: Bool, _ from: String, _ expectedReplyTo: String?) {
        let outcome = RelaySenderRewrite.rewrite(
            to: "scanner@contoso.com", displayName: displayName, replyToOriginal: replyTo,
            original: RelayFromField.read(["Jane <jane@printer.local>"]), envelopeSender: "device@printer.local", hasReplyTo: false)
        #expect(RelayFromField.render(outcome.from) == from)
        #expect(outcome.replyTo.map(RelayFromField.render) == expectedReplyTo)
    }
}
