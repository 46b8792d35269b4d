/// An IPv4 or IPv6 address, parsed from text without the C library.
///
/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket
/// reports for an IPv4 peer) are the IPv4 address: they parse to `.v4`,
/// compare equal to it and match IPv4 networks, so that a client listed as
/// `192.0.2.0/24` is recognised whichever socket it came in on.
///
/// Internally every address is 128 bits; an IPv4 address is held in its
/// mapped form, which is what makes mapped and plain forms identical.
/// - SeeAlso: RFC 4291 §2.2 (text forms), §2.5.5.2 (IPv4-mapped), RFC 5952 (output form)
public struct RelayIPAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case v4
        case v6
    }

    /// Upper 64 bits of the 128-bit (mapped) form.
    let high: UInt64
    /// Lower 64 bits of the 128-bit (mapped) form.
    let low: UInt64

    static let mappedPrefix: UInt64 = 0x0000_FFFF_0000_0000

    public init(ipv4 value: UInt32) {
        high = 0
        low = Self.mappedPrefix | UInt64(value)
    }

    /// An IPv6 address from its two halves; a mapped address becomes IPv4.
    public init(ipv6High high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An address from 4 (IPv4) or 16 (IPv6) network-order bytes, as sockets give them.
    public init?(bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        switch array.count {
        case 4:
            self.init(ipv4: array.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        case 16:
            let high = array[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = array[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self.init(ipv6High: high, low: low)
        default:
            return nil
        }
    }

    public var family: Family {
        high == 0 && low >> 32 == Self.mappedPrefix >> 32 ? .v4 : .v6
    }

    /// The IPv4 address as a 32-bit number; nil for IPv6.
    public var ipv4Value: UInt32? {
        family == .v4 ? UInt32(truncatingIfNeeded: low) : nil
    }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        if let v4 = ipv4Value { return v4 >> 24 == 127 }
        return high == 0 && low == 1
    }

    /// Parses dotted-quad IPv4 (`192.0.2.1`, no leading zeros) or IPv6 text
    /// (with `::` compression and a trailing dotted quad). A zone index
    /// (`fe80::1%eth0`) is accepted and ignored: networks have no zones.
    public init?(parsing text: String) {
        if let v4 = Self.parseIPv4(Substring(text)) {
            self.init(ipv4: v4)
            return
        }
        var body = Substring(text)
        if let percent = body.firstIndex(of: "%") {
            guard body.index(after: percent) < body.endIndex else { return nil }
            body = body[..<percent]
        }
        guard let (high, low) = Self.parseIPv6(body) else { return nil }
        self.init(ipv6High: high, low: low)
    }

    static func parseIPv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.utf8.count), part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  part.utf8.count == 1 || part.utf8.first != 0x30,
                  let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func parseIPv6(_ text: Substring) -> (UInt64, UInt64)? {
        guard text.contains(":"), text.utf8.count <= 45 else { return nil }
        // Split around the one `::` allowed.
        let head: Substring
        let tail: Substring?
        if let range = text.firstRange(of: "::") {
            head = text[..<range.lowerBound]
            tail = text[range.upperBound...]
            if tail!.contains("::") { return nil }
        } else {
            head = text
            tail = nil
        }
        guard var headGroups = groups(head, allowIPv4Tail: tail == nil) else { return nil }
        var tailGroups: [UInt16] = []
        if let tail {
            guard let parsed = groups(tail, allowIPv4Tail: true) else { return nil }
            tailGroups = parsed
            guard headGroups.count + tailGroups.count <= 7 else { return nil }
            headGroups += Array(repeating: 0, count: 8 - headGroups.count - tailGroups.count)
        } else {
            guard headGroups.count == 8 else { return nil }
        }
        let all = headGroups + tailGroups
        let high = all[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = all[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return (high, low)
    }

    /// Colon-separated hex groups; empty text is no groups. The last may be a dotted quad (two groups).
    private static func groups(_ text: Substring, allowIPv4Tail: Bool) -> [UInt16]? {
        if text.isEmpty { return [] }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        var result: [UInt16] = []
        for (index, part) in parts.enumerated() {
            if index == parts.count - 1, allowIPv4Tail, part.contains(".") {
                guard let v4 = parseIPv4(part) else { return nil }
                result.append(UInt16(v4 >> 16))
                result.append(UInt16(v4 & 0xFFFF))
                continue
            }
            guard (1...4).contains(part.utf8.count), part.allSatisfy(\.isHexDigit),
                  let group = UInt16(part, radix: 16) else { return nil }
            result.append(group)
        }
        return result
    }

    /// IPv4 dotted quad; IPv6 in RFC 5952 form (lowercase, longest zero run compressed).
    public var description: String {
        if let v4 = ipv4Value {
            return "\(v4 >> 24).\(v4 >> 16 & 0xFF).\(v4 >> 8 & 0xFF).\(v4 & 0xFF)"
        }
        let groups: [UInt16] = (0..<8).map { index in
            let word = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (UInt64(3 - index % 4) * 16))
        }
        // Longest run of at least two zero groups; the first one on a tie.
        var bestStart = -1, bestLength = 0, runStart = -1
        for index in 0...8 {
            if index < 8, groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength { bestStart = runStart; bestLength = index - runStart }
                runStart = -1
            }
        }
        let hex = groups.map { String($0, radix: 16) }
        guard bestLength >= 2 else { return hex.joined(separator: ":") }
        let before = hex[0..<bestStart].joined(separator: ":")
        let after = hex[(bestStart + bestLength)...].joined(separator: ":")
        return before + "::" + after
    }
}
