/// What Microsoft's `5.7.512` asks of `From:`, and how a broken one is read and rewritten.
///
/// Old devices write `From: Scanner`, `From: Smith, John <j@x>` or
/// `From: <>`. Exchange Online refuses those; the relay reads what the
/// device meant, tolerantly, and writes it back in RFC 5322 form.
/// - SeeAlso: RFC 5322 §3.4 (mailbox), §3.6.2 (originator fields); M365.md (5.7.512)
public enum RelayFromField {
    /// What a `From:` field (or several) said, read tolerantly.
    public struct Reading: Hashable, Sendable {
        /// Every mailbox with an address, in order, without duplicates.
        public var mailboxes: [RelayHeaderAddress]
        /// The text of a `From:` that named nobody (`From: Scanner`): a display name without an address.
        public var bareName: String?

        public init(mailboxes: [RelayHeaderAddress], bareName: String? = nil) {
            self.mailboxes = mailboxes
            self.bareName = bareName
        }

        /// The display name the author gave, if any: the first mailbox's, else the bare name.
        public var displayName: String? { mailboxes.first?.displayName ?? bareName }
    }

    // MARK: Strict check

    /// Whether `value` is an RFC 5322 `mailbox-list` that Exchange accepts as
    /// it is: every element a mailbox with an address, display names made of
    /// atoms and quoted strings only (no unquoted specials), no groups, no
    /// control characters. Comments and folding are fine.
    public static func isCompliant(_ value: String) -> Bool {
        let tokens = RelayAddressList.tokenize(Array(value.unicodeScalars))
        let elements = split(tokens)
        guard !elements.isEmpty else { return false }
        return elements.allSatisfy(isCompliantMailbox)
    }

    static func isCompliantMailbox(_ tokens: [RelayAddressList.Token]) -> Bool {
        let trimmed = trimSpace(tokens)
        guard let open = trimmed.firstIndex(of: .special("<")) else {
            return isStrictAddrSpec(trimmed)
        }
        // name-addr: [phrase] "<" addr-spec ">", nothing after it.
        guard let close = trimmed.lastIndex(of: .special(">")), close == trimmed.count - 1, close > open else { return false }
        let phrase = trimmed[..<open]
        for token in phrase {
            switch token {
            case .space: continue
            case .atom(let text): if !isAtomText(text) { return false }
            case .quoted(let text): if text.unicodeScalars.contains(where: isControl) { return false }
            default: return false
            }
        }
        return isStrictAddrSpec(trimSpace(Array(trimmed[(open + 1)..<close])))
    }

    /// `local@domain` with a dot-atom or quoted local part and a dot-atom or literal domain.
    static func isStrictAddrSpec(_ tokens: [RelayAddressList.Token]) -> Bool {
        guard let at = tokens.lastIndex(of: .special("@")) else { return false }
        let local = Array(tokens[..<at]), domain = Array(tokens[(at + 1)...])
        func isDotAtom(_ parts: [RelayAddressList.Token]) -> Bool {
            guard parts.count % 2 == 1 else { return false }
            for (index, part) in parts.enumerated() {
                if index % 2 == 0 {
                    guard case .atom(let text) = part, isAtomText(text) else { return false }
                } else if part != .special(".") {
                    return false
                }
            }
            return true
        }
        let localOK: Bool
        if local.count == 1, case .quoted(let text) = local[0] {
            localOK = !text.isEmpty && !text.unicodeScalars.contains(where: isControl)
        } else {
            localOK = isDotAtom(local)
        }
        let domainOK: Bool
        if domain.count == 1, case .literal = domain[0] {
            domainOK = true
        } else {
            domainOK = isDotAtom(domain)
        }
        return localOK && domainOK
    }

    // MARK: Tolerant reading

    /// Reads every `From:` value the way its author meant it.
    ///
    /// A value that the address-list grammar reads completely keeps its
    /// mailboxes. One that it cannot (`Smith, John <j@x>`: the comma is an
    /// unquoted special) but that ends in a single angle address is that
    /// address with everything before it as the display name. One with no
    /// address at all yields its text as a bare name.
    public static func read(_ values: [String]) -> Reading {
        var mailboxes: [RelayHeaderAddress] = []
        var bareName: String?
        var seen = Set<String>()
        for value in values {
            let reading = read(value)
            for mailbox in reading.mailboxes where seen.insert(mailbox.comparisonKey).inserted {
                mailboxes.append(RelayHeaderAddress(displayName: mailbox.displayName, address: mailbox.address))
            }
            if bareName == nil { bareName = reading.bareName }
        }
        return Reading(mailboxes: mailboxes, bareName: mailboxes.isEmpty ? bareName : nil)
    }

