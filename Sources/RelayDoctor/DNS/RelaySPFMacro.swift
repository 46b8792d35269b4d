import Foundation
import RelayCore

/// Expands the macros of an SPF domain-spec (`%{d}`, `%{ir}.%{v}._spf.%{d2}`).
///
/// `doctor` evaluates without a real message: the sender and HELO name are
/// unknown unless given, and a macro that needs an unknown value makes the
/// term impossible to evaluate (the expansion returns nil) rather than guessed.
/// - SeeAlso: RFC 7208 §7
struct RelaySPFMacroContext: Sendable {
    /// `d`: the domain whose record is being evaluated.
    var domain: String
    /// `i`, `c`, `v`: the client address, when checking one.
    var address: RelayIPAddress?
    /// `s`, `l`, `o`: the envelope sender, when known.
    var sender: String?
    /// `h`: the HELO/EHLO name, when known.
    var helo: String?

    /// The expanded text, or nil when it needs a value this context does not
    /// have, or is malformed.
    func expand(_ text: String) -> String? {
        guard text.contains("%") else { return text }
        var output = ""
        var characters = Substring(text)
        while let first = characters.first {
            characters = characters.dropFirst()
            guard first == "%" else {
                output.append(first)
                continue
            }
            guard let next = characters.first else { return nil }
            characters = characters.dropFirst()
            switch next {
            case "%": output += "%"
            case "_": output += " "
            case "-": output += "%20"
            case "{":
                guard let close = characters.firstIndex(of: "}") else { return nil }
                guard let expanded = expandMacro(characters[..<close]) else { return nil }
                output += expanded
                characters = characters[characters.index(after: close)...]
            default:
                return nil
            }
        }
        return output
    }

    /// One `%{...}` body: letter, optional digits, optional `r`, optional delimiters.
    private func expandMacro(_ body: Substring) -> String? {
        guard let letter = body.first?.lowercased() else { return nil }
        var rest = body.dropFirst()
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        rest = rest.dropFirst(digits.count)
        var reverse = false
        if rest.first == "r" || rest.first == "R" {
            reverse = true
            rest = rest.dropFirst()
        }
        let delimiters = Set(rest)
        guard delimiters.isSubset(of: Set(".-+,/_=")) else { return nil }
        guard let value = value(of: letter) else { return nil }
        var parts = value.split { delimiters.isEmpty ? $0 == "." : delimiters.contains($0) }.map(String.init)
        if reverse { parts.reverse() }
        if !digits.isEmpty {
            // RFC 7208 §7.3: a count of zero is not allowed.
            guard let count = Int(digits), count > 0 else { return nil }
            parts = Array(parts.suffix(count))
        }
        return parts.joined(separator: ".")
    }

    private func value(of letter: String) -> String? {
        switch letter {
        case "d":
            return domain
        case "s":
            return sender
        case "l":
            guard let sender, let at = sender.lastIndex(of: "@") else { return nil }
            return String(sender[..<at])
        case "o":
            guard let sender, let at = sender.lastIndex(of: "@") else { return nil }
            return String(sender[sender.index(after: at)...])
        case "h":
            return helo
        case "p":
            // RFC 7208 §7.3: "unknown" when the name is not validated; doctor validates none.
            return "unknown"
        case "v":
            return address.map { $0.family == .v4 ? "in-addr" : "ip6" }
        case "i":
            guard let address else { return nil }
            if address.family == .v4 { return address.description }
            // RFC 7208 §7.3: IPv6 as dot-separated nibbles.
            return Self.nibbles(address).joined(separator: ".")
        case "c":
            return address?.description
        default:
            return nil
        }
    }

    /// The 32 hex digits of an IPv6 address, from its RFC 5952 text (the address's bits are internal to RelayCore).
    private static func nibbles(_ address: RelayIPAddress) -> [String] {
        let text = address.description
        let halves = text.components(separatedBy: "::")
        let head = halves[0].isEmpty ? [] : halves[0].split(separator: ":").map(String.init)
        let tail = halves.count > 1 && !halves[1].isEmpty ? halves[1].split(separator: ":").map(String.init) : []
        let groups = head + Array(repeating: "0", count: max(0, 8 - head.count - tail.count)) + tail
        return groups.flatMap { group in
            (String(repeating: "0", count: max(0, 4 - group.count)) + group).map { String($0) }
        }
    }
}
