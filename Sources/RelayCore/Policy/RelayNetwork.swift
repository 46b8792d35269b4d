/// An IPv4 or IPv6 network in CIDR notation: `10.0.0.0/24`, `fd00::/64`.
///
/// A bare address is a single host (`/32` or `/128`). Host bits below the
/// prefix are accepted and masked off (`10.0.0.5/24` is `10.0.0.0/24`), as
/// most firewalls do; ``description`` shows the masked form so that
/// `check-config` makes the effective network visible.
///
/// IPv4 networks hold IPv4 addresses only, whichever form they arrive in
/// (plain or IPv4-mapped). An IPv6 network that covers the mapped range
/// (`::ffff:0:0/96`, `::/0`) contains the IPv4 addresses in it as well.
/// - SeeAlso: RFC 4632 §3.1 (CIDR notation), RFC 4291 §2.3
public struct RelayNetwork: Sendable, Hashable, CustomStringConvertible {
    /// The first address of the network.
    public let address: RelayIPAddress
    /// Prefix length in the address's own family: 0–32 for IPv4, 0–128 for IPv6.
    public let prefixLength: Int

    /// - Precondition: `prefixLength` fits the address family.
    public init(address: RelayIPAddress, prefixLength: Int) {
        let bits = address.family == .v4 ? prefixLength + 96 : prefixLength
        precondition((0...128).contains(bits) && prefixLength >= 0, "prefix length out of range")
        self.prefixLength = prefixLength
        let (high, low) = Self.masked(address, bits128: bits)
        self.address = RelayIPAddress(ipv6High: high, low: low)
    }

    /// Parses `ADDRESS/PREFIX` or a bare address. An IPv4-mapped IPv6 network of
    /// prefix 96 or more (`::ffff:10.0.0.0/104`) is the IPv4 network (`10.0.0.0/8`).
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = RelayIPAddress(parsing: String(parts[0])) else { return nil }
        let writtenAsIPv6 = parts[0].contains(":")
        let maximum = writtenAsIPv6 ? 128 : 32
        var prefix = maximum
        if parts.count == 2 {
            let digits = parts[1]
            guard (1...3).contains(digits.utf8.count), digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let value = Int(digits), value <= maximum else { return nil }
            prefix = value
        }
        if address.family == .v4 && writtenAsIPv6 {
            // Mapped: below /96 the network reaches outside the mapped range and stays IPv6.
            if prefix >= 96 {
                self.init(address: address, prefixLength: prefix - 96)
            } else {
                let (high, low) = Self.masked(address, bits128: prefix)
                self.init(address: RelayIPAddress(ipv6High: high, low: low), prefixLength: prefix)
            }
            return
        }
        self.init(address: address, prefixLength: prefix)
    }

    /// Whether `candidate` is in this network.
    public func contains(_ candidate: RelayIPAddress) -> Bool {
        let (high, low) = Self.masked(candidate, bits128: bits128)
        return high == address.high && low == address.low
    }

    public var description: String { "\(address)/\(prefixLength)" }

    /// The prefix length counted over the 128-bit (mapped) form.
    var bits128: Int { address.family == .v4 ? prefixLength + 96 : prefixLength }

    static func masked(_ address: RelayIPAddress, bits128 bits: Int) -> (UInt64, UInt64) {
        let highMask: UInt64 = bits >= 64 ? .max : (bits == 0 ? 0 : .max << UInt64(64 - bits))
        let lowMask: UInt64 = bits <= 64 ? 0 : (bits == 128 ? .max : .max << UInt64(128 - bits))
        return (address.high & highMask, address.low & lowMask)
    }
}

/// The client a connection from `address` belongs to, before any AUTH: the
/// first `auth: none` client, in file order, whose networks contain the address.
///
/// `auth: password` clients are matched by their AUTH username later in the
/// session, not here. nil means no client matches: reply `554 5.7.1`.
/// - SeeAlso: PRODUCT.md, Client matching
public func matchClient(address: RelayIPAddress, in clients: [RelayConfiguration.Client]) -> RelayConfiguration.Client? {
    clients.first { client in
        client.auth == .none && client.networks.contains { $0.contains(address) }
    }
}
