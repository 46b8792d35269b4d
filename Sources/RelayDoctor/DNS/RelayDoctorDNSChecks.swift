import Foundation
import M365Delivery
import RelayCore
import RelayDNS

/// The checklist's "Domain and DNS" step: for each sender domain, what
/// Microsoft 365 and receivers need to find in DNS for the relay's mail to be
/// delivered and to pass SPF, DKIM and DMARC.
///
/// One row per check per domain, in this order: MX; the SPF record, its
/// Microsoft 365 include, the relay's public address (when a `connector` or
/// `direct-send` route exists), its lookup count; the Microsoft 365 DKIM
/// selectors; each of the relay's own DKIM keys; DMARC; MTA-STS and TLS-RPT
/// (information only). A DNS server that does not answer makes the row that
/// needed the answer `fail`, never `pass`; rows that depend on it `skip`.
public enum RelayDoctorDNSChecks {
    /// The include that authorises Microsoft 365's outbound servers.
    /// - SeeAlso: M365.md; Microsoft Learn, "Set up SPF to identify valid email sources for your Microsoft 365 domain"
    public static let microsoftSPFInclude = "spf.protection.outlook.com"

    /// The rows for `domains` (lower-cased, each once, in the order given).
    ///
    /// - Parameters:
    ///   - dkimPublicKeys: the public keys of the configuration's `dkim`
    ///     entries that could be read; an entry without one gets a `skip` row.
    public static func rows(
        configuration: RelayConfiguration, domains: [String], resolver: any RelayDNSResolver, dkimPublicKeys: [RelayDKIMPublishedKey]
    ) async -> [RelayDoctorRow] {
        var unique: [String] = []
        for domain in domains.map(normalisedDomain) where !domain.isEmpty && !unique.contains(domain) {
            unique.append(domain)
        }
        let server = serverDescription(resolver: resolver, configuration: configuration)
        // Domains are independent: ask for them at once so that a slow server costs one timeout, not one per domain.
        return await withTaskGroup(of: (Int, [RelayDoctorRow]).self) { group in
            for (index, domain) in unique.enumerated() {
                group.addTask {
                    var check = RelayDoctorDomainCheck(
                        domain: domain, configuration: configuration, resolver: resolver, server: server, dkimPublicKeys: dkimPublicKeys)
                    return (index, await check.rows())
                }
            }
            var results: [(Int, [RelayDoctorRow])] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
    }

    /// The domains the relay sends for: each client's `rewrite_sender` domain
    /// and the domains of its `allowed_senders` patterns (`*@contoso.com`,
    /// `user@contoso.com`; not `*`), each route's `domain` and
    /// `accepted_domains`, and each `dkim` entry's domain. Sorted, each once, lower-cased.
    public static func senderDomains(of configuration: RelayConfiguration) -> [String] {
        var domains = Set<String>()
        func add(address: String) {
            guard let at = address.lastIndex(of: "@") else { return }
            add(domain: String(address[address.index(after: at)...]))
        }
        func add(domain: String) {
            let domain = normalisedDomain(domain)
            // A pattern's domain part is literal; anything with a wildcard or no dot names no domain to look up.
            guard !domain.isEmpty, !domain.contains("*"), domain.contains(".") else { return }
            domains.insert(domain)
        }
        for client in configuration.clients {
            if let rewrite = client.rewriteSender { add(address: rewrite) }
            for pattern in client.allowedSenders where pattern != "*" { add(address: pattern) }
        }
        for route in configuration.routes {
            if let domain = route.domain { add(domain: domain) }
            route.acceptedDomains.forEach(add(domain:))
        }
        for entry in configuration.dkim { add(domain: entry.domain) }
        return domains.sorted()
    }

    static func normalisedDomain(_ domain: String) -> String {
        let trimmed = domain.trimmingCharacters(in: .whitespaces).lowercased()
        return trimmed.hasSuffix(".") ? String(trimmed.dropLast()) : trimmed
    }

    /// The DNS server the rows name when it did not answer.
    static func serverDescription(resolver: any RelayDNSResolver, configuration: RelayConfiguration) -> String {
        if let client = resolver as? RelayDNSClient { return client.serverDescription }
        if let server = configuration.dns.server { return server.description }
        return "the system resolver"
    }

    /// Whether an MX host is Exchange Online Protection: the classic
    /// `*.mail.protection.outlook.com`, or `*.mx.microsoft`, the form Microsoft
    /// gives domains with inbound DNSSEC and DANE.
    static func isMicrosoftMX(_ host: String) -> Bool {
        host.hasSuffix(".mail.protection.outlook.com") || host.hasSuffix(".mx.microsoft")
    }

    /// Whether a DKIM selector CNAME target is Microsoft 365's:
    /// `selector1-contoso-com._domainkey.contoso.onmicrosoft.com`, or the newer
    /// `selector1-contoso-com._domainkey.contoso.n-v1.dkim.mail.microsoft`.
    static func isMicrosoftDKIMTarget(_ target: String, selector: String) -> Bool {
        guard target.hasPrefix(selector + "-"), target.contains("._domainkey.") else { return false }
        return target.hasSuffix(".onmicrosoft.com") || target.hasSuffix(".dkim.mail.microsoft")
    }
}

/// The checks of one domain, sharing one cache of DNS answers.
struct RelayDoctorDomainCheck {
    let domain: String
    let configuration: RelayConfiguration
    let server: String
    let dkimPublicKeys: [RelayDKIMPublishedKey]
    var evaluator: RelaySPFEvaluator
    var rows: [RelayDoctorRow] = []

