import RelayCore
@testable import RelayDoctor
import Testing

/// The SPF record grammar of RFC 7208 §4.6.1, on strings.
@Suite("SPF record parser")
struct DNSSPFRecordTests {
    @Test("Which TXT records are SPF records (RFC 7208 §4.5)", arguments: [
        ("v=spf1 -all", true),
        ("v=spf1", true),
        ("V=SPF1 include:spf.protection.outlook.com -all", true),
        ("v=spf10 -all", false),
        ("v=spf1-all", false),
        (" v=spf1 -all", false),
        ("MS=ms12345678", false),
        ("", false),
    ])
    func selection(text: String, isSPF: Bool) {
        #expect(RelaySPFRecord.isSPF(text) == isSPF)
    }

    @Test("Mechanisms, qualifiers and CIDR lengths")
    func mechanisms() throws {
        let record = try RelaySPFRecord(parsing:
            "v=spf1  include:spf.protection.outlook.com ip4:203.0.113.5 ip4:198.51.100.0/24 ip6:2001:DB8::/32 a a:relay.contoso.com/28 mx//64 -mx:contoso.com/24//48 ?exists:%{i}._spf.contoso.com ~ptr +all")
        #expect(record.directives == [
            .init(.pass, .include("spf.protection.outlook.com")),
            .init(.pass, .ip4(RelayNetwork(parsing: "203.0.113.5/32")!)),
            .init(.pass, .ip4(RelayNetwork(parsing: "198.51.100.0/24")!)),
            .init(.pass, .ip6(RelayNetwork(parsing: "2001:db8::/32")!)),
            .init(.pass, .a(domain: nil, ipv4Prefix: nil, ipv6Prefix: nil)),
            .init(.pass, .a(domain: "relay.contoso.com", ipv4Prefix: 28, ipv6Prefix: nil)),
            .init(.pass, .mx(domain: nil, ipv4Prefix: nil, ipv6Prefix: 64)),
            .init(.fail, .mx(domain: "contoso.com", ipv4Prefix: 24, ipv6Prefix: 48)),
            .init(.neutral, .exists("%{i}._spf.contoso.com")),
            .init(.softFail, .ptr(domain: nil)),
            .init(.pass, .all),
        ])
        #expect(record.directives.map(\.description) == [
            "include:spf.protection.outlook.com", "ip4:203.0.113.5", "ip4:198.51.100.0/24", "ip6:2001:db8::/32", "a",
            "a:relay.contoso.com/28", "mx//64", "-mx:contoso.com/24//48", "?exists:%{i}._spf.contoso.com", "~ptr", "all",
        ])
        #expect(record.allDirective == .init(.pass, .all))
        #expect(record.directives.filter(\.mechanism.countsAsLookup).count == 7)
    }

    @Test("Modifiers: redirect and exp once each, unknown ones ignored")
    func modifiers() throws {
        let record = try RelaySPFRecord(parsing: "v=spf1 mx redirect=_spf.Contoso.com exp=explain.contoso.com x-custom=anything")
        #expect(record.redirect == "_spf.contoso.com")
        #expect(record.explanation == "explain.contoso.com")
        #expect(record.directives == [.init(.pass, .mx(domain: nil, ipv4Prefix: nil, ipv6Prefix: nil))])
        #expect(record.allDirective == nil)
    }

    @Test("Invalid records are permerrors with the reason", arguments: [
        ("v=spf1 include:spf.protection.outlook.com foo -all", "unknown mechanism `foo`"),
        ("v=spf1 redirect=a.example redirect=b.example", "redirect= is given more than once"),
        ("v=spf1 ip4:300.1.2.3 -all", "`ip4:300.1.2.3` is not a valid ip4 network"),
        ("v=spf1 ip4:2001:db8::1 -all", "ip4 needs an IPv4 network"),
        ("v=spf1 ip6:192.0.2.1 -all", "ip6 needs an IPv6 network"),
        ("v=spf1 ip4:192.0.2.0/33 -all", "not a valid ip4 network"),
        ("v=spf1 a/33 -all", "prefix length /33 out of range"),
        ("v=spf1 include -all", "include needs :domain"),
        ("v=spf1 include:localhost -all", "`localhost` is not a domain name"),
        ("v=spf1 include:192.0.2.1 -all", "is not a domain name"),
        ("v=spf1 all:x", "all takes no argument"),
        ("v=spf1 1x=y", "neither a mechanism nor a modifier"),
        ("spf1 -all", "does not start with v=spf1"),
    ])
    func invalid(text: String, reason: String) {
        #expect {
            try RelaySPFRecord(parsing: text)
        } throws: { error in
            (error as? RelaySPFSyntaxError)?.reason.contains(reason) == true
        }
    }

    @Test("Macros expand from what is known; unknown values leave the term unevaluated (RFC 7208 §7.4)")
    func macros() {
        let context = RelaySPFMacroContext(domain: "email.example.com", address: RelayIPAddress(parsing: "192.0.2.3"), sender: "strong-bad@email.example.com")
        // The examples of RFC 7208 §7.4.
        #expect(context.expand("%{s}") == "strong-bad@email.example.com")
        #expect(context.expand("%{o}") == "email.example.com")
        #expect(context.expand("%{d}") == "email.example.com")
        #expect(context.expand("%{d4}") == "email.example.com")
        #expect(context.expand("%{d3}") == "email.example.com")
        #expect(context.expand("%{d2}") == "example.com")
        #expect(context.expand("%{d1}") == "com")
        #expect(context.expand("%{dr}") == "com.example.email")
        #expect(context.expand("%{d2r}") == "example.email")
        #expect(context.expand("%{l}") == "strong-bad")
        #expect(context.expand("%{l-}") == "strong.bad")
        #expect(context.expand("%{lr}") == "strong-bad")
        #expect(context.expand("%{lr-}") == "bad.strong")
        #expect(context.expand("%{l1r-}") == "strong")
        #expect(context.expand("%{ir}.%{v}._spf.%{d2}") == "3.2.0.192.in-addr._spf.example.com")
        #expect(context.expand("%{lr-}.lp._spf.%{d2}") == "bad.strong.lp._spf.example.com")
        #expect(context.expand("%%%_%-") == "% %20")
        let v6 = RelaySPFMacroContext(domain: "email.example.com", address: RelayIPAddress(parsing: "2001:db8::cb01"))
        #expect(v6.expand("%{ir}.%{v}._spf.%{d2}") == "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com")
        // Without a message there is no sender and no address.
        let bare = RelaySPFMacroContext(domain: "contoso.com")
        #expect(bare.expand("%{l}.users.%{d}") == nil)
        #expect(bare.expand("%{i}._spf.%{d}") == nil)
        #expect(bare.expand("_spf.%{d}") == "_spf.contoso.com")
        #expect(bare.expand("%{d0}") == nil)
        #expect(bare.expand("%{x}") == nil)
        #expect(bare.expand("%{d") == nil)
    }
}
