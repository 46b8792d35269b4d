import Foundation
import NIOCore
import RelayCore
import RelayDNS
@testable import RelayDoctor
import RelayTestSupport
import Testing

/// The "Domain and DNS" rows against a real DNS server: a correct domain
/// passes every row, and each fixture domain, correct but for one mistake,
/// fails exactly the row for that mistake with a hint that says what to publish.
@Suite("Doctor DNS checks against a test zone")
struct DNSChecksTests {
    @Test("A correct domain: every row passes, MTA-STS and TLS-RPT are information")
    func correctDomain() async throws {
        let rows = try await DNSFixtures.rows("good.example")
        expectRows(rows)
        #expect(rows.map(\.action) == [
            "MX of good.example points at Microsoft 365",
            "SPF record of good.example",
            "SPF of good.example includes spf.protection.outlook.com",
            "SPF of good.example authorises the relay's public address",
            "SPF of good.example needs at most 10 DNS lookups",
            "DKIM selector1 of good.example points at Microsoft 365",
            "DKIM selector2 of good.example points at Microsoft 365",
            "DKIM key relay._domainkey.good.example matches the relay's key",
            "DMARC policy of good.example",
            "MTA-STS of good.example",
            "TLS-RPT of good.example",
        ])
        #expect(try row(rows, "MX of").verification == "MX 0 good-example.mail.protection.outlook.com")
        #expect(try row(rows, "lookups").verification.hasPrefix("2 of 10 DNS lookups: good.example 1; spf.protection.outlook.com (via good.example) 1"))
        #expect(try row(rows, "public address").verification.contains("203.0.113.5: pass (ip4:203.0.113.5 in good.example)"))
        #expect(try row(rows, "DMARC").verification.hasSuffix("p=reject, adkim=strict, aspf=relaxed, rua=mailto:dmarc@good.example"))
        #expect(try row(rows, "MTA-STS").verification.contains("id=20250101T000000"))
        #expect(try row(rows, "TLS-RPT").verification.contains("reports go to mailto:tlsrpt@good.example"))
    }

    @Test("An Ed25519 relay key matches its published k=ed25519 record")
    func ed25519Key() async throws {
        let key = try RelayDKIMPublishedKey(domain: "ed25519.example", selector: DNSFixtures.selector, privateKeyPEM: DNSFixtures.ed25519PEM)
        expectRows(try await DNSFixtures.rows("ed25519.example", keys: [key]))
        // The RSA key of the other fixtures is not the one published there.
        let rows = expectRows(try await DNSFixtures.rows("ed25519.example"), except: ["DKIM key": .fail])
        #expect(rows[0].verification.contains("k=ed25519, but private_key_file (/etc/m365-relay/dkim-ed25519.example.key) holds an rsa key"))
        #expect(rows[0].hint.contains("published key does not match private_key_file"))
    }

    @Test("Without MTA-STS and TLS-RPT the rows are still information, with what to publish")
    func optionalRecordsMissing() async throws {
        let rows = expectRows(try await DNSFixtures.rows("plain.example"), except: ["MTA-STS": .info, "TLS-RPT": .info])
        #expect(rows[0].verification == "no v=STSv1 record at _mta-sts.plain.example")
        #expect(rows[1].hint.contains("`_smtp._tls.plain.example. IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@plain.example\"`"))
    }

    @Test("An MX elsewhere fails, naming the host and the MX to publish")
    func wrongMX() async throws {
        let rows = expectRows(try await DNSFixtures.rows("wrongmx.example"), except: ["MX of": .fail])
        #expect(rows[0].verification == "MX 10 mx.otherhost.example")
        #expect(rows[0].hint.contains("mx.otherhost.example is not Microsoft 365"))
        #expect(rows[0].hint.contains("`wrongmx.example. IN MX 0 wrongmx-example.mail.protection.outlook.com.`"))
    }

    @Test("No MX fails with the MX to publish")
    func noMX() async throws {
        let rows = expectRows(try await DNSFixtures.rows("nomx.example"), except: ["MX of": .fail])
        #expect(rows[0].verification == "no MX record")
        #expect(rows[0].hint.contains("IN MX 0 nomx-example.mail.protection.outlook.com."))
    }

    @Test("Two SPF records fail as a permerror; the rows that need the record are skipped")
    func twoSPFRecords() async throws {
        let rows = expectRows(try await DNSFixtures.rows("twospf.example"), except: [
            "SPF record": .fail, "includes spf.protection": .skip, "public address": .skip, "DNS lookups": .skip,
        ])
        #expect(rows[0].verification.hasPrefix("2 SPF records: "))
        #expect(rows[0].hint.contains("RFC 7208 §4.5"))
        #expect(rows[1].hint == "Fix \"SPF record of twospf.example\" first")
    }

    @Test("SPF without Microsoft's include fails with the record to publish")
    func missingInclude() async throws {
        let rows = expectRows(try await DNSFixtures.rows("noinclude.example"), except: ["includes spf.protection": .fail])
        #expect(rows[0].hint.contains("`v=spf1 ip4:203.0.113.5 include:spf.protection.outlook.com -all`"))
    }

    @Test("SPF over 10 lookups through nested includes fails with the count and the chain")
    func tooManyLookups() async throws {
        let rows = expectRows(try await DNSFixtures.rows("manylookups.example"), except: ["DNS lookups": .fail])
        #expect(rows[0].verification.hasPrefix("11 DNS lookups (limit 10, RFC 7208 §4.6.4): manylookups.example 2; "))
        #expect(rows[0].verification.contains("_spf2.manylookups.example (via manylookups.example > _spf1.manylookups.example) 4"))
        #expect(rows[0].verification.hasSuffix("_spf3.manylookups.example (via manylookups.example > _spf1.manylookups.example > _spf2.manylookups.example) 1"))
        #expect(rows[0].hint.contains("permerror"))
    }

    @Test("An include loop fails, naming the include to remove")
    func includeLoop() async throws {
        let rows = expectRows(try await DNSFixtures.rows("loop.example"), except: ["DNS lookups": .fail])
        #expect(rows[0].verification == "include loop: loop.example > _a.loop.example > _b.loop.example > _a.loop.example")
        #expect(rows[0].hint.contains("Remove include:_a.loop.example from the SPF record of _b.loop.example"))
    }

    @Test("+all fails, ?all warns")
    func allQualifiers() async throws {
        let plus = expectRows(try await DNSFixtures.rows("plusall.example"), except: ["SPF record": .fail])
        #expect(plus[0].verification.hasSuffix("ends with +all"))
        #expect(plus[0].hint.contains("every host on the internet"))
        let neutral = expectRows(try await DNSFixtures.rows("neutralall.example"), except: ["SPF record": .warn])
        #expect(neutral[0].hint.contains("change it to -all"))
    }

    @Test("A connector route's public address missing from SPF fails with the term to add")
    func publicAddressMissing() async throws {
        let rows = expectRows(try await DNSFixtures.rows("noaddress.example"), except: ["public address": .fail])
        #expect(rows[0].verification == "check_host for routes tenant (connector): 203.0.113.5: fail (-all in noaddress.example)")
        #expect(rows[0].hint.contains("add ip4:203.0.113.5 before the all: `v=spf1 include:spf.protection.outlook.com ip4:203.0.113.5 -all`"))

        // Direct Send connects from the relay's address too.
        let direct = expectRows(try await DNSFixtures.rows("noaddress.example", configuration: DNSFixtures.configuration("noaddress.example", mode: .directSend)),
                                except: ["public address": .fail])
        #expect(direct[0].verification.contains("tenant (direct-send)"))

        // An SMTP AUTH route sends from Microsoft's servers: the relay's address is not checked.
        let smtp = try await DNSFixtures.rows("noaddress.example", configuration: DNSFixtures.configuration("noaddress.example", mode: .smtp))
        expectRows(smtp)
        #expect(!smtp.contains { $0.action.contains("public address") })
    }

    @Test("An unknown public address warns, naming server.public_addresses")
    func publicAddressUnknown() async throws {
        let rows = expectRows(try await DNSFixtures.rows("good.example", configuration: DNSFixtures.configuration("good.example", publicAddresses: [])),
                              except: ["public address": .warn])
        #expect(rows[0].verification.contains("server.public_addresses is not set"))
        #expect(rows[0].hint.contains("set server.public_addresses"))
    }

    @Test("A missing or foreign Microsoft 365 selector CNAME fails with how to enable DKIM")
    func microsoftSelectors() async throws {
        let missing = expectRows(try await DNSFixtures.rows("noselector2.example"), except: ["DKIM selector2": .fail])
        #expect(missing[0].verification == "no CNAME at selector2._domainkey.noselector2.example")
        #expect(missing[0].hint.contains("New-DkimSigningConfig -DomainName noselector2.example -Enabled $true"))
        #expect(missing[0].hint.contains("publish the two CNAMEs"))

        let foreign = expectRows(try await DNSFixtures.rows("foreignselector.example"), except: ["DKIM selector1": .fail])
        #expect(foreign[0].verification.hasPrefix("CNAME selector1._domainkey.foreignselector.example > dkim1.mailvendor.example, which is not Microsoft 365's"))
    }

    @Test("The relay's DKIM key: a different key, no record, a revoked record")
    func relayKey() async throws {
        let mismatch = expectRows(try await DNSFixtures.rows("keymismatch.example"), except: ["DKIM key": .fail])
        #expect(mismatch[0].verification.contains("p= is a different key from private_key_file (/etc/m365-relay/dkim-keymismatch.example.key)"))
        #expect(mismatch[0].hint.hasPrefix("published key does not match private_key_file"))
        let key = RelayDKIMPublishedKey(domain: "keymismatch.example", selector: "relay", publicKey: DNSFixtures.rsaKey.publicKey, algorithm: .rsa)
        #expect(mismatch[0].hint.contains(key.zoneFileLine))
        // The record to publish is split into strings a TXT record can hold.
        #expect(key.recordStrings.count == 2 && key.recordStrings.allSatisfy { $0.utf8.count <= 255 })
        #expect(key.zoneFileLine.hasPrefix("relay._domainkey.keymismatch.example. IN TXT \"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"))

        let missing = expectRows(try await DNSFixtures.rows("nokey.example"), except: ["DKIM key": .fail])
        #expect(missing[0].verification == "no TXT record at relay._domainkey.nokey.example")
        #expect(missing[0].hint.contains("publish `relay._domainkey.nokey.example. IN TXT \"v=DKIM1; k=rsa; p="))

        let revoked = expectRows(try await DNSFixtures.rows("revoked.example"), except: ["DKIM key": .fail])
        #expect(revoked[0].verification.contains("p= is empty, the key is revoked"))

        // A key doctor could not read is not checked here; the Configuration step reports it.
        let unread = expectRows(try await DNSFixtures.rows("good.example", keys: []), except: ["DKIM key": .skip])
        #expect(unread[0].hint.contains("private_key_file (/etc/m365-relay/dkim-good.example.key)"))
    }

    @Test("No DMARC record fails with a starter record; p=none warns")
    func dmarc() async throws {
        let missing = expectRows(try await DNSFixtures.rows("nodmarc.example"), except: ["DMARC": .fail])
        #expect(missing[0].hint.contains("`_dmarc.nodmarc.example. IN TXT \"v=DMARC1; p=none; rua=mailto:dmarc@nodmarc.example\"`"))
        #expect(missing[0].hint.contains("p=quarantine"))

        let monitoring = expectRows(try await DNSFixtures.rows("dmarcnone.example"), except: ["DMARC": .warn])
        #expect(monitoring[0].verification.hasSuffix("p=none, adkim=relaxed, aspf=relaxed, rua=mailto:dmarc@dmarcnone.example"))
        #expect(monitoring[0].hint.contains("monitoring only"))
    }

    @Test("A subdomain without its own DMARC record takes its parent's")
    func dmarcInherited() async throws {
        let rows = try await RelayDoctorDNSChecks.rows(
            configuration: DNSFixtures.configuration("mail.good.example", dkim: false), domains: ["mail.good.example"],
            resolver: try await DNSFixtures.resolver(), dkimPublicKeys: [])
        expectRows(rows)
        #expect(try row(rows, "DMARC").verification.contains("at _dmarc.good.example (inherited)"))
    }

    @Test("A SERVFAIL fails exactly the row that asked, naming the DNS server")
    func servfail() async throws {
        let server = try await DNSFixtures.server.value
        let rows = expectRows(try await DNSFixtures.rows("servfail.example"), except: ["DMARC": .fail])
        #expect(rows[0].verification.hasPrefix("could not ask DNS: DNS TXT _dmarc.servfail.example: 127.0.0.1:\(server.port) answered SERVFAIL"))
        #expect(rows[0].hint.contains("127.0.0.1:\(server.port)"))
    }

    @Test("A DNS server that does not answer fails every row, never passes one")
    func deadServer() async throws {
        let port = try await offCooperativePool { freeLoopbackPort() }
        let resolver = RelayDNSClient(server: ("127.0.0.1", port), timeout: .milliseconds(200))
        let rows = await RelayDoctorDNSChecks.rows(
            configuration: DNSFixtures.configuration("good.example"), domains: ["good.example"], resolver: resolver,
            dkimPublicKeys: [RelayDKIMPublishedKey(domain: "good.example", selector: "relay", publicKey: DNSFixtures.rsaKey.publicKey, algorithm: .rsa)])
        #expect(!rows.isEmpty)
        for row in rows {
            #expect(row.result == .fail || row.result == .skip, "\(row.action): \(row.result)")
            if row.result == .fail {
                #expect(row.verification.hasPrefix("could not ask DNS: "), "\(row.verification)")
                #expect(row.verification.contains("127.0.0.1:\(port)"))
            }
        }
    }

    @Test("Several domains: rows in the order given, each domain once")
    func severalDomains() async throws {
        let rows = await RelayDoctorDNSChecks.rows(
            configuration: DNSFixtures.configuration("good.example", dkim: false), domains: ["Nomx.example.", "good.example", "nomx.example"],
            resolver: try await DNSFixtures.resolver(), dkimPublicKeys: [])
        #expect(rows.first?.action == "MX of nomx.example points at Microsoft 365")
        #expect(rows.filter { $0.action.hasPrefix("MX of") }.map(\.action) == ["MX of nomx.example points at Microsoft 365", "MX of good.example points at Microsoft 365"])
    }
}

