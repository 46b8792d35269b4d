import Foundation
import RelayCore

/// One SPF record, parsed into its terms.
///
/// Parsing checks the grammar only; what the terms point at is looked up by
/// ``RelaySPFEvaluator``. Macros (`%{d}`) are kept as written and expanded by
/// the evaluator where it can.
/// - SeeAlso: RFC 7208 §4.5 (selecting records), §4.6.1 (term syntax), §5 (mechanisms), §6 (modifiers)
public struct RelaySPFRecord: Sendable, Hashable, CustomStringConvertible {
    /// What a matching mechanism makes the result. Written before the
    /// mechanism; absent means `+`.
    public enum Qualifier: String, Sendable, Hashable, CaseIterable {
        case pass = "+"
        case fail = "-"
        case softFail = "~"
        case neutral = "?"
    }

    /// RFC 7208 §5. Domains are kept as written (lower-cased); nil means "the current domain".
    public enum Mechanism: Sendable, Hashable, CustomStringConvertible {
        case all
        case include(String)
        case a(domain: String?, ipv4Prefix: Int?, ipv6Prefix: Int?)
        case mx(domain: String?, ipv4Prefix: Int?, ipv6Prefix: Int?)
        case ptr(domain: String?)
        case ip4(RelayNetwork)
        case ip6(RelayNetwork)
        case exists(String)

        /// Whether evaluating it asks DNS, which counts against the limit of 10
        /// (RFC 7208 §4.6.4: include, a, mx, ptr and exists; plus redirect).
        public var countsAsLookup: Bool {
            switch self {
            case .include, .a, .mx, .ptr, .exists: true
            case .all, .ip4, .ip6: false
            }
        }

        public var description: String {
            func cidr(_ v4: Int?, _ v6: Int?) -> String {
                (v4.map { "/\($0)" } ?? "") + (v6.map { "//\($0)" } ?? "")
            }
            switch self {
            case .all: return "all"
            case .include(let domain): return "include:" + domain
            case .a(let domain, let v4, let v6): return "a" + (domain.map { ":" + $0 } ?? "") + cidr(v4, v6)
            case .mx(let domain, let v4, let v6): return "mx" + (domain.map { ":" + $0 } ?? "") + cidr(v4, v6)
            case .ptr(let domain): return "ptr" + (domain.map { ":" + $0 } ?? "")
            case .ip4(let network): return "ip4:" + (network.prefixLength == 32 ? network.address.description : network.description)
            case .ip6(let network): return "ip6:" + (network.prefixLength == 128 ? network.address.description : network.description)
            case .exists(let domain): return "exists:" + domain
            }
        }
    }

    public struct Directive: Sendable, Hashable, CustomStringConvertible {
        public var qualifier: Qualifier
        public var mechanism: Mechanism

        public init(_ qualifier: Qualifier = .pass, _ mechanism: Mechanism) {
            self.qualifier = qualifier
            self.mechanism = mechanism
        }

        public var description: String {
            (qualifier == .pass ? "" : qualifier.rawValue) + mechanism.description
        }
    }

    /// The record as published.
    public var text: String
    /// The mechanisms in order: the first that matches decides.
    public var directives: [Directive]
    /// `redirect=`: used when no mechanism matches (and there is no `all`).
    public var redirect: String?
    /// `exp=`: where the explanation for a `fail` is.
    public var explanation: String?

    /// Whether a TXT record is an SPF record: `v=spf1` (any case) followed by a
    /// space or the end. `v=spf10` is not one.
    /// - SeeAlso: RFC 7208 §4.5
    public static func isSPF(_ text: String) -> Bool {
        let prefix = "v=spf1"
        guard text.utf8.count >= prefix.utf8.count, text.prefix(prefix.count).lowercased() == prefix else { return false }
        let rest = text.dropFirst(prefix.count)
        return rest.isEmpty || rest.first == " "
    }

    /// The SPF records among a name's TXT records.
    public static func spfRecords(among texts: [String]) -> [String] {
        texts.filter(isSPF)
    }

    /// Parses an SPF record; the error is a permerror's reason (RFC 7208 §4.6).
    public init(parsing text: String) throws(RelaySPFSyntaxError) {
        guard Self.isSPF(text) else { throw RelaySPFSyntaxError("the record does not start with v=spf1") }
        self.text = text
        directives = []
        redirect = nil
        explanation = nil
        // RFC 7208 §4.6.1: terms are separated by one or more spaces.
        for term in text.dropFirst("v=spf1".count).split(separator: " ") {
            try parseTerm(String(term))
        }
    }

    public var description: String { text }

    /// The `all` directive, if the record has one. Terms after it are never reached (RFC 7208 §5.1).
    public var allDirective: Directive? {
        directives.first { $0.mechanism == .all }
    }

    private mutating func parseTerm(_ term: String) throws(RelaySPFSyntaxError) {
        // A modifier's name ends at `=`; a mechanism's at `:` or `/`, or the term's end.
        let nameEnd = term.firstIndex { $0 == "=" || $0 == ":" || $0 == "/" }
        if let nameEnd, term[nameEnd] == "=" {
            try parseModifier(name: term[..<nameEnd].lowercased(), value: String(term[term.index(after: nameEnd)...]), term: term)
            return
        }
        var body = Substring(term)
        var qualifier = Qualifier.pass
        if let first = body.first, let given = Qualifier(rawValue: String(first)) {
            qualifier = given
            body = body.dropFirst()
        }
        let nameLength = body.firstIndex { $0 == ":" || $0 == "/" }.map { body.distance(from: body.startIndex, to: $0) } ?? body.count
        let name = body.prefix(nameLength).lowercased()
        let argument = body.dropFirst(nameLength)
        directives.append(Directive(qualifier, try Self.mechanism(name: name, argument: argument, term: term)))
    }

