import Foundation

/// Writing values from the configuration into PowerShell source safely.
///
/// Every value goes into a single-quoted string, where PowerShell expands
/// nothing (no `$variables`, no `$(subexpressions)`); the only character to
/// escape is the quote itself, doubled. PowerShell takes the typographic
/// single quotes U+2018 to U+201B as quotes too, so they are doubled as well.
/// Text in comments has its line breaks removed, so a value cannot end the
/// comment and start a command.
/// - SeeAlso: about_Quoting_Rules; the PowerShell language specification §2.3.5.2.2
enum PowerShellText {
    static let quoteCharacters: Set<Character> = ["'", "\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}"]

    /// `'text'`, with quote characters doubled. A control character (a line
    /// break in a route name) cannot be written inside single quotes without
    /// breaking the line, so such text becomes a concatenation on one line:
    /// `('a' + [char]0x0A + 'b')`.
    static func quoted(_ text: String) -> String {
        var parts: [String] = []
        var literal = ""
        for scalar in text.unicodeScalars {
            if isUnprintable(scalar) {
                parts.append(singleQuoted(literal))
                literal = ""
                parts.append(String(format: "[char]0x%02X", scalar.value))
            } else {
                literal.unicodeScalars.append(scalar)
            }
        }
        guard !parts.isEmpty else { return singleQuoted(literal) }
        if !literal.isEmpty { parts.append(singleQuoted(literal)) }
        // The leading string, even empty, makes every `+` a string concatenation.
        return "(" + parts.enumerated().filter { $0.offset == 0 || $0.element != "''" }.map(\.element).joined(separator: " + ") + ")"
    }

    private static func singleQuoted(_ text: String) -> String {
        var result = "'"
        for character in text {
            if quoteCharacters.contains(character) { result.append(character) }
            result.append(character)
        }
        return result + "'"
    }

    /// Characters that would break or hide a line: C0 and C1 controls, line
    /// and paragraph separators, and format characters (bidirectional overrides).
    static func isUnprintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator, .format: true
        default: false
        }
    }

    /// `'a', 'b'`: a PowerShell array argument.
    static func quotedList(_ items: [String]) -> String {
        items.map(quoted).joined(separator: ",")
    }

    /// Text safe inside a `#` comment: control characters and line or
    /// paragraph separators (which could end the comment) become `?`.
    static func commentSafe(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { isUnprintable($0) ? "?" : $0 }))
    }

    /// A name made of letters, digits and hyphens, for an Exchange alias.
    static func alias(_ text: String, maximumLength: Int = 64) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            if scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(Character(scalar))) {
                result.unicodeScalars.append(scalar)
            } else if !result.hasSuffix("-") {
                result.append("-")
            }
        }
        let trimmed = result.trimming("-")
        return String(trimmed.prefix(maximumLength)).trimming("-")
    }
}

extension String {
    /// Without `character` at either end.
    fileprivate func trimming(_ character: Character) -> String {
        let start = firstIndex { $0 != character } ?? endIndex
        let end = lastIndex { $0 != character }.map { index(after: $0) } ?? start
        return start < end ? String(self[start..<end]) : ""
    }
}
