import Testing
import RelayCore

/// RFC 5322 §3.4 address lists as they appear in real header fields.
struct RelayAddressListTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var value: String
        var addresses: [String]
        var names: [String?]? = nil
        var testDescription: String { value.debugDescription }
    }

    static let cases: [Case] = [
        Case(value: "a@example.com", addresses: ["a@example.com"], names: [nil]),
        Case(value: "a@example.com, b@example.org", addresses: ["a@example.com", "b@example.org"]),
        Case(value: "Alice <alice@example.com>", addresses: ["alice@example.com"], names: ["Alice"]),
        Case(value: "\"Doe, John\" <john@example.com>, jane@example.com", addresses: ["john@example.com", "jane@example.com"], names: ["Doe, John", nil]),
        // Folded across lines (RFC 5322 §2.2.3).
        Case(value: "Alice\r\n <alice@example.com>,\r\n\tBob <bob@example.com>", addresses: ["alice@example.com", "bob@example.com"], names: ["Alice", "Bob"]),
        // Comments, nested, with a comma and an @ inside.
        Case(value: "alice@example.com (Alice, (the @ boss)), bob@example.com", addresses: ["alice@example.com", "bob@example.com"]),
        Case(value: "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", addresses: ["pete@silly.test"]),
        // Groups (RFC 5322 §3.4 and A.1.3).
        Case(value: "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;", addresses: ["c@a.test", "joe@where.test", "jdoe@one.test"]),
        Case(value: "Undisclosed recipients:;", addresses: []),
        Case(value: "team: a@x.test, b@x.test; c@y.test", addresses: ["a@x.test", "b@x.test", "c@y.test"]),
        // Quoted display name with angle brackets and quoted pairs inside.
        Case(value: "\"Mr <Quote> \\\"Q\\\"\" <q@example.com>", addresses: ["q@example.com"], names: ["Mr <Quote> \"Q\""]),
        // Encoded words are left alone.
        Case(value: "=?utf-8?Q?J=C3=B6rg?= <joerg@example.de>", addresses: ["joerg@example.de"], names: ["=?utf-8?Q?J=C3=B6rg?="]),
        // Quoted local part that needs its quotes, and one that does not.
        Case(value: "\"john doe\"@example.com, \"jane\"@example.com", addresses: ["\"john doe\"@example.com", "jane@example.com"]),
        // Obsolete route and domain literal.
        Case(value: "<@relay.test,@other.test:user@host.test>, x@[192.0.2.1]", addresses: ["user@host.test", "x@[192.0.2.1]"]),
        // Empty entries and junk without @ are skipped.
        Case(value: ", ,a@b.test,,undisclosed", addresses: ["a@b.test"]),
        Case(value: "", addresses: []),
        // Obsolete phrase with a dot.
        Case(value: "John Q. Public <jqp@example.com>", addresses: ["jqp@example.com"], names: ["John Q. Public"]),
    ]

    @Test(arguments: cases)
    func parses(_ test: Case) {
        let parsed = RelayAddressList.parse(test.value)
        #expect(parsed.map(\.address) == test.addresses)
        if let names = test.names {
            #expect(parsed.map(\.displayName) == names)
        }
    }

    @Test func groupNameIsKept() {
        let parsed = RelayAddressList.parse("Team: a@x.test; b@y.test")
        #expect(parsed.map(\.group) == ["Team", nil])
    }
}

/// Which envelope recipients Graph would drop, and the `Bcc:` that keeps them.
struct RelayHeaderRecipientsTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var headers: String
        var envelope: [String]
        var missing: [String]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "all in To", headers: "To: a@x.test, b@x.test\r\n", envelope: ["a@x.test", "b@x.test"], missing: []),
        Case(name: "case-insensitive", headers: "To: Alice <ALICE@X.test>\r\n", envelope: ["alice@x.test"], missing: []),
        Case(name: "one only in envelope", headers: "To: a@x.test\r\nCc: c@x.test\r\n", envelope: ["a@x.test", "hidden@y.test", "c@x.test"], missing: ["hidden@y.test"]),
        Case(name: "existing Bcc counts", headers: "To: a@x.test\r\nBcc: b@x.test\r\n", envelope: ["a@x.test", "b@x.test"], missing: []),
        Case(name: "folded Cc", headers: "To: a@x.test\r\nCc: one@x.test,\r\n two@x.test\r\n", envelope: ["two@x.test"], missing: []),
        Case(name: "group in To", headers: "To: list: m1@x.test, m2@x.test;\r\n", envelope: ["m1@x.test", "m3@x.test"], missing: ["m3@x.test"]),
        Case(name: "no recipient headers", headers: "Subject: hi\r\n", envelope: ["a@x.test", "a@x.test"], missing: ["a@x.test"]),
        Case(name: "repeated To fields", headers: "To: a@x.test\r\nTo: b@x.test\r\n", envelope: ["b@x.test"], missing: []),
        Case(name: "From does not count", headers: "From: a@x.test\r\nTo: b@x.test\r\n", envelope: ["a@x.test"], missing: ["a@x.test"]),
    ]

    @Test(arguments: cases)
    func missing(_ test: Case) {
        let bytes = Array((test.headers + "\r\nbody\r\n").utf8)
        let headers = RelayHeaderSection.parse(bytes)
        #expect(RelayHeaderRecipients.missing(envelope: test.envelope, headers: headers) == test.missing)
    }

    @Test func addsBccAtTheEndOfTheSection() {
        let message = Array("From: s@x.test\r\nTo: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n".utf8)
        let headers = RelayHeaderSection.parse(message)
        let rewritten = RelayHeaderRecipients.adding(bcc: ["h1@y.test", "h2@y.test"], to: message, headers: headers)
        let text = String(decoding: rewritten, as: UTF8.self)
        #expect(text == "From: s@x.test\r\nTo: a@x.test\r\nSubject: hi\r\nBcc: h1@y.test,\r\n h2@y.test\r\n\r\n")
        let reparsed = RelayHeaderSection.parse(rewritten + Array("body\r\n".utf8))
        #expect(reparsed.addresses("Bcc").map(\.address) == ["h1@y.test", "h2@y.test"])
    }

    @Test func mergesAnExistingBcc() {
        let message = Array("To: a@x.test\r\nBcc: old@x.test\r\nSubject: hi\r\n\r\nbody".utf8)
        let headers = RelayHeaderSection.parse(message)
        let rewritten = RelayHeaderRecipients.adding(bcc: ["new@y.test"], to: message, headers: headers)
        let reparsed = RelayHeaderSection.parse(rewritten)
        #expect(reparsed.values("Bcc").count == 1)
        #expect(reparsed.addresses("Bcc").map(\.address) == ["old@x.test", "new@y.test"])
        #expect(reparsed.value("Subject") == "hi")
    }

    @Test func nothingMissingLeavesTheSectionAlone() {
        let message = Array("To: a@x.test\r\n\r\nbody".utf8)
        let headers = RelayHeaderSection.parse(message)
        #expect(RelayHeaderRecipients.adding(bcc: [], to: message, headers: headers) == Array("To: a@x.test\r\n\r\n".utf8))
    }

    @Test func extraHeaderRecipients() {
        let headers = RelayHeaderSection.parse(Array("To: list@x.test, a@x.test\r\n\r\n".utf8))
        #expect(RelayHeaderRecipients.extra(envelope: ["a@x.test"], headers: headers) == ["list@x.test"])
    }
}