    private mutating func parseModifier(name: String, value: String, term: String) throws(RelaySPFSyntaxError) {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic, first.isASCII,
              name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) })
        else { throw RelaySPFSyntaxError("`\(term)` is neither a mechanism nor a modifier") }
        switch name {
        case "redirect":
            // RFC 7208 §6: each of these modifiers at most once.
            guard redirect == nil else { throw RelaySPFSyntaxError("redirect= is given more than once") }
            redirect = try Self.domainSpec(value, term: term)
        case "exp":
            guard explanation == nil else { throw RelaySPFSyntaxError("exp= is given more than once") }
            explanation = try Self.domainSpec(value, term: term)
        default:
            // RFC 7208 §6: unknown modifiers are ignored.
            break
        }
    }

    private static func mechanism(name: String, argument: Substring, term: String) throws(RelaySPFSyntaxError) -> Mechanism {
        switch name {
        case "all":
            guard argument.isEmpty else { throw RelaySPFSyntaxError("`\(term)`: all takes no argument") }
            return .all
        case "include", "exists":
            guard argument.first == ":" else { throw RelaySPFSyntaxError("`\(term)`: \(name) needs :domain") }
            let domain = try domainSpec(String(argument.dropFirst()), term: term)
            return name == "include" ? .include(domain) : .exists(domain)
        case "a", "mx":
            var rest = argument
            let (v4, v6) = try dualCIDR(&rest, term: term)
            var domain: String?
            if !rest.isEmpty {
                guard rest.first == ":" else { throw RelaySPFSyntaxError("`\(term)` is not a valid \(name) mechanism") }
                domain = try domainSpec(String(rest.dropFirst()), term: term)
            }
            return name == "a" ? .a(domain: domain, ipv4Prefix: v4, ipv6Prefix: v6) : .mx(domain: domain, ipv4Prefix: v4, ipv6Prefix: v6)
        case "ptr":
            if argument.isEmpty { return .ptr(domain: nil) }
            guard argument.first == ":" else { throw RelaySPFSyntaxError("`\(term)` is not a valid ptr mechanism") }
            return .ptr(domain: try domainSpec(String(argument.dropFirst()), term: term))
        case "ip4", "ip6":
            guard argument.first == ":", let network = RelayNetwork(parsing: String(argument.dropFirst())) else {
                throw RelaySPFSyntaxError("`\(term)` is not a valid \(name) network")
            }
            // The address must be of the mechanism's family (`ip4:2001:db8::1` is an error, not an IPv6 network).
            let writtenAsIPv6 = argument.dropFirst().contains(":")
            if name == "ip4" {
                guard !writtenAsIPv6, network.address.family == .v4 else { throw RelaySPFSyntaxError("`\(term)`: ip4 needs an IPv4 network") }
                return .ip4(network)
            }
            guard writtenAsIPv6 else { throw RelaySPFSyntaxError("`\(term)`: ip6 needs an IPv6 network") }
            return .ip6(network)
        default:
            throw RelaySPFSyntaxError("`\(term)`: unknown mechanism `\(name)`")
        }
    }

    /// Takes `/24`, `//64` or `/24//64` off the end of an `a` or `mx` argument.
    /// - SeeAlso: RFC 7208 §5.6 (dual-cidr-length)
    private static func dualCIDR(_ rest: inout Substring, term: String) throws(RelaySPFSyntaxError) -> (Int?, Int?) {
        func trailingPrefix(_ text: inout Substring, separator: String, maximum: Int) throws(RelaySPFSyntaxError) -> Int? {
            guard let range = text.range(of: separator, options: .backwards) else { return nil }
            let digits = text[range.upperBound...]
            // `/` inside the domain part belongs to a macro delimiter; only digits to the end make a length.
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
            guard digits.count <= 3, let value = Int(digits), value <= maximum, digits.count == 1 || digits.first != "0" else {
                throw RelaySPFSyntaxError("`\(term)`: prefix length /\(digits) out of range")
            }
            text = text[..<range.lowerBound]
            return value
        }
        let v6 = try trailingPrefix(&rest, separator: "//", maximum: 128)
        let v4 = try trailingPrefix(&rest, separator: "/", maximum: 32)
        if rest.hasSuffix("/") { throw RelaySPFSyntaxError("`\(term)`: malformed prefix length") }
        return (v4, v6)
    }

    /// A domain-spec: a domain name (with at least one dot, a top label not
    /// all digits) or text with macros, which the evaluator expands.
    /// - SeeAlso: RFC 7208 §7.1 (domain-spec, domain-end)
    private static func domainSpec(_ text: String, term: String) throws(RelaySPFSyntaxError) -> String {
        let domain = text.lowercased()
        guard !domain.isEmpty, domain.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw RelaySPFSyntaxError("`\(term)`: missing or invalid domain")
        }
        if domain.contains("%") { return domain }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        let trimmed = labels.last == "" ? labels.dropLast() : labels[...]
        guard trimmed.count >= 2, !trimmed.contains(where: \.isEmpty), let top = trimmed.last, !top.allSatisfy(\.isNumber) else {
            throw RelaySPFSyntaxError("`\(term)`: `\(text)` is not a domain name")
        }
        return domain.hasSuffix(".") ? String(domain.dropLast()) : domain
    }
}

/// Why an SPF record cannot be evaluated (a permerror, RFC 7208 §2.6.7).
public struct RelaySPFSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}
