import RelayCore
import RelayDNS
@testable import RelayDoctor
import RelayTestSupport
import Testing

/// check_host and the include tree, over real DNS (the `*.eval.example` domains of ``DNSFixtures``).
@Suite("SPF evaluator")
struct DNSSPFEvaluatorTests {
    func check(_ address: String, _ domain: String) async throws -> RelaySPFCheck {
        var evaluator = RelaySPFEvaluator(resolver: try await DNSFixtures.resolver())
        let texts = try await evaluator.spfRecords(of: domain)
        let record = try RelaySPFRecord(parsing: try #require(texts.first))
        return await evaluator.checkHost(address: try #require(RelayIPAddress(parsing: address)), domain: domain, record: record)
    }

    func analyse(_ domain: String) async throws -> RelaySPFAnalysis {
        var evaluator = RelaySPFEvaluator(resolver: try await DNSFixtures.resolver())
        let texts = try await evaluator.spfRecords(of: domain)
        return await evaluator.analyse(domain: domain, record: try RelaySPFRecord(parsing: try #require(texts.first)))
    }

    @Test("ip4 and ip6 networks", arguments: [
        ("198.51.100.200", "cidr.eval.example", RelaySPFCheck.Result.pass),
        ("198.51.101.1", "cidr.eval.example", .fail),
        ("2001:db8:5:ffff::1", "cidr.eval.example", .pass),
        ("2001:db8:6::1", "cidr.eval.example", .fail),
        // a/24 around the domain's A record; mx through the MX host's A record.
        ("198.51.100.99", "a.eval.example", .pass),
        ("198.51.101.7", "a.eval.example", .fail),
        ("192.0.2.25", "mx.eval.example", .pass),
        ("192.0.2.26", "mx.eval.example", .fail),
        // An include matches when the included record passes; otherwise evaluation goes on to ~all.
        ("198.51.100.1", "inc.eval.example", .pass),
        ("192.0.2.1", "inc.eval.example", .softFail),
        // No all: neutral.
        ("192.0.2.2", "noall.eval.example", .neutral),
        // redirect= decides when nothing matched; a matching mechanism before it wins.
        ("198.51.100.1", "redirect.eval.example", .pass),
        ("192.0.2.77", "redirect.eval.example", .neutral),
        ("192.0.2.78", "redirect.eval.example", .fail),
        // exists: with the address expanded into the name.
        ("203.0.113.9", "exists.eval.example", .pass),
        ("203.0.113.10", "exists.eval.example", .fail),
    ])
    func results(address: String, domain: String, expected: RelaySPFCheck.Result) async throws {
        #expect(try await check(address, domain).result == expected)
    }

    @Test("The deciding term is named with the records it went through")
    func matchedTerm() async throws {
        #expect(try await check("198.51.100.1", "inc.eval.example").matched == "include:cidr.eval.example in inc.eval.example > ip4:198.51.100.0/24 in cidr.eval.example")
        #expect(try await check("192.0.2.1", "inc.eval.example").matched == "~all in inc.eval.example")
    }

    @Test("Permerrors: an include without a record, an include loop, more than 10 lookups, two records")
    func permerrors() async throws {
        guard case .permerror(let missing) = try await check("192.0.2.1", "missing.eval.example").result else { Issue.record("no permerror"); return }
        #expect(missing == "nothing.eval.example, included by missing.eval.example, has no SPF record")
        guard case .permerror(let loop) = try await check("192.0.2.1", "loop1.eval.example").result else { Issue.record("no permerror"); return }
        #expect(loop.contains("loops back: loop1.eval.example > loop2.eval.example > loop1.eval.example"))
        let tooMany = try await check("192.0.2.200", "manylookups.example")
        #expect(tooMany.result == .permerror("more than 10 DNS lookups (RFC 7208 §4.6.4)"))
        #expect(tooMany.lookups == 11)
        guard case .permerror(let double) = try await check("192.0.2.1", "doubleinc.eval.example").result else { Issue.record("no permerror"); return }
        #expect(double == "double.eval.example publishes 2 SPF records")
    }

    @Test("Void lookups: two terms that find nothing pass, a third is a permerror")
    func voidLookups() async throws {
        #expect(try await check("192.0.2.1", "twovoids.eval.example").result == .pass)
        #expect(try await check("192.0.2.1", "threevoids.eval.example").result == .permerror("more than 2 void DNS lookups (RFC 7208 §4.6.4)"))
        // A term that finds records is not void.
        #expect(try await check("198.51.100.7", "a.eval.example").result == .pass)
    }

    @Test("A DNS failure is a temperror, not a result")
    func temperror() async throws {
        let port = try await offCooperativePool { freeLoopbackPort() }
        var evaluator = RelaySPFEvaluator(resolver: RelayDNSClient(server: ("127.0.0.1", port), timeout: .milliseconds(200)))
        let record = try RelaySPFRecord(parsing: "v=spf1 ip4:192.0.2.1 include:spf.protection.outlook.com -all")
        // The address matches before any lookup: no DNS needed.
        #expect(await evaluator.checkHost(address: RelayIPAddress(parsing: "192.0.2.1")!, domain: "x.example", record: record).result == .pass)
        guard case .temperror(let error) = await evaluator.checkHost(address: RelayIPAddress(parsing: "192.0.2.2")!, domain: "x.example", record: record).result else {
            Issue.record("no temperror"); return
        }
        #expect(error.name == "spf.protection.outlook.com")
    }

    @Test("The include tree: lookups counted through nested includes, in order")
    func tree() async throws {
        let analysis = try await analyse("manylookups.example")
        #expect(analysis.lookupCount == 11)
        #expect(analysis.nodes.map(\.domain) == [
            "manylookups.example", "spf.protection.outlook.com", "spfd.protection.outlook.com",
            "_spf1.manylookups.example", "_spf2.manylookups.example", "_spf3.manylookups.example",
        ])
        #expect(analysis.nodes[4].lookupTerms == ["a:a.manylookups.example", "mx:mx.manylookups.example", "exists:x.manylookups.example", "include:_spf3.manylookups.example"])
        #expect(analysis.reaches("SPF.protection.outlook.com"))
        #expect(analysis.finalAll == .init(qualifier: .fail, domain: "manylookups.example"))
        #expect(analysis.problems.isEmpty)
    }

    @Test("The include tree: redirect's all, loops, missing records, macros")
    func treeProblems() async throws {
        let redirect = try await analyse("redirect.eval.example")
        #expect(redirect.finalAll == .init(qualifier: .fail, domain: "cidr.eval.example"))
        #expect(redirect.lookupCount == 1)

        #expect(try await analyse("loop1.eval.example").problems == [.loop(["loop1.eval.example", "loop2.eval.example", "loop1.eval.example"])])
        #expect(try await analyse("missing.eval.example").problems == [.noRecord(domain: "nothing.eval.example", via: ["missing.eval.example"])])
        #expect(try await analyse("doubleinc.eval.example").problems == [.multipleRecords(domain: "double.eval.example", via: ["doubleinc.eval.example"])])
        let macro = try await analyse("macro.eval.example")
        #expect(macro.problems == [.unevaluable(domain: "macro.eval.example", term: "include:%{l}.users.eval.example")])
        #expect(!macro.problems[0].isPermanentError)
    }
}