@Suite("Doctor DNS: the sender domains of a configuration")
struct DNSSenderDomainsTests {
    @Test("rewrite_sender, allowed_senders, route domains and DKIM domains; sorted, once, lower-case")
    func senderDomains() {
        var tenant = RelayConfiguration.Route(name: "tenant", mode: .directSend)
        tenant.domain = "Contoso.com"
        tenant.acceptedDomains = ["contoso.com", "Fabrikam.COM"]
        let configuration = RelayConfiguration(
            clients: [
                RelayConfiguration.Client(name: "scanners", route: "tenant", allowedSenders: ["*"], rewriteSender: "Scanner@Northwind.example"),
                RelayConfiguration.Client(name: "apps", route: "tenant", allowedSenders: ["*@apps.contoso.com", "alerts@tailspin.example", "*", "internal"]),
            ],
            routes: [tenant, RelayConfiguration.Route(name: "graph", mode: .graph)],
            dkim: [RelayConfiguration.DKIM(domain: "signing.example.", selector: "s1", privateKey: .environment("DKIM_KEY"))])
        #expect(RelayDoctorDNSChecks.senderDomains(of: configuration) == [
            "apps.contoso.com", "contoso.com", "fabrikam.com", "northwind.example", "signing.example", "tailspin.example",
        ])
        #expect(RelayDoctorDNSChecks.senderDomains(of: RelayConfiguration()) == [])
    }
}
