import RelayCore
import RelayDNS

/// Follows an SPF record through DNS: the structure of its include tree
/// (``analyse(domain:record:)``) and the result for one address (``checkHost(address:domain:record:)``).
///
/// Answers are cached for the life of the evaluator, so the checks of one
/// domain ask DNS once per name and type.
/// - SeeAlso: RFC 7208 §4 (check_host), §4.6.4 (DNS lookup limits), §5.2 (include), §6.1 (redirect)
public struct RelaySPFEvaluator: Sendable {
    /// Terms that ask DNS (include, a, mx, ptr, exists, redirect) allowed in
    /// one evaluation, nested includes counted; one more is a permerror.
    /// - SeeAlso: RFC 7208 §4.6.4
    public static let lookupLimit = 10
    /// Names an `mx` mechanism may resolve to addresses (RFC 7208 §4.6.4).
    public static let mxAddressLookupLimit = 10
    /// Terms whose lookup finds nothing (no such name, or no records), per
    /// evaluation; one more is a permerror, as receivers such as pyspf and
    /// OpenSPF enforce. RFC 7208 §4.6.4 recommends two.
    public static let voidLookupLimit = 2
    /// The analysis stops following includes past this many lookups: enough to
    /// show how far over the limit a record is without walking a hostile tree for ever.
    static let analysisLookupBound = 40

    let resolver: any RelayDNSResolver
    var cache: [CacheKey: Result<RelayDNSAnswer, RelayDNSError>] = [:]
    /// `h` in macros, when known.
    public var helo: String?
    /// Void lookups of the current check_host.
    private var voidLookups = 0

    struct CacheKey: Hashable, Sendable {
        var name: String
        var type: RelayDNSRecordType
    }

    public init(resolver: any RelayDNSResolver, helo: String? = nil) {
        self.resolver = resolver
        self.helo = helo
    }

    /// One answer, asked once.
    mutating func lookup(_ name: String, _ type: RelayDNSRecordType) async throws(RelayDNSError) -> RelayDNSAnswer {
        let key = CacheKey(name: Self.normalised(name), type: type)
        if let cached = cache[key] { return try cached.get() }
        let result: Result<RelayDNSAnswer, RelayDNSError>
        do {
            result = .success(try await resolver.lookup(key.name, type))
        } catch {
            result = .failure(error)
        }
        cache[key] = result
        return try result.get()
    }

    /// The SPF records among `domain`'s TXT records (none when the name does not exist).
    public mutating func spfRecords(of domain: String) async throws(RelayDNSError) -> [String] {
        let answer = try await lookup(domain, .txt)
        return RelaySPFRecord.spfRecords(among: answer.records.compactMap { record in
            if case .txt(let text) = record { return text }
            return nil
        })
    }

    static func normalised(_ name: String) -> String {
        let lower = name.lowercased()
        return lower.hasSuffix(".") ? String(lower.dropLast()) : lower
    }

    // MARK: - The include tree

    /// Walks the include and redirect tree of `domain`'s record: what it costs
    /// in lookups, which domains it reaches, and what is broken in it.
    public mutating func analyse(domain: String, record: RelaySPFRecord) async -> RelaySPFAnalysis {
        var analysis = RelaySPFAnalysis()
        await walk(domain: Self.normalised(domain), record: record, path: [], into: &analysis)
        analysis.finalAll = finalAll(of: Self.normalised(domain), record: record, analysis: analysis)
        return analysis
    }

    private mutating func walk(domain: String, record: RelaySPFRecord, path: [String], into analysis: inout RelaySPFAnalysis) async {
        let reached = Self.reachedDirectives(record)
        let followsRedirect = record.allDirective == nil && record.redirect != nil
        var lookupTerms = reached.filter(\.mechanism.countsAsLookup).map(\.description)
        if followsRedirect, let redirect = record.redirect { lookupTerms.append("redirect=" + redirect) }
        analysis.nodes.append(RelaySPFAnalysis.Node(domain: domain, path: path, lookupTerms: lookupTerms))
        analysis.lookupCount += lookupTerms.count
        analysis.records[domain] = record

        var targets: [(term: String, spec: String)] = reached.compactMap { directive in
            if case .include(let spec) = directive.mechanism { return (directive.description, spec) }
            return nil
        }
        if followsRedirect, let redirect = record.redirect { targets.append(("redirect=" + redirect, redirect)) }
        let context = RelaySPFMacroContext(domain: domain, helo: helo)
        let here = path + [domain]
        for (term, spec) in targets {
            guard analysis.lookupCount <= Self.analysisLookupBound else {
                analysis.walkStopped = true
                return
            }
            guard let target = context.expand(spec).map(Self.normalised) else {
                analysis.problems.append(.unevaluable(domain: domain, term: term))
                continue
            }
            analysis.targets.append(target)
            if here.contains(target) {
                analysis.problems.append(.loop(here + [target]))
                continue
            }
            let texts: [String]
            do {
                texts = try await spfRecords(of: target)
            } catch {
                analysis.problems.append(.dnsError(error))
                continue
            }
            guard texts.count == 1 else {
                analysis.problems.append(texts.isEmpty ? .noRecord(domain: target, via: here) : .multipleRecords(domain: target, via: here))
                continue
            }
            do {
                let nested = try RelaySPFRecord(parsing: texts[0])
                await walk(domain: target, record: nested, path: here, into: &analysis)
            } catch {
                analysis.problems.append(.syntax(domain: target, via: here, reason: error.reason))
            }
        }
    }

