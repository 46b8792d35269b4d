/// The address patterns of `allowed_senders` and `allowed_recipients`:
/// `user@domain` (that address), `*@domain` (any address at that domain) and
/// `*` (any address). Comparison ignores case, as mail systems do for domains
/// and Exchange does for local parts.
public enum RelayAddressPattern {
    /// Whether `address` matches any of `patterns`. The null sender (empty
    /// address) matches only `*`.
    public static func matches(_ address: String, anyOf patterns: [String]) -> Bool {
        let address = address.lowercased()
        for pattern in patterns {
            let pattern = pattern.lowercased()
            if pattern == "*" { return true }
            if address.isEmpty { continue }
            if pattern.hasPrefix("*@") {
                guard let at = address.lastIndex(of: "@") else { continue }
                if address[address.index(after: at)...] == pattern.dropFirst(2) { return true }
            } else if pattern == address {
                return true
            }
        }
        return false
    }
}
