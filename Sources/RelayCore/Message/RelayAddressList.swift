/// One mailbox named in an address header field (`To`, `Cc`, `Bcc`, `From`, `Reply-To`).
///
/// Pure value: the parser never decodes encoded words (RFC 2047), it keeps
/// them as they were written, so that a display name can go back on the wire unchanged.
public struct RelayHeaderAddress: Hashable, Sendable, CustomStringConvertible {
    /// The phrase before `<...>`, unquoted; nil when there is none.
    public var displayName: String?
    /// `local@domain`, the local part unquoted when it needs no quotes.
    public var address: String
    /// The group this mailbox belongs to (`team: a@b, c@d;`), if any.
    public var group: String?

    public init(displayName: String? = nil, address: String, group: String? = nil) {
        self.displayName = displayName
        self.address = address
        self.group = group
    }

    public var description: String {
        displayName.map { "\($0) <\(address)>" } ?? address
    }

    /// The address for comparison: RFC 5321 lets a local part be case
    /// sensitive, but Exchange is not, and neither is any real mailbox.
    public var comparisonKey: String { address.lowercased() }
}

/// An RFC 5322 address-list parser for header field values.
///
/// Tolerant, as a relay must be: it never throws, skips what it cannot read,
/// and returns every mailbox it could find. It handles folded lines, quoted
/// strings with quoted pairs, nested comments, groups (`name: a, b;`), angle
/// addresses with obsolete routes (`<@relay:user@host>`), and encoded words
/// (left alone). A mailbox without `@` is dropped: it cannot name a recipient.
/// - SeeAlso: RFC 5322 §3.4 (address specification), §4.4 (obsolete addressing)
public enum RelayAddressList {
    /// The mailboxes of one field value (the part after `Name:`), folded or not.
    public static func parse(_ value: String) -> [RelayHeaderAddress] {
        parse(tokens: tokenize(Array(value.unicodeScalars)))
    }

    // MARK: Tokens

    enum Token: Hashable {
        /// An atom or a dot-atom piece (no specials, no whitespace).
        case atom(String)
        /// A quoted string, unquoted.
        case quoted(String)
        /// One of `< > , : ; @ .` and the stray `[`/`]`/`\`.
        case special(Character)
        /// A domain literal `[...]`, with its brackets.
        case literal(String)
        /// Folding or plain whitespace between tokens (significant inside a phrase only).
        case space
    }

