import Foundation
import NIOCore
import RelayCore
import RelayDNS
@testable import RelayDoctor
import RelayTestSupport
import Testing

/// The zone of the DNS check tests: one correct domain, one domain per kind
/// of mistake (each correct except for that mistake), and the domains the SPF
/// evaluator tests walk. One dnslib server answers all of them.
enum DNSFixtures {
    /// The relay's address as Microsoft sees it, authorised by every correct SPF record here.
    static let relayAddress = "203.0.113.5"
    /// The relay's DKIM selector in every configuration here.
    static let selector = "relay"
    /// Answered with SERVFAIL (the resolver-failure fixture).
    static let servfailNames = ["_dmarc.servfail.example"]

    static let rsaKey = try! RelayDKIMPublishedKey(domain: "x.example", selector: selector, privateKeyPEM: TestRSAKeys.pem[0])
    static let otherRSAKey = try! RelayDKIMPublishedKey(domain: "x.example", selector: selector, privateKeyPEM: TestRSAKeys.pem[1])
    /// Made with `openssl genpkey -algorithm ed25519`; protects nothing.
    static let ed25519PEM = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEIJxylfJyH6OrHLqB86qNa1liWs6Bcb89uZW5pXCo407E
        -----END PRIVATE KEY-----
        """

    /// The records of a correct domain; each argument replaces one of them (nil or empty: left out).
    static func domain(
        _ name: String,
        mx: [String]? = nil,
        spf: [String]? = nil,
        selectors: [String]? = nil,
        relayKey: String?? = .none,
        dmarc: String?? = .none,
        mtaSTS: String?? = .none,
        tlsRPT: String?? = .none,
        extra: [String] = []
    ) -> String {
        let dashes = name.replacingOccurrences(of: ".", with: "-")
        var lines: [String] = []
        for exchange in mx ?? ["0 \(dashes).mail.protection.outlook.com."] { lines.append("\(name). IN MX \(exchange)") }
        for text in spf ?? ["v=spf1 include:spf.protection.outlook.com ip4:\(relayAddress) -all"] { lines.append("\(name). IN TXT \"\(text)\"") }
        for selector in selectors ?? ["selector1", "selector2"] {
            lines.append("\(selector)._domainkey.\(name). IN CNAME \(selector)-\(dashes)._domainkey.contoso.onmicrosoft.com.")
        }
        let key = relayKey ?? rsaKey.recordText
        if let key { lines.append("\(selector)._domainkey.\(name). IN TXT \"\(key)\"") }
        if let dmarc = dmarc ?? "v=DMARC1; p=reject; adkim=s; rua=mailto:dmarc@\(name)" { lines.append("_dmarc.\(name). IN TXT \"\(dmarc)\"") }
        if let mtaSTS = mtaSTS ?? "v=STSv1; id=20250101T000000" { lines.append("_mta-sts.\(name). IN TXT \"\(mtaSTS)\"") }
        if let tlsRPT = tlsRPT ?? "v=TLSRPTv1; rua=mailto:tlsrpt@\(name)" { lines.append("_smtp._tls.\(name). IN TXT \"\(tlsRPT)\"") }
        return (lines + extra).joined(separator: "\n")
    }

    static let zone: String = [
        // Microsoft's own records, trimmed: one include deep, as published.
        #"spf.protection.outlook.com. IN TXT "v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/15 ip4:104.47.0.0/17 ip6:2a01:111:f400::/48 include:spfd.protection.outlook.com -all""#,
        #"spfd.protection.outlook.com. IN TXT "v=spf1 ip4:51.4.72.0/24 ip4:51.5.72.0/24 -all""#,

        domain("good.example"),
        // Correct but for a subdomain sending without its own DMARC record.
        domain("mail.good.example", dmarc: .some(nil)),
        domain("ed25519.example", relayKey: .some(try! RelayDKIMPublishedKey(domain: "ed25519.example", selector: selector, privateKeyPEM: ed25519PEM).recordText)),
        domain("plain.example", mtaSTS: .some(nil), tlsRPT: .some(nil)),

        domain("wrongmx.example", mx: ["10 mx.otherhost.example."]),
        domain("nomx.example", mx: []),
        domain("twospf.example", spf: ["v=spf1 include:spf.protection.outlook.com -all", "v=spf1 ip4:\(relayAddress) -all"]),
        domain("noinclude.example", spf: ["v=spf1 ip4:\(relayAddress) -all"]),
        domain("plusall.example", spf: ["v=spf1 include:spf.protection.outlook.com ip4:\(relayAddress) +all"]),
        domain("neutralall.example", spf: ["v=spf1 include:spf.protection.outlook.com ip4:\(relayAddress) ?all"]),
        domain("noaddress.example", spf: ["v=spf1 include:spf.protection.outlook.com -all"]),
        // 2 + 1 + 3 + 4 + 1 = 11 lookups; the relay's address matches first, so only the count is wrong.
        domain("manylookups.example", spf: ["v=spf1 ip4:\(relayAddress) include:spf.protection.outlook.com include:_spf1.manylookups.example -all"], extra: [
            #"_spf1.manylookups.example. IN TXT "v=spf1 a mx include:_spf2.manylookups.example -all""#,
            #"_spf2.manylookups.example. IN TXT "v=spf1 a:a.manylookups.example mx:mx.manylookups.example exists:x.manylookups.example include:_spf3.manylookups.example ~all""#,
            #"_spf3.manylookups.example. IN TXT "v=spf1 a:b.manylookups.example ~all""#,
            // The names resolve, so that only the lookup count is wrong, not the void lookups (x stays void: one).
            "_spf1.manylookups.example. IN A 192.0.2.50",
            "_spf1.manylookups.example. IN MX 10 mail.manylookups.example.",
            "a.manylookups.example. IN A 192.0.2.51",
            "mx.manylookups.example. IN MX 10 mail.manylookups.example.",
            "b.manylookups.example. IN A 192.0.2.52",
            "mail.manylookups.example. IN A 192.0.2.53",
        ]),
        domain("loop.example", spf: ["v=spf1 ip4:\(relayAddress) include:spf.protection.outlook.com include:_a.loop.example -all"], extra: [
            #"_a.loop.example. IN TXT "v=spf1 include:_b.loop.example -all""#,
            #"_b.loop.example. IN TXT "v=spf1 include:_a.loop.example -all""#,
        ]),
        domain("noselector2.example", selectors: ["selector1"]),
        domain("foreignselector.example", extra: []).replacingOccurrences(
            of: "selector1-foreignselector-example._domainkey.contoso.onmicrosoft.com.", with: "dkim1.mailvendor.example."),
        domain("keymismatch.example", relayKey: .some(otherRSAKey.recordText)),
        domain("nokey.example", relayKey: .some(nil)),
        domain("revoked.example", relayKey: .some("v=DKIM1; k=rsa; p=")),
        domain("nodmarc.example", dmarc: .some(nil)),
        domain("dmarcnone.example", dmarc: .some("v=DMARC1; p=none; rua=mailto:dmarc@dmarcnone.example")),
        domain("servfail.example"),

        // The SPF evaluator's domains.
        #"cidr.eval.example. IN TXT "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:5::/48 -all""#,
        #"a.eval.example. IN TXT "v=spf1 a/24 -all""#,
        "a.eval.example. IN A 198.51.100.7",
        #"mx.eval.example. IN TXT "v=spf1 mx -all""#,
        "mx.eval.example. IN MX 10 mail.mx.eval.example.",
        "mail.mx.eval.example. IN A 192.0.2.25",
        #"inc.eval.example. IN TXT "v=spf1 include:cidr.eval.example ~all""#,
        #"noall.eval.example. IN TXT "v=spf1 ip4:192.0.2.1""#,
        #"redirect.eval.example. IN TXT "v=spf1 ?ip4:192.0.2.77 redirect=cidr.eval.example""#,
        #"missing.eval.example. IN TXT "v=spf1 include:nothing.eval.example -all""#,
        #"loop1.eval.example. IN TXT "v=spf1 include:loop2.eval.example -all""#,
        #"loop2.eval.example. IN TXT "v=spf1 include:loop1.eval.example -all""#,
        #"exists.eval.example. IN TXT "v=spf1 exists:%{i}._spf.%{d} -all""#,
        "203.0.113.9._spf.exists.eval.example. IN A 127.0.0.2",
        #"double.eval.example. IN TXT "v=spf1 -all""#,
        #"double.eval.example. IN TXT "v=spf1 +all""#,
        #"doubleinc.eval.example. IN TXT "v=spf1 include:double.eval.example -all""#,
        // Two terms that find nothing are tolerated; a third is a permerror (void lookups).
        #"twovoids.eval.example. IN TXT "v=spf1 a:void1.eval.example exists:void2.eval.example ip4:192.0.2.1 -all""#,
        #"threevoids.eval.example. IN TXT "v=spf1 a:void1.eval.example exists:void2.eval.example mx:void3.eval.example ip4:192.0.2.1 -all""#,
        #"macro.eval.example. IN TXT "v=spf1 include:%{l}.users.eval.example -all""#,
    ].joined(separator: "\n")

    static let server = Task { try await TestDNSServer.start(zone: zone, servfail: servfailNames) }

    /// A client of the fixture server.
    static func resolver() async throws -> RelayDNSClient {
        let server = try await server.value
        return RelayDNSClient(server: (server.host, server.port), timeout: .seconds(10))
    }

    /// A relay sending for `domain` through a connector route, from ``relayAddress``, signing with ``selector``.
    static func configuration(
        _ domain: String, mode: RelayConfiguration.RouteMode = .connector, publicAddresses: [String] = [relayAddress], dkim: Bool = true
    ) -> RelayConfiguration {
        var route = RelayConfiguration.Route(name: "tenant", mode: mode)
        route.domain = domain
        var configuration = RelayConfiguration(
            clients: [RelayConfiguration.Client(name: "printers", route: "tenant", networks: [RelayNetwork(parsing: "10.0.0.0/24")!], allowedSenders: ["*@\(domain)"])],
            routes: [route],
            dkim: dkim ? [RelayConfiguration.DKIM(domain: domain, selector: selector, privateKey: .file("/etc/m365-relay/dkim-\(domain).key"))] : [])
        configuration.server.publicAddresses = publicAddresses.map { RelayIPAddress(parsing: $0)! }
        return configuration
    }

    /// The rows for `domain` with ``configuration(_:mode:publicAddresses:dkim:)`` and the RSA key published everywhere.
    static func rows(
        _ domain: String, configuration: RelayConfiguration? = nil, keys: [RelayDKIMPublishedKey]? = nil
    ) async throws -> [RelayDoctorRow] {
        let key = RelayDKIMPublishedKey(domain: domain, selector: selector, publicKey: rsaKey.publicKey, algorithm: .rsa)
        return await RelayDoctorDNSChecks.rows(
            configuration: configuration ?? Self.configuration(domain), domains: [domain], resolver: try await resolver(), dkimPublicKeys: keys ?? [key])
    }
}

/// Checks that the rows whose action contains a key of `expected` have that
/// result (and at least one row matches each key), and that every other row
/// passes (MTA-STS and TLS-RPT: info). Returns the rows that matched a key.
@discardableResult
func expectRows(
    _ rows: [RelayDoctorRow], except expected: [String: RelayDoctorRow.Result] = [:], sourceLocation: SourceLocation = #_sourceLocation
) -> [RelayDoctorRow] {
    var matched: [RelayDoctorRow] = []
    for row in rows {
        #expect(row.step == "DNS", sourceLocation: sourceLocation)
        if let (_, result) = expected.first(where: { row.action.contains($0.key) }) {
            #expect(row.result == result, "\(row.action): \(row.verification) | \(row.hint)", sourceLocation: sourceLocation)
            #expect(!row.hint.isEmpty, "a row that is not pass needs a hint: \(row.action)", sourceLocation: sourceLocation)
            matched.append(row)
        } else {
            let informational = row.action.hasPrefix("MTA-STS") || row.action.hasPrefix("TLS-RPT")
            #expect(row.result == (informational ? .info : .pass), "\(row.action): \(row.verification) | \(row.hint)", sourceLocation: sourceLocation)
        }
    }
    for key in expected.keys {
        #expect(rows.contains { $0.action.contains(key) }, "no row for \(key)", sourceLocation: sourceLocation)
    }
    return matched
}

/// The row whose action contains `fragment`.
func row(_ rows: [RelayDoctorRow], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> RelayDoctorRow {
    try #require(rows.first { $0.action.contains(fragment) }, "no row for \(fragment) in \(rows.map(\.action))", sourceLocation: sourceLocation)
}
