import Foundation

/// The one place text becomes HTML. Everything a client, a peer or Microsoft
/// controls (addresses, Message-IDs, HELO names, replies, reasons) reaches the
/// page through `escape`, and every URL through `queryString`/`href`.
enum DashboardHTML {
    /// Escapes `text` for element content and for quoted attribute values
    /// (the dashboard always quotes attributes with `"`).
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            // `` ` `` closes unquoted attributes in old browsers; quoted here anyway, but cheap to rule out.
            case "`": escaped += "&#96;"
            case "\t", "\n", "\r":
                escaped.unicodeScalars.append(scalar)
            // Other controls (NUL, ESC, DEL, C1) are never meant for display and
            // some are HTML parse errors: show a replacement character instead.
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value):
                escaped += "\u{FFFD}"
            default:
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// Characters kept as they are in a query value; everything else is percent-encoded.
    private static let queryValueAllowed: CharacterSet = {
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        allowed.insert(charactersIn: "-._~@")
        return allowed
    }()

    static func percentEncode(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: queryValueAllowed) ?? ""
    }

    /// `path?name=value&...` with empty values left out, already HTML-escaped for an `href`.
    static func href(_ path: String, _ parameters: [(String, String?)] = []) -> String {
        let pairs = parameters.compactMap { name, value -> String? in
            guard let value, !value.isEmpty else { return nil }
            return "\(percentEncode(name))=\(percentEncode(value))"
        }
        return escape(pairs.isEmpty ? path : "\(path)?\(pairs.joined(separator: "&"))")
    }

    /// Parses a query string as a browser's GET form sends it (`+` is a space).
    static func parseQuery(_ query: String?) -> [String: String] {
        guard let query, !query.isEmpty else { return [:] }
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                let spaced = text.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            let name = decode(parts[0])
            // The first occurrence wins, so a crafted duplicate cannot override a field.
            if parameters[name] == nil { parameters[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return parameters
    }
}