    /// The directives evaluation can reach: up to and including the first `all` (RFC 7208 §5.1).
    static func reachedDirectives(_ record: RelaySPFRecord) -> [RelaySPFRecord.Directive] {
        guard let index = record.directives.firstIndex(where: { $0.mechanism == .all }) else { return record.directives }
        return Array(record.directives[...index])
    }

    /// The `all` that ends the record, through `redirect=` when it has none.
    private func finalAll(of domain: String, record: RelaySPFRecord, analysis: RelaySPFAnalysis) -> RelaySPFAnalysis.FinalAll? {
        var current = (domain: domain, record: record)
        var seen: Set<String> = [domain]
        while true {
            if let all = current.record.allDirective { return .init(qualifier: all.qualifier, domain: current.domain) }
            guard let redirect = current.record.redirect,
                  let target = RelaySPFMacroContext(domain: current.domain, helo: helo).expand(redirect).map(Self.normalised),
                  seen.insert(target).inserted, let next = analysis.records[target]
            else { return nil }
            current = (target, next)
        }
    }

    // MARK: - check_host for one address

    /// What a receiver's SPF check would say for mail from `address` claiming `domain`.
    ///
    /// `ptr` mechanisms never match here (`doctor` does no reverse lookups;
    /// RFC 7208 §5.5 asks publishers not to use them anyway).
    public mutating func checkHost(address: RelayIPAddress, domain: String, record: RelaySPFRecord) async -> RelaySPFCheck {
        var lookups = 0
        voidLookups = 0
        let (result, matched) = await evaluate(address: address, domain: Self.normalised(domain), record: record, path: [], lookups: &lookups)
        return RelaySPFCheck(address: address, result: result, matched: matched, lookups: lookups)
    }

