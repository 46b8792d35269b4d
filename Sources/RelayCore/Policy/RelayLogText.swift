/// Client-supplied text (HELO names, AUTH usernames) made safe for a log
/// line: a client must not be able to forge log lines or hide in terminal
/// escapes.
public enum RelayLogText {
    /// CR, LF and tab as `\r`, `\n`, `\t`; other C0 controls, DEL and C1
    /// controls as `\xHH` or `\u{HHHH}`; backslash doubled so that the escaping
    /// is unambiguous; cut to `limit` characters with `…`.
    public static func escape(_ text: String, limit: Int = 256) -> String {
        var result = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit {
                result += "…"
                break
            }
            count += 1
            switch scalar {
            case "\r": result += "\\r"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\\": result += "\\\\"
            case "\u{00}"..."\u{1F}", "\u{7F}":
                result += "\\x" + hex(scalar.value, width: 2)
            case "\u{80}"..."\u{9F}", "\u{2028}", "\u{2029}", "\u{202A}"..."\u{202E}", "\u{2066}"..."\u{2069}":
                // C1 controls, Unicode line separators and bidi overrides.
                result += "\\u{" + hex(scalar.value, width: 4) + "}"
            default:
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