    init(domain: String, configuration: RelayConfiguration, resolver: any RelayDNSResolver, server: String, dkimPublicKeys: [RelayDKIMPublishedKey]) {
        self.domain = domain
        self.configuration = configuration
        self.server = server
        self.dkimPublicKeys = dkimPublicKeys
        evaluator = RelaySPFEvaluator(resolver: resolver)
    }

    mutating func rows() async -> [RelayDoctorRow] {
        rows = []
        await checkMX()
        await checkSPF()
        await checkMicrosoftDKIM(selector: "selector1")
        await checkMicrosoftDKIM(selector: "selector2")
        for entry in configuration.dkim where RelayDoctorDNSChecks.normalisedDomain(entry.domain) == domain {
            await checkRelayDKIM(entry)
        }
        await checkDMARC()
        await checkMTASTS()
        await checkTLSRPT()
        return rows
    }

    // MARK: - Helpers

    mutating func add(_ action: String, _ verification: String, _ result: RelayDoctorRow.Result, hint: String = "") {
        rows.append(RelayDoctorRow(step: RelayDoctorStep.dns, action: action, verification: verification, result: result, hint: hint))
    }

    /// The row for a question DNS did not answer.
    mutating func addDNSFailure(_ action: String, _ error: RelayDNSError) {
        add(action, Self.dnsFailure(error, server: server), .fail, hint: dnsFailureHint(error))
    }

    /// What to do when DNS did not answer: the server may be unreachable, or the domain's own servers broken.
    func dnsFailureHint(_ error: RelayDNSError) -> String {
        "Make sure the DNS server \(server) can resolve \(error.name) (\(error.type.rawValue)), or point doctor at another resolver (dns.server in the configuration, or doctor --dns-server), then run doctor again"
    }

    static func dnsFailure(_ error: RelayDNSError, server: String) -> String {
        let text = "could not ask DNS: \(error)"
        return error.reason.contains(server) ? text : text + " (DNS server \(server))"
    }

    /// TXT records of `name`; none when the name does not exist.
    mutating func texts(_ name: String) async throws(RelayDNSError) -> [String] {
        try await evaluator.lookup(name, .txt).records.compactMap { record in
            if case .txt(let text) = record { return text }
            return nil
        }
    }

    static func quoted(_ texts: [String]) -> String {
        texts.map { "\"\($0)\"" }.joined(separator: ", ")
    }

    // MARK: - MX