    private mutating func evaluate(
        address: RelayIPAddress, domain: String, record: RelaySPFRecord, path: [String], lookups: inout Int
    ) async -> (RelaySPFCheck.Result, String?) {
        let context = RelaySPFMacroContext(domain: domain, address: address, helo: helo)
        let here = path + [domain]
        func located(_ term: String) -> String { "\(term) in \(domain)" }
        for directive in record.directives {
            if directive.mechanism.countsAsLookup {
                lookups += 1
                if lookups > Self.lookupLimit {
                    return (.permerror("more than \(Self.lookupLimit) DNS lookups (RFC 7208 §4.6.4)"), nil)
                }
            }
            let matches: Bool
            switch directive.mechanism {
            case .all:
                matches = true
            case .ip4(let network), .ip6(let network):
                matches = network.contains(address)
            case .a(let spec, let v4, let v6):
                guard let target = context.expand(spec ?? domain) else { return (.permerror("cannot expand `\(directive)`"), nil) }
                switch await addresses(of: target, family: address.family) {
                case .failure(let error): return (.temperror(error), nil)
                case .success(let found):
                    if let limit = countVoid(found.isEmpty) { return (limit, nil) }
                    matches = Self.contains(found, address, v4, v6)
                }
            case .mx(let spec, let v4, let v6):
                guard let target = context.expand(spec ?? domain) else { return (.permerror("cannot expand `\(directive)`"), nil) }
                let exchanges: [String]
                do {
                    exchanges = try await lookup(target, .mx).records.compactMap { record in
                        if case .mx(_, let exchange) = record { return exchange }
                        return nil
                    }
                } catch {
                    return (.temperror(error), nil)
                }
                if let limit = countVoid(exchanges.isEmpty) { return (limit, nil) }
                guard exchanges.count <= Self.mxAddressLookupLimit else {
                    return (.permerror("`\(directive)` in \(domain) names more than \(Self.mxAddressLookupLimit) MX hosts (RFC 7208 §4.6.4)"), nil)
                }
                var found = false
                for exchange in exchanges where !found {
                    switch await addresses(of: exchange, family: address.family) {
                    case .failure(let error): return (.temperror(error), nil)
                    case .success(let addresses): found = Self.contains(addresses, address, v4, v6)
                    }
                }
                matches = found
            case .ptr:
                matches = false
            case .exists(let spec):
                guard let target = context.expand(spec) else { return (.permerror("cannot expand `\(directive)`"), nil) }
                do {
                    matches = try await !lookup(target, .a).records.isEmpty
                } catch {
                    return (.temperror(error), nil)
                }
                if let limit = countVoid(!matches) { return (limit, nil) }
            case .include(let spec):
                guard let target = context.expand(spec).map(Self.normalised) else { return (.permerror("cannot expand `\(directive)`"), nil) }
                let (inner, innerMatch) = await evaluateNested(address: address, target: target, term: directive.description, from: domain, path: here, lookups: &lookups)
                switch inner {
                case .pass:
                    return (directive.qualifier.checkResult, located(directive.description) + (innerMatch.map { " > " + $0 } ?? ""))
                case .fail, .softFail, .neutral:
                    matches = false
                case .none:
                    // RFC 7208 §5.2: an include whose domain has no record is a permerror.
                    return (.permerror("\(target), included by \(domain), has no SPF record"), nil)
                case .permerror, .temperror:
                    return (inner, innerMatch)
                }
            }
            if matches { return (directive.qualifier.checkResult, located(directive.description)) }
        }
        if let redirect = record.redirect {
            lookups += 1
            if lookups > Self.lookupLimit { return (.permerror("more than \(Self.lookupLimit) DNS lookups (RFC 7208 §4.6.4)"), nil) }
            guard let target = context.expand(redirect).map(Self.normalised) else { return (.permerror("cannot expand redirect=\(redirect)"), nil) }
            let (result, matched) = await evaluateNested(address: address, target: target, term: "redirect=" + redirect, from: domain, path: here, lookups: &lookups)
            // RFC 7208 §6.1: a redirect to a domain without a record is a permerror.
            if case .none = result { return (.permerror("\(target), the redirect of \(domain), has no SPF record"), nil) }
            return (result, matched.map { located("redirect=" + redirect) + " > " + $0 })
        }
        return (.neutral, nil)
    }

    /// Counts a term's lookup that found nothing; the permerror once there are too many.
    private mutating func countVoid(_ isVoid: Bool) -> RelaySPFCheck.Result? {
        guard isVoid else { return nil }
        voidLookups += 1
        guard voidLookups > Self.voidLookupLimit else { return nil }
        return .permerror("more than \(Self.voidLookupLimit) void DNS lookups (RFC 7208 §4.6.4)")
    }

    /// check_host of an include or redirect target.
    private mutating func evaluateNested(
        address: RelayIPAddress, target: String, term: String, from domain: String, path: [String], lookups: inout Int
    ) async -> (RelaySPFCheck.Result, String?) {
        if path.contains(target) {
            return (.permerror("`\(term)` in \(domain) loops back: \((path + [target]).joined(separator: " > "))"), nil)
        }
        let texts: [String]
        do {
            texts = try await spfRecords(of: target)
        } catch {
            return (.temperror(error), nil)
        }
        if texts.isEmpty { return (.none, nil) }
        guard texts.count == 1 else { return (.permerror("\(target) publishes \(texts.count) SPF records"), nil) }
        let nested: RelaySPFRecord
        do {
            nested = try RelaySPFRecord(parsing: texts[0])
        } catch {
            return (.permerror("the SPF record of \(target): \(error.reason)"), nil)
        }
        return await evaluate(address: address, domain: target, record: nested, path: path, lookups: &lookups)
    }

    private mutating func addresses(of name: String, family: RelayIPAddress.Family) async -> Result<[RelayIPAddress], RelayDNSError> {
        do {
            let answer = try await lookup(name, family == .v4 ? .a : .aaaa)
            return .success(answer.records.compactMap { record in
                switch record {
                case .a(let text), .aaaa(let text): RelayIPAddress(parsing: text)
                default: nil
                }
            })
        } catch {
            return .failure(error)
        }
    }

    /// Whether `address` is within the given prefix of any of `found` (RFC 7208 §5.6: the CIDR applies to each address).
    static func contains(_ found: [RelayIPAddress], _ address: RelayIPAddress, _ v4: Int?, _ v6: Int?) -> Bool {
        found.contains { candidate in
            guard candidate.family == address.family else { return false }
            let prefix = candidate.family == .v4 ? (v4 ?? 32) : (v6 ?? 128)
            return RelayNetwork(address: candidate, prefixLength: prefix).contains(address)
        }
    }
}