    static func read(_ value: String) -> Reading {
        let tokens = RelayAddressList.tokenize(Array(value.unicodeScalars))
        let elements = split(tokens)
        let parsed = RelayAddressList.parse(tokens: tokens).map {
            RelayHeaderAddress(displayName: $0.displayName.flatMap(cleanName), address: $0.address)
        }
        if !parsed.isEmpty, parsed.count == elements.count, !tokens.contains(.special(":")) {
            return Reading(mailboxes: parsed)
        }
        // One angle address at the end: everything before it is the name, specials and all.
        let trimmed = trimSpace(tokens)
        if trimmed.filter({ $0 == .special("<") }).count == 1, let open = trimmed.firstIndex(of: .special("<")),
           trimmed.last == .special(">") {
            let name = RelayAddressList.displayName(Array(trimmed[..<open])).flatMap(cleanName)
            let inner = Array(trimmed[(open + 1)..<(trimmed.count - 1)])
            if let address = RelayAddressList.addrSpec(RelayAddressList.stripRoute(inner)) {
                return Reading(mailboxes: [RelayHeaderAddress(displayName: name, address: address)])
            }
            if parsed.isEmpty { return Reading(mailboxes: [], bareName: name) }
        }
        if !parsed.isEmpty { return Reading(mailboxes: parsed) }
        let words = tokens.filter { $0 != .special("<") && $0 != .special(">") }
        return Reading(mailboxes: [], bareName: RelayAddressList.displayName(words).flatMap(cleanName))
    }

    // MARK: Rendering

    /// One mailbox as RFC 5322 writes it: `Name <a@b>`, `"Smith, John" <j@x>` or `a@b`.
    public static func render(_ mailbox: RelayHeaderAddress) -> String {
        guard let name = mailbox.displayName.flatMap(cleanName) else { return mailbox.address }
        return "\(phrase(name)) <\(mailbox.address)>"
    }

    /// A mailbox list, one `, ` between mailboxes (folded later if long).
    public static func render(_ mailboxes: [RelayHeaderAddress]) -> String {
        mailboxes.map(render).joined(separator: ", ")
    }

    /// A display name as a phrase: as is when it is words of atext, else a quoted string.
    /// - SeeAlso: RFC 5322 §3.2.3 (atom), §3.2.4 (quoted-string)
    public static func phrase(_ name: String) -> String {
        let words = name.split(separator: " ", omittingEmptySubsequences: false)
        if words.allSatisfy({ !$0.isEmpty && isAtomText(String($0)) }) { return name }
        var quoted = "\""
        for scalar in name.unicodeScalars {
            if scalar == "\\" || scalar == "\"" { quoted += "\\" }
            quoted.unicodeScalars.append(scalar)
        }
        return quoted + "\""
    }

    // MARK: Helpers

    /// Splits at top-level commas, dropping elements that are only whitespace.
    static func split(_ tokens: [RelayAddressList.Token]) -> [[RelayAddressList.Token]] {
        tokens.split(separator: .special(","), omittingEmptySubsequences: false)
            .map(Array.init)
            .filter { $0.contains { $0 != .space } }
    }

    static func trimSpace(_ tokens: [RelayAddressList.Token]) -> [RelayAddressList.Token] {
        var slice = tokens[...]
        while slice.first == .space { slice = slice.dropFirst() }
        while slice.last == .space { slice = slice.dropLast() }
        return Array(slice)
    }

    /// atext: printable ASCII but the specials, or any non-ASCII character (RFC 6532).
    static func isAtomText(_ text: String) -> Bool {
        let specials = "()<>[]:;@\\,.\"".unicodeScalars
        return !text.isEmpty && text.unicodeScalars.allSatisfy { !isControl($0) && $0 != " " && !specials.contains($0) }
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 32 || scalar.value == 127 || (0x80...0x9F).contains(scalar.value)
    }

    /// A display name without control characters, runs of whitespace collapsed; nil when empty.
    static func cleanName(_ name: String) -> String? {
        let words = String(String.UnicodeScalarView(name.unicodeScalars.filter { !isControl($0) || $0 == "\t" }))
            .split(whereSeparator: { $0 == " " || $0 == "\t" })
        let cleaned = words.joined(separator: " ")
        return cleaned.isEmpty ? nil : cleaned
    }
}