    mutating func checkMX() async {
        let action = "MX of \(domain) points at Microsoft 365"
        let expected = SMTPSubmissionTransport.tenantMXHost(forDomain: domain)
        let publish = "publish `\(domain). IN MX 0 \(expected).` (the exact host is under Microsoft 365 admin center > Settings > Domains > \(domain) > DNS records)"
        let answer: RelayDNSAnswer
        do {
            answer = try await evaluator.lookup(domain, .mx)
        } catch {
            addDNSFailure(action, error)
            return
        }
        let hosts: [(preference: Int, exchange: String)] = answer.records.compactMap { record in
            if case .mx(let preference, let exchange) = record { return (preference, exchange) }
            return nil
        }.sorted { $0.preference < $1.preference }
        guard !hosts.isEmpty else {
            let found = answer.status == .noSuchName ? "\(domain) does not exist in DNS" : "no MX record"
            add(action, found, .fail, hint: "Mail for \(domain) cannot be delivered: \(publish)")
            return
        }
        let listed = hosts.map { "MX \($0.preference) \($0.exchange)" }.joined(separator: ", ")
        let others = hosts.filter { !RelayDoctorDNSChecks.isMicrosoftMX($0.exchange) }.map(\.exchange)
        if others.isEmpty {
            add(action, listed, .pass)
        } else {
            add(action, listed, .fail,
                hint: "\(others.joined(separator: ", ")) \(others.count == 1 ? "is" : "are") not Microsoft 365: replace the MX records of \(domain) with one, priority 0: \(publish)")
        }
    }

    // MARK: - SPF

    /// The connector and Direct Send routes: they connect from the relay's
    /// own address, which SPF must then authorise.
    var directRoutes: [RelayConfiguration.Route] {
        configuration.routes.filter { $0.mode == .connector || $0.mode == .directSend }
    }

    /// `ip4:`/`ip6:` terms for the relay's public addresses.
    var publicAddressTerms: [String] {
        configuration.server.publicAddresses.map { ($0.family == .v4 ? "ip4:" : "ip6:") + $0.description }
    }

    /// The record to publish when there is none.
    var suggestedSPF: String {
        (["v=spf1", "include:" + RelayDoctorDNSChecks.microsoftSPFInclude] + (directRoutes.isEmpty ? [] : publicAddressTerms) + ["-all"])
            .joined(separator: " ")
    }

    mutating func checkSPF() async {
        let recordAction = "SPF record of \(domain)"
        let includeAction = "SPF of \(domain) includes \(RelayDoctorDNSChecks.microsoftSPFInclude)"
        let addressAction = "SPF of \(domain) authorises the relay's public address"
        let lookupsAction = "SPF of \(domain) needs at most \(RelaySPFEvaluator.lookupLimit) DNS lookups"
        var dependents = [includeAction, lookupsAction]
        if !directRoutes.isEmpty { dependents.insert(addressAction, at: 1) }
        func skipDependents(_ rows: inout [RelayDoctorRow]) {
            for action in dependents {
                rows.append(RelayDoctorRow(step: RelayDoctorStep.dns, action: action, verification: "not run", result: .skip, hint: "Fix \"\(recordAction)\" first"))
            }
        }

        let spf: [String]
        do {
            spf = try await evaluator.spfRecords(of: domain)
        } catch {
            addDNSFailure(recordAction, error)
            skipDependents(&rows)
            return
        }
        guard spf.count == 1 else {
            if spf.isEmpty {
                add(recordAction, "no TXT record starting with v=spf1", .fail,
                    hint: "Receivers cannot tell which servers may send as \(domain): publish `\(domain). IN TXT \"\(suggestedSPF)\"`")
            } else {
                add(recordAction, "\(spf.count) SPF records: \(Self.quoted(spf))", .fail,
                    hint: "More than one v=spf1 record is a permerror for every receiver (RFC 7208 §4.5): merge them into one TXT record and delete the others")
            }
            skipDependents(&rows)
            return
        }
        let record: RelaySPFRecord
        do {
            record = try RelaySPFRecord(parsing: spf[0])
        } catch {
            add(recordAction, "TXT \"\(spf[0])\": \(error.reason)", .fail,
                hint: "An invalid SPF record is a permerror for every receiver (RFC 7208 §4.6): correct it, e.g. `\(suggestedSPF)`")
            skipDependents(&rows)
            return
        }
        let analysis = await evaluator.analyse(domain: domain, record: record)
        addSPFRecordRow(recordAction, record: record, analysis: analysis)
        addIncludeRow(includeAction, record: record, analysis: analysis)
        if !directRoutes.isEmpty { await addAddressRow(addressAction, record: record) }
        addLookupsRow(lookupsAction, analysis: analysis)
    }

