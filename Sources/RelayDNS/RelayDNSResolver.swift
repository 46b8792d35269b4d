import Foundation

/// The record types `doctor` asks for.
public enum RelayDNSRecordType: String, Sendable, Hashable, CaseIterable {
    case a = "A", aaaa = "AAAA", cname = "CNAME", mx = "MX", txt = "TXT"
}

/// One answer record, decoded.
public enum RelayDNSRecord: Sendable, Hashable {
    /// Dotted quad.
    case a(String)
    /// RFC 5952 text.
    case aaaa(String)
    /// The target name, lower-cased, without the trailing dot.
    case cname(String)
    /// Preference and exchange (lower-cased, without the trailing dot).
    case mx(preference: Int, exchange: String)
    /// The record's character-strings joined (RFC 7208 §3.3: SPF joins them with nothing in between).
    case txt(String)
}

/// The answer to one question.
public struct RelayDNSAnswer: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        /// NOERROR: `records` may still be empty (the name exists, not this type: NODATA).
        case ok
        /// NXDOMAIN: the name does not exist.
        case noSuchName
    }

    public var status: Status
    /// Records of the asked type only, in answer order; a CNAME chain the server followed is left out
    /// unless the question was for CNAME.
    public var records: [RelayDNSRecord]

    public init(status: Status, records: [RelayDNSRecord]) {
        self.status = status
        self.records = records
    }
}

/// A failure to get an answer at all (timeout, SERVFAIL, REFUSED, a malformed
/// reply): the check that asked cannot tell, which is not the same as "absent".
public struct RelayDNSError: Error, Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var type: RelayDNSRecordType
    public var reason: String

    public init(name: String, type: RelayDNSRecordType, reason: String) {
        self.name = name
        self.type = type
        self.reason = reason
    }

    public var description: String { "DNS \(type.rawValue) \(name): \(reason)" }
}

/// Asks DNS. The real implementation is ``RelayDNSClient`` (a small client on
/// SwiftNIO, UDP with TCP fallback on truncation); tests point it at a local server.
public protocol RelayDNSResolver: Sendable {
    func lookup(_ name: String, _ type: RelayDNSRecordType) async throws(RelayDNSError) -> RelayDNSAnswer
}