/// The include tree of an SPF record, from ``RelaySPFEvaluator/analyse(domain:record:)``.
public struct RelaySPFAnalysis: Sendable, Hashable {
    /// One record of the tree, in depth-first order (the top record first).
    public struct Node: Sendable, Hashable {
        public var domain: String
        /// The domains from the top record to the one that included this one.
        public var path: [String]
        /// The terms of this record that ask DNS.
        public var lookupTerms: [String]
    }

    /// Something that makes evaluation fail for every receiver.
    public enum Problem: Sendable, Hashable, CustomStringConvertible {
        /// An include or redirect that leads back to a record on its own path.
        case loop([String])
        /// An include or redirect target without an SPF record (permerror, RFC 7208 §5.2, §6.1).
        case noRecord(domain: String, via: [String])
        /// An include or redirect target with more than one SPF record (permerror, RFC 7208 §4.5).
        case multipleRecords(domain: String, via: [String])
        /// A nested record that does not parse.
        case syntax(domain: String, via: [String], reason: String)
        /// A target that uses macros only a real message can fill in; not followed.
        case unevaluable(domain: String, term: String)
        /// DNS did not answer for a nested record.
        case dnsError(RelayDNSError)

        public var description: String {
            switch self {
            case .loop(let path):
                "include loop: \(path.joined(separator: " > "))"
            case .noRecord(let domain, let via):
                "\(domain) (included by \(via.last ?? "?")) has no SPF record: a permerror for every receiver"
            case .multipleRecords(let domain, let via):
                "\(domain) (included by \(via.last ?? "?")) has more than one SPF record: a permerror (RFC 7208 §4.5)"
            case .syntax(let domain, let via, let reason):
                "the SPF record of \(domain) (included by \(via.last ?? "?")) is invalid: \(reason)"
            case .unevaluable(let domain, let term):
                "`\(term)` in \(domain) uses macros that depend on the message; not followed"
            case .dnsError(let error):
                "could not ask DNS: \(error)"
            }
        }

        /// Whether it breaks SPF (as opposed to just limiting what doctor could see).
        public var isPermanentError: Bool {
            switch self {
            case .loop, .noRecord, .multipleRecords, .syntax: true
            case .unevaluable, .dnsError: false
            }
        }
    }

    /// The `all` evaluation ends with and the record it is in.
    public struct FinalAll: Sendable, Hashable {
        public var qualifier: RelaySPFRecord.Qualifier
        public var domain: String
    }

    public var nodes: [Node] = []
    public var problems: [Problem] = []
    /// Terms asking DNS across the tree as walked: the worst case a receiver evaluates.
    public var lookupCount = 0
    /// True when the walk stopped early: the real count is higher still.
    public var walkStopped = false
    /// Every include and redirect target reached, in walk order.
    public var targets: [String] = []
    /// The `all` of the record (through `redirect=`); nil means evaluation ends in `neutral`.
    public var finalAll: FinalAll?
    /// The records read, by domain.
    var records: [String: RelaySPFRecord] = [:]

    /// Whether `domain` is included or redirected to anywhere in the tree.
    public func reaches(_ domain: String) -> Bool {
        targets.contains(RelaySPFEvaluator.normalised(domain))
    }

    /// Where the lookups come from: `contoso.com 3; a.example (via contoso.com) 4; ...`.
    public var lookupChain: String {
        nodes.map { node in
            node.domain + (node.path.isEmpty ? "" : " (via \(node.path.joined(separator: " > ")))") + " \(node.lookupTerms.count)"
        }.joined(separator: "; ")
    }
}

/// The outcome of check_host for one address.
public struct RelaySPFCheck: Sendable, Hashable {
    /// RFC 7208 §2.6.
    public enum Result: Sendable, Hashable, CustomStringConvertible {
        case pass, fail, softFail, neutral, none
        case permerror(String)
        case temperror(RelayDNSError)

        public var description: String {
            switch self {
            case .pass: "pass"
            case .fail: "fail"
            case .softFail: "softfail"
            case .neutral: "neutral"
            case .none: "none"
            case .permerror(let reason): "permerror (\(reason))"
            case .temperror(let error): "temperror (could not ask DNS: \(error))"
            }
        }
    }

    public var address: RelayIPAddress
    public var result: Result
    /// The term that decided, with the records it went through, e.g. `include:relay.example in contoso.com > ip4:203.0.113.5 in relay.example`.
    public var matched: String?
    /// Lookups this evaluation needed.
    public var lookups: Int
}

extension RelaySPFRecord.Qualifier {
    var checkResult: RelaySPFCheck.Result {
        switch self {
        case .pass: .pass
        case .fail: .fail
        case .softFail: .softFail
        case .neutral: .neutral
        }
    }
}