    mutating func addSPFRecordRow(_ action: String, record: RelaySPFRecord, analysis: RelaySPFAnalysis) {
        let shown = "TXT \"\(record.text)\""
        guard let final = analysis.finalAll else {
            add(action, shown + ": no all", .warn,
                hint: "Hosts the record does not list get neutral, which receivers treat like no SPF: end the record with -all (or ~all), e.g. `\(Self.appending("-all", to: record))`")
            return
        }
        let end = final.domain == domain ? "ends with \(final.qualifier.rawValue)all" : "ends with \(final.qualifier.rawValue)all (through redirect to \(final.domain))"
        switch final.qualifier {
        case .pass:
            add(action, shown + ": " + end, .fail,
                hint: "+all authorises every host on the internet to send as \(domain): change it to -all (or ~all)")
        case .neutral:
            add(action, shown + ": " + end, .warn,
                hint: "?all says nothing about unlisted hosts, which receivers treat like no SPF: change it to -all (or ~all)")
        case .fail, .softFail:
            add(action, shown + ": " + end, .pass)
        }
    }

    mutating func addIncludeRow(_ action: String, record: RelaySPFRecord, analysis: RelaySPFAnalysis) {
        let include = RelayDoctorDNSChecks.microsoftSPFInclude
        if record.directives.contains(where: { $0.mechanism == .include(include) }) {
            add(action, "include:\(include) in the record", .pass)
        } else if analysis.reaches(include) {
            let node = analysis.nodes.first { $0.domain == include }
            let via = node.map { ($0.path + [include]).joined(separator: " > ") } ?? include
            add(action, "included through \(via)", .pass)
        } else {
            add(action, "include:\(include) is not in the record or its includes", .fail,
                hint: "Mail Microsoft 365 sends as \(domain) fails SPF: add include:\(include) before the all: `\(Self.inserting("include:" + include, into: record))`")
        }
    }

    mutating func addAddressRow(_ action: String, record: RelaySPFRecord) async {
        let routes = directRoutes.map { "\($0.name) (\($0.mode.rawValue))" }.joined(separator: ", ")
        let addresses = configuration.server.publicAddresses
        guard !addresses.isEmpty else {
            add(action, "the relay's public address is unknown: server.public_addresses is not set", .warn,
                hint: "Routes \(routes) connect to Microsoft 365 from the relay's own address, which the SPF of \(domain) must authorise: set server.public_addresses to the address(es) Microsoft sees the relay connect from (its NAT's outside address) so that doctor can check it")
            return
        }
        var findings: [String] = []
        var missing: [String] = []
        var dnsFailure: RelayDNSError?
        var broken: [String] = []
        for address in addresses {
            let check = await evaluator.checkHost(address: address, domain: domain, record: record)
            switch check.result {
            case .pass:
                findings.append("\(address): pass (\(check.matched ?? "matched"))")
            case .temperror(let error):
                dnsFailure = dnsFailure ?? error
                findings.append("\(address): \(check.result)")
            case .permerror(let reason):
                broken.append(reason)
                findings.append("\(address): permerror (\(reason))")
            case .fail, .softFail, .neutral, .none:
                missing.append((address.family == .v4 ? "ip4:" : "ip6:") + address.description)
                findings.append("\(address): \(check.result)" + (check.matched.map { " (\($0))" } ?? ""))
            }
        }
        let verification = "check_host for routes \(routes): " + findings.joined(separator: "; ")
        if let dnsFailure {
            add(action, verification + "; " + Self.dnsFailure(dnsFailure, server: server), .fail,
                hint: dnsFailureHint(dnsFailure))
        } else if !broken.isEmpty {
            add(action, verification, .fail,
                hint: "Receivers get a permerror for the relay's mail: \(broken.joined(separator: "; ")). Fix the SPF record of \(domain) (see the other SPF rows)")
        } else if !missing.isEmpty {
            var fixed = record
            for term in missing { fixed = Self.insertingRecord(term, into: fixed) }
            add(action, verification, .fail,
                hint: "Mail the relay sends to Microsoft 365 as \(domain) fails SPF: add \(missing.joined(separator: " ")) before the all: `\(fixed.text)`")
        } else {
            add(action, verification, .pass)
        }
    }

