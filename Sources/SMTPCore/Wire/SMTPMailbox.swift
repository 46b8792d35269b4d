/// An email address as it appears in an SMTP path: `local@domain`.
///
/// Parsed strictly: source routes, address literals, `%` and `!` routing
/// hacks are refused here so that nothing further down can be talked into
/// relaying through them.
/// - SeeAlso: RFC 5321 §4.1.2, RFC 6531 (UTF-8 local parts and domains)
public struct SMTPMailbox: Hashable, Sendable, CustomStringConvertible {
    public var localPart: String
    public var domain: String

    public init(localPart: String, domain: String) {
        self.localPart = localPart
        self.domain = domain
    }

    public var address: String { "\(localPart)@\(domain)" }
    public var description: String { address }

    public enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        case empty
        case sourceRoute
        case addressLiteral
        case routingCharacter
        case missingDomain
        case invalidLocalPart
        case invalidDomain
        case tooLong

        public var description: String {
            switch self {
            case .empty: "empty address"
            case .sourceRoute: "source routes are not accepted"
            case .addressLiteral: "address literals are not accepted"
            case .routingCharacter: "'%' and '!' routing is not accepted"
            case .missingDomain: "address has no domain"
            case .invalidLocalPart: "invalid local part"
            case .invalidDomain: "invalid domain"
            case .tooLong: "address too long"
            }
        }
    }

    /// Parses `local@domain` (no angle brackets).
    public init(parsing text: Substring, allowUTF8: Bool = true) throws(ParseError) {
        guard !text.isEmpty else { throw .empty }
        // RFC 5321 §4.5.3.1.3: a path is at most 256 octets.
        guard text.utf8.count <= 254 else { throw .tooLong }
        if text.first == "@" { throw .sourceRoute }
        guard let at = text.lastIndex(of: "@") else { throw .missingDomain }
        let local = text[..<at]
        let domain = text[text.index(after: at)...]
        guard !local.isEmpty, local.utf8.count <= 64 else { throw .invalidLocalPart }
        if domain.first == "[" { throw .addressLiteral }
        guard !domain.isEmpty, domain.utf8.count <= 253 else { throw .invalidDomain }

        if local.first == "\"" {
            // Quoted local part: accept printable content, but still refuse routing hacks inside it.
            guard local.count >= 2, local.last == "\"" else { throw .invalidLocalPart }
            let inner = local.dropFirst().dropLast()
            for scalar in inner.unicodeScalars {
                if scalar.value < 0x20 || scalar.value == 0x7F { throw .invalidLocalPart }
                if scalar.value >= 0x80 && !allowUTF8 { throw .invalidLocalPart }
            }
            if inner.contains("@") || inner.contains("%") || inner.contains("!") { throw .routingCharacter }
        } else {
            if local.contains("%") || local.contains("!") { throw .routingCharacter }
            if local.hasPrefix(".") || local.hasSuffix(".") || local.contains("..") { throw .invalidLocalPart }
            for scalar in local.unicodeScalars {
                if scalar.value >= 0x80 {
                    if !allowUTF8 { throw .invalidLocalPart }
                    continue
                }
                guard Self.isAtext(scalar) || scalar == "." else { throw .invalidLocalPart }
            }
        }
        if domain.contains("%") || domain.contains("!") { throw .routingCharacter }
        for label in domain.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63,
                  label.first != "-", label.last != "-" else { throw .invalidDomain }
            for scalar in label.unicodeScalars {
                if scalar.value >= 0x80 {
                    if !allowUTF8 { throw .invalidDomain }
                    continue
                }
                let ok = (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z")
                    || (scalar >= "0" && scalar <= "9") || scalar == "-"
                guard ok else { throw .invalidDomain }
            }
        }
        self.localPart = String(local)
        self.domain = String(domain)
    }

    public init(parsing text: String) throws(ParseError) {
        try self.init(parsing: text[...])
    }

    /// Whether the address needs SMTPUTF8 to be transmitted.
    public var requiresUTF8: Bool {
        !address.unicodeScalars.allSatisfy { $0.isASCII }
    }

    /// RFC 5322 atext.
    static func isAtext(_ s: Unicode.Scalar) -> Bool {
        if (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || (s >= "0" && s <= "9") { return true }
        return "!#$%&'*+-/=?^_`{|}~".unicodeScalars.contains(s)
    }
}

/// The reverse path of MAIL FROM: a mailbox, or the null sender `<>` used by bounces.
public enum SMTPReversePath: Hashable, Sendable, CustomStringConvertible {
    case null
    case mailbox(SMTPMailbox)

    public var mailbox: SMTPMailbox? {
        if case .mailbox(let m) = self { return m }
        return nil
    }

    /// The address without brackets; empty for the null sender.
    public var address: String { mailbox?.address ?? "" }
    public var description: String { "<\(address)>" }
}