    static func tokenize(_ scalars: [Unicode.Scalar]) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        let count = scalars.count
        func isSpace(_ s: Unicode.Scalar) -> Bool { s == " " || s == "\t" || s == "\r" || s == "\n" }
        func isSpecial(_ s: Unicode.Scalar) -> Bool { "()<>,:;@.\"[]\\".unicodeScalars.contains(s) }
        while index < count {
            let scalar = scalars[index]
            if isSpace(scalar) {
                // CRLF + WSP is folding: whitespace like any other (RFC 5322 §2.2.3).
                while index < count, isSpace(scalars[index]) { index += 1 }
                if tokens.last != .space { tokens.append(.space) }
            } else if scalar == "(" {
                // Comments nest and may hold quoted pairs; they carry no address.
                var depth = 0
                while index < count {
                    let c = scalars[index]
                    if c == "\\" { index += 2; continue }
                    if c == "(" { depth += 1 }
                    if c == ")" { depth -= 1; if depth == 0 { index += 1; break } }
                    index += 1
                }
                if tokens.last != .space { tokens.append(.space) }
            } else if scalar == "\"" {
                var text = String.UnicodeScalarView()
                index += 1
                while index < count, scalars[index] != "\"" {
                    if scalars[index] == "\\", index + 1 < count {
                        index += 1
                        text.append(scalars[index])
                    } else if scalars[index] != "\r" && scalars[index] != "\n" {
                        text.append(scalars[index])
                    }
                    index += 1
                }
                index += 1  // the closing quote, or past the end of an unterminated string
                tokens.append(.quoted(String(text)))
            } else if scalar == "[" {
                var text = String.UnicodeScalarView(["["])
                index += 1
                while index < count, scalars[index] != "]" {
                    if scalars[index] == "\\", index + 1 < count { index += 1 }
                    if !isSpace(scalars[index]) { text.append(scalars[index]) }
                    index += 1
                }
                index += 1
                text.append("]")
                tokens.append(.literal(String(text)))
            } else if isSpecial(scalar) {
                tokens.append(.special(Character(scalar)))
                index += 1
            } else {
                var text = String.UnicodeScalarView()
                while index < count, !isSpace(scalars[index]), !isSpecial(scalars[index]) {
                    text.append(scalars[index])
                    index += 1
                }
                tokens.append(.atom(String(text)))
            }
        }
        return tokens
    }

    // MARK: Grammar

    static func parse(tokens: [Token]) -> [RelayHeaderAddress] {
        var result: [RelayHeaderAddress] = []
        var phrase: [Token] = []
        var angle: [Token]?
        var angleName: String?
        var group: String?
        var index = 0

        func flush() {
            defer { phrase = []; angle = nil; angleName = nil }
            if let angle {
                if let address = addrSpec(stripRoute(angle)) {
                    result.append(RelayHeaderAddress(displayName: angleName, address: address, group: group))
                }
            } else if let address = addrSpec(phrase) {
                result.append(RelayHeaderAddress(displayName: nil, address: address, group: group))
            }
        }

        while index < tokens.count {
            let token = tokens[index]
            index += 1
            switch token {
            case .special("<") where angle == nil:
                angleName = displayName(phrase)
                phrase = []
                var inner: [Token] = []
                while index < tokens.count, tokens[index] != .special(">") {
                    inner.append(tokens[index])
                    index += 1
                }
                index += 1
                angle = inner
            case .special(","):
                flush()
            case .special(":") where angle == nil && group == nil:
                // A group's display name; its mailboxes follow up to `;`.
                group = displayName(phrase) ?? ""
                phrase = []
            case .special(";"):
                flush()
                group = nil
            default:
                // Text after an angle address (obsolete trailing junk) is ignored.
                if angle == nil { phrase.append(token) }
            }
        }
        flush()
        return result
    }

    /// `<@a,@b:user@host>` names `user@host` (RFC 5322 §4.4 obs-route).
    static func stripRoute(_ tokens: [Token]) -> [Token] {
        let trimmed = tokens.filter { $0 != .space }
        guard trimmed.first == .special("@"), let colon = trimmed.lastIndex(of: .special(":")) else { return trimmed }
        return Array(trimmed[(colon + 1)...])
    }

    /// The addr-spec the tokens spell, or nil without a local part and a domain.
    static func addrSpec(_ tokens: [Token]) -> String? {
        let parts = tokens.filter { $0 != .space }
        guard let at = parts.lastIndex(of: .special("@")), at > 0, at < parts.count - 1 else { return nil }
        var local = ""
        var needsQuotes = false
        for token in parts[..<at] {
            switch token {
            case .atom(let text): local += text
            case .quoted(let text):
                local += text
                needsQuotes = needsQuotes || !isDotAtomText(text)
            case .special("."): local += "."
            default: return nil
            }
        }
        var domain = ""
        for token in parts[(at + 1)...] {
            switch token {
            case .atom(let text): domain += text
            case .literal(let text): domain += text
            case .special("."): domain += "."
            default: return nil
            }
        }
        guard !local.isEmpty, !domain.isEmpty else { return nil }
        if needsQuotes || !isDotAtomText(local) {
            let escaped = local.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            local = "\"\(escaped)\""
        }
        return "\(local)@\(domain)"
    }

    /// A phrase as a display name: words joined by one space, quotes removed.
    static func displayName(_ tokens: [Token]) -> String? {
        var words: [String] = []
        var pendingSpace = false
        for token in tokens {
            switch token {
            case .space: pendingSpace = true
            case .atom(let text), .quoted(let text), .literal(let text):
                if pendingSpace, !words.isEmpty { words.append(" ") }
                words.append(text)
                pendingSpace = false
            case .special(let c):
                // obs-phrase allows `.`; other specials in a name are junk kept as text.
                if pendingSpace, !words.isEmpty { words.append(" ") }
                words.append(String(c))
                pendingSpace = false
            }
        }
        let name = words.joined()
        return name.isEmpty ? nil : name
    }

    /// Whether `text` is a dot-atom: atext runs separated by single dots (RFC 5322 §3.2.3).
    static func isDotAtomText(_ text: String) -> Bool {
        guard !text.isEmpty, !text.hasPrefix("."), !text.hasSuffix("."), !text.contains("..") else { return false }
        let specials = "()<>[]:;@\\,\" ".unicodeScalars
        return text.unicodeScalars.allSatisfy { $0.value > 32 && $0.value != 127 && !specials.contains($0) }
    }
}