    mutating func addLookupsRow(_ action: String, analysis: RelaySPFAnalysis) {
        let limit = RelaySPFEvaluator.lookupLimit
        let count = analysis.walkStopped ? "more than \(analysis.lookupCount)" : "\(analysis.lookupCount)"
        let chain = analysis.lookupChain
        let permanent = analysis.problems.filter(\.isPermanentError)
        if let loop = permanent.first(where: { if case .loop = $0 { true } else { false } }), case .loop(let path) = loop {
            add(action, "\(loop)", .fail,
                hint: "An include that leads back to itself never ends: every receiver returns permerror. Remove include:\(path.last ?? "") from the SPF record of \(path.dropLast().last ?? domain)")
            return
        }
        if !permanent.isEmpty {
            add(action, permanent.map(\.description).joined(separator: "; "), .fail,
                hint: "Every receiver returns permerror for \(domain): publish exactly one valid SPF record at each included domain, or remove the include")
            return
        }
        if analysis.walkStopped || analysis.lookupCount > limit {
            add(action, "\(count) DNS lookups (limit \(limit), RFC 7208 §4.6.4): \(chain)", .fail,
                hint: "Past \(limit) lookups receivers return permerror and the mail fails SPF: remove includes \(domain) does not send through, or replace includes of your own with their ip4:/ip6: ranges, until at most \(limit) remain")
            return
        }
        let errors = analysis.problems.compactMap { problem -> RelayDNSError? in
            if case .dnsError(let error) = problem { return error }
            return nil
        }
        if let error = errors.first {
            add(action, "at least \(count) DNS lookups: \(chain); " + Self.dnsFailure(error, server: server), .fail,
                hint: dnsFailureHint(error))
            return
        }
        let unevaluable = analysis.problems.filter { if case .unevaluable = $0 { true } else { false } }
        if !unevaluable.isEmpty {
            add(action, "\(count) of \(limit) DNS lookups counted: \(chain); " + unevaluable.map(\.description).joined(separator: "; "), .warn,
                hint: "The count leaves out what the macros lead to; check that the included records stay within \(limit) lookups in total")
            return
        }
        add(action, "\(count) of \(limit) DNS lookups: \(chain)", .pass)
    }

    /// The record with `term` added before its `all` (or at the end).
    static func inserting(_ term: String, into record: RelaySPFRecord) -> String {
        insertingRecord(term, into: record).text
    }

    static func insertingRecord(_ term: String, into record: RelaySPFRecord) -> RelaySPFRecord {
        var terms = record.text.split(separator: " ").map(String.init)
        let allIndex = terms.firstIndex { term in
            let body = term.first.map { "+-~?".contains($0) } == true ? String(term.dropFirst()) : term
            return body.lowercased() == "all" || body.lowercased().hasPrefix("redirect=")
        }
        terms.insert(term, at: allIndex ?? terms.endIndex)
        let text = terms.joined(separator: " ")
        return (try? RelaySPFRecord(parsing: text)) ?? record
    }

    static func appending(_ term: String, to record: RelaySPFRecord) -> String {
        (record.text.split(separator: " ").map(String.init).filter { !$0.lowercased().hasPrefix("redirect=") } + [term]).joined(separator: " ")
    }

    // MARK: - DKIM

    mutating func checkMicrosoftDKIM(selector: String) async {
        let name = "\(selector)._domainkey.\(domain)"
        let action = "DKIM \(selector) of \(domain) points at Microsoft 365"
        let enable = "Enable DKIM for \(domain) in Microsoft 365 Defender (Email & collaboration > Policies & rules > Threat policies > Email authentication settings > DKIM), or in Exchange Online PowerShell with `New-DkimSigningConfig -DomainName \(domain) -Enabled $true`, and publish the two CNAMEs it shows (`Get-DkimSigningConfig -Identity \(domain) | Format-List Selector1CNAME, Selector2CNAME`): selector1._domainkey.\(domain) and selector2._domainkey.\(domain)"
        let answer: RelayDNSAnswer
        do {
            answer = try await evaluator.lookup(name, .cname)
        } catch {
            addDNSFailure(action, error)
            return
        }
        let targets: [String] = answer.records.compactMap { record in
            if case .cname(let target) = record { return target }
            return nil
        }
        guard let target = targets.first else {
            add(action, "no CNAME at \(name)", .fail, hint: "Microsoft 365 cannot sign mail from \(domain) with its DKIM keys. " + enable)
            return
        }
        if RelayDoctorDNSChecks.isMicrosoftDKIMTarget(target, selector: selector) {
            add(action, "CNAME \(name) > \(target)", .pass)
        } else {
            add(action, "CNAME \(name) > \(target), which is not Microsoft 365's (\(selector)-...._domainkey.<tenant>.onmicrosoft.com)", .fail,
                hint: "Replace the CNAME with the one Microsoft 365 shows. " + enable)
        }
    }

