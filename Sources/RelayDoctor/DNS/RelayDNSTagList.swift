import Foundation

/// The `tag=value; tag=value` syntax of DKIM key records (RFC 6376 §3.2), which
/// DMARC (RFC 7489 §6.4), MTA-STS (RFC 8461 §3.1) and TLS-RPT (RFC 8460 §3)
/// records reuse.
///
/// Tag names compare without case here: the specifications make them
/// case-sensitive, but a record written `P=reject` is what an administrator
/// meant, and `doctor` reports what it sees rather than failing on it.
/// - SeeAlso: RFC 6376 §3.2
struct RelayDNSTagList: Sendable {
    /// The tags in record order, names lower-cased, values trimmed of surrounding whitespace.
    var tags: [(name: String, value: String)]

    /// Splits `text` at `;`, then each part at its first `=`. Empty parts (a
    /// trailing `;`) are skipped; a part without `=` becomes a tag with an empty
    /// name so that ``malformed`` can report it.
    init(parsing text: String) {
        tags = text.split(separator: ";", omittingEmptySubsequences: false).compactMap { part in
            let trimmed = part.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { return nil }
            guard let equals = trimmed.firstIndex(of: "=") else { return (name: "", value: trimmed) }
            let name = trimmed[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespacesAndNewlines)
            return (name: name, value: value)
        }
    }

    /// The value of the first tag called `name` (lower-case), if any.
    subscript(_ name: String) -> String? {
        tags.first { $0.name == name }?.value
    }

    /// The name of the first tag, lower-cased (`v` in a well-formed record).
    var firstName: String? { tags.first?.name }
}
