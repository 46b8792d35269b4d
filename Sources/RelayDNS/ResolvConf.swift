/// The system's DNS server, from /etc/resolv.conf (resolv.conf(5)).
public enum ResolvConf {
    public static let path = "/etc/resolv.conf"

    /// The address of the first `nameserver` line (IPv4 or IPv6, a `%zone`
    /// suffix dropped), or nil when there is none. Comments start with `#` or `;`.
    public static func firstNameserver(in text: String) -> String? {
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let content = line.prefix { $0 != "#" && $0 != ";" }
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { continue }
            let address = fields[1].prefix { $0 != "%" }
            guard !address.isEmpty, address.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) else { continue }
            return String(address)
        }
        return nil
    }
}