    mutating func checkRelayDKIM(_ entry: RelayConfiguration.DKIM) async {
        let name = "\(entry.selector)._domainkey.\(domain)"
        let action = "DKIM key \(name) matches the relay's key"
        let setting: String
        switch entry.privateKey {
        case .file(let path): setting = "private_key_file (\(path))"
        case .environment(let variable): setting = "private_key_env (\(variable))"
        }
        guard let key = dkimPublicKeys.first(where: { $0.domain == domain && $0.selector == entry.selector }) else {
            add(action, "not run: the private key of dkim \(domain) selector \(entry.selector) could not be read", .skip,
                hint: "Fix the dkim entry's \(setting) first (step Configuration)")
            return
        }
        let publish = "publish `\(key.zoneFileLine)`"
        let texts: [String]
        do {
            texts = try await self.texts(name)
        } catch {
            addDNSFailure(action, error)
            return
        }
        // A key record has p=; v=DKIM1 is recommended but optional (RFC 6376 §3.6.1).
        let records = texts.map { (text: $0, tags: RelayDNSTagList(parsing: $0)) }.filter { $0.tags["p"] != nil || $0.tags.firstName == "v" }
        guard !records.isEmpty else {
            add(action, texts.isEmpty ? "no TXT record at \(name)" : "no DKIM key record among \(Self.quoted(texts))", .fail,
                hint: "Receivers cannot verify the relay's signatures: \(publish)")
            return
        }
        guard records.count == 1, let found = records.first else {
            add(action, "\(records.count) key records at \(name): \(Self.quoted(records.map(\.text)))", .fail,
                hint: "Receivers may pick any of them: keep one, \(publish)")
            return
        }
        let tags = found.tags
        let shown = "TXT \"\(Self.abbreviated(found.text))\""
        if let version = tags["v"], version != "DKIM1" || tags.firstName != "v" {
            add(action, shown + ": v= must be DKIM1 and come first", .fail, hint: "Receivers ignore the record: \(publish)")
            return
        }
        guard let p = tags["p"], !p.isEmpty else {
            add(action, shown + ": p= is empty, the key is revoked (RFC 6376 §3.6.1)", .fail,
                hint: "Receivers fail every signature with selector \(entry.selector): \(publish)")
            return
        }
        let keyType = (tags["k"] ?? "rsa").lowercased()
        guard keyType == key.algorithm.rawValue else {
            add(action, shown + ": k=\(keyType), but \(setting) holds an \(key.algorithm.rawValue) key", .fail,
                hint: "published key does not match private_key_file: \(publish)")
            return
        }
        if let hashes = tags["h"], !hashes.lowercased().split(separator: ":").map({ $0.trimmingCharacters(in: .whitespaces) }).contains("sha256") {
            add(action, shown + ": h=\(hashes) excludes sha256, which the relay signs with", .fail, hint: "Remove h= or include sha256: \(publish)")
            return
        }
        guard key.matches(publishedBase64: p) else {
            add(action, shown + ": p= is a different key from \(setting)", .fail,
                hint: "published key does not match private_key_file: receivers fail the relay's signatures. Publish the key of \(setting): `\(key.zoneFileLine)`")
            return
        }
        add(action, shown + ": matches \(setting)", .pass)
    }

    /// A long record, shortened for the verification column (the key is public, just long).
    static func abbreviated(_ text: String) -> String {
        text.count > 80 ? String(text.prefix(60)) + "..." + String(text.suffix(12)) : text
    }

    // MARK: - DMARC

