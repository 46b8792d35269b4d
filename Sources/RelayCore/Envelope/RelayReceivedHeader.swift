import Foundation

/// The `Received:` trace field the relay adds to every message it accepts.
///
/// - SeeAlso: RFC 5321 §4.4 (trace information), RFC 3848 (ESMTPS/ESMTPA)
public enum RelayReceivedHeader {
    public static func render(
        heloName: String, clientAddress: String, hostname: String, extended: Bool, tlsVersion: String?,
        authenticated: Bool, queueID: RelayQueueID, recipient: String?, date: Date
    ) -> String {
        var protocolName = extended ? "ESMTP" : "SMTP"
        if extended && tlsVersion != nil { protocolName += "S" }
        if extended && authenticated { protocolName += "A" }
        var header = "Received: from \(sanitize(heloName)) ([\(clientAddress)])\r\n\tby \(hostname) (m365-relay) with \(protocolName)"
        if let tlsVersion { header += " (\(tlsVersion))" }
        header += "\r\n\tid \(queueID)"
        // Only name the recipient when there is one: naming one of several leaks the others' existence.
        if let recipient { header += "\r\n\tfor <\(recipient)>" }
        header += "; \(rfc5322Date(date))\r\n"
        return header
    }

    /// `Sun, 29 Nov 2026 13:15:47 +0000`
    /// - SeeAlso: RFC 5322 §3.3
    public static func rfc5322Date(_ date: Date) -> String {
        let c = utcCalendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int?) -> String { let v = n ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[(c.weekday ?? 1) - 1]), \(c.day ?? 1) \(months[(c.month ?? 1) - 1]) \(c.year ?? 1970) \(two(c.hour)):\(two(c.minute)):\(two(c.second)) +0000"
    }

    /// Made once: every accepted message asks for a date.
    private static let utcCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// The HELO name is client input: keep it to what a host name may hold, so
    /// it cannot break the header (CR, LF) or fake a comment.
    static func sanitize(_ text: String) -> String {
        let allowed = text.unicodeScalars.prefix(255).map { scalar -> Character in
            let ok = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-.[]:_".unicodeScalars.contains(scalar))
            return ok ? Character(scalar) : "_"
        }
        return allowed.isEmpty ? "unknown" : String(allowed)
    }
}
