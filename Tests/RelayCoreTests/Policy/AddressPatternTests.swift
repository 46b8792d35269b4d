import RelayCore
import Testing

@Suite("Address patterns of allowed_senders and allowed_recipients")
struct AddressPatternTests {
    @Test(arguments: [
        ("scanner@contoso.com", ["scanner@contoso.com"], true),
        ("Scanner@Contoso.COM", ["scanner@contoso.com"], true),
        ("other@contoso.com", ["scanner@contoso.com"], false),
        ("anyone@contoso.com", ["*@contoso.com"], true),
        ("anyone@sub.contoso.com", ["*@contoso.com"], false),
        ("anyone@evilcontoso.com", ["*@contoso.com"], false),
        ("contoso.com@evil.test", ["*@contoso.com"], false),
        ("a@b.test", ["*"], true),
        ("", ["*"], true),
        ("", ["*@contoso.com", "a@contoso.com"], false),
        ("a@b.test", [], false),
        ("x@fabrikam.com", ["a@contoso.com", "*@fabrikam.com"], true),
    ])
    func patterns(address: String, patterns: [String], expected: Bool) {
        #expect(RelayAddressPattern.matches(address, anyOf: patterns) == expected)
    }
}