    mutating func checkDMARC() async {
        let action = "DMARC policy of \(domain)"
        let starter = "`_dmarc.\(domain). IN TXT \"v=DMARC1; p=none; rua=mailto:dmarc@\(domain)\"`"
        // A subdomain without its own record takes its parent's `sp=` (RFC 7489 §6.6.3; the
        // organizational domain is approximated by walking up to the last two labels).
        var candidate = domain
        var inherited = false
        var records: [String] = []
        while true {
            let name = "_dmarc.\(candidate)"
            do {
                records = try await texts(name).filter { RelayDNSTagList(parsing: $0).tags.first.map { $0.name == "v" && $0.value.uppercased() == "DMARC1" } ?? false }
            } catch {
                addDNSFailure(action, error)
                return
            }
            let labels = candidate.split(separator: ".")
            guard records.isEmpty, labels.count > 2 else { break }
            candidate = labels.dropFirst().joined(separator: ".")
            inherited = true
        }
        let name = "_dmarc.\(candidate)"
        guard !records.isEmpty else {
            add(action, "no DMARC record at _dmarc.\(domain)\(inherited ? " or its parent domains" : "")", .fail,
                hint: "Receivers apply no policy and send no reports: publish \(starter) to start monitoring, read the reports, then move to p=quarantine and p=reject")
            return
        }
        guard records.count == 1 else {
            add(action, "\(records.count) DMARC records at \(name): \(Self.quoted(records))", .fail,
                hint: "With more than one record receivers apply no DMARC (RFC 7489 §6.6.3): keep one")
            return
        }
        let tags = RelayDNSTagList(parsing: records[0])
        let policyTag = inherited ? (tags["sp"] ?? tags["p"]) : tags["p"]
        let policy = policyTag?.lowercased()
        let adkim = tags["adkim"]?.lowercased() == "s" ? "strict" : "relaxed"
        let aspf = tags["aspf"]?.lowercased() == "s" ? "strict" : "relaxed"
        var facts = ["p=\(policy ?? "missing")", "adkim=\(adkim)", "aspf=\(aspf)", "rua=\(tags["rua"] ?? "none")"]
        if let pct = tags["pct"], pct != "100" { facts.append("pct=\(pct)") }
        let source = inherited ? "TXT \"\(records[0])\" at \(name) (inherited\(tags["sp"] != nil ? " through sp=" : ""))" : "TXT \"\(records[0])\""
        let verification = source + ": " + facts.joined(separator: ", ")
        let reports = tags["rua"] == nil ? "; add rua=mailto:dmarc@\(candidate) to receive aggregate reports" : ""
        switch policy {
        case "quarantine", "reject":
            add(action, verification, .pass)
        case "none":
            add(action, verification, .warn,
                hint: "p=none is monitoring only: receivers deliver mail that fails DMARC. Once the reports show all legitimate mail passing, move \(name) to p=quarantine, then p=reject\(reports)")
        default:
            add(action, verification, .fail,
                hint: "p= is \(policyTag.map { "`\($0)`, not a policy" } ?? "missing"): receivers may ignore the record. Start with \(starter), then move to p=quarantine")
        }
    }

    // MARK: - MTA-STS and TLS-RPT

    mutating func checkMTASTS() async {
        let name = "_mta-sts.\(domain)"
        await reportInformationalRecord(
            name: name, action: "MTA-STS of \(domain)", version: "STSv1",
            describe: { "published (id=\($0["id"] ?? "missing"))" },
            hint: "Optional: MTA-STS (RFC 8461) makes senders require TLS to your MX. Publish `\(name). IN TXT \"v=STSv1; id=<date>\"` and the policy at https://mta-sts.\(domain)/.well-known/mta-sts.txt")
    }

    mutating func checkTLSRPT() async {
        let name = "_smtp._tls.\(domain)"
        await reportInformationalRecord(
            name: name, action: "TLS-RPT of \(domain)", version: "TLSRPTv1",
            describe: { "reports go to \($0["rua"] ?? "nowhere (rua= missing)")" },
            hint: "Optional: TLS-RPT (RFC 8460) gets you reports of TLS failures delivering to \(domain). Publish `\(name). IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@\(domain)\"`")
    }

    /// A TXT record reported for information only (never a failure): found with
    /// `describe`'s summary of its tags, or missing with `hint`.
    private mutating func reportInformationalRecord(
        name: String, action: String, version: String,
        describe: (RelayDNSTagList) -> String, hint: String
    ) async {
        let texts: [String]
        do {
            texts = try await self.texts(name)
        } catch {
            addDNSFailure(action, error)
            return
        }
        if let record = texts.first(where: { RelayDNSTagList(parsing: $0)["v"] == version }) {
            add(action, "TXT \"\(record)\" at \(name): \(describe(RelayDNSTagList(parsing: record)))", .info)
        } else {
            add(action, "no v=\(version) record at \(name)", .info, hint: hint)
        }
    }
}
