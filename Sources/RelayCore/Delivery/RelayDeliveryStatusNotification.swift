import Foundation
import NIOCore
import SMTPCore

/// Builds the delivery status notification (bounce) for recipients that failed.
///
/// A `multipart/report; report-type=delivery-status` message (RFC 6522) with
/// three parts: a text/plain explanation for people, a
/// `message/delivery-status` part for programs (RFC 3464), and the original
/// message's header section as `text/rfc822-headers` (no body: it may be
/// large, and the sender has it).
///
/// Pure: the caller passes the time, ids and the original header bytes; the
/// result is the complete message with CRLF line ends, to be queued with the
/// null reverse path `<>` (RFC 5321 §4.5.5) so that it is never bounced itself.
///
/// The report stays 7-bit: upstream text is reduced to printable ASCII, and
/// 8-bit bytes in the original headers become `?`. Only when a failed
/// recipient or the sender is a UTF-8 address does it switch to the RFC 6533
/// types (`message/global-delivery-status`, `message/global-headers`), which
/// need SMTPUTF8 to travel.
/// - SeeAlso: RFC 3464, RFC 6522, RFC 3462, RFC 3834 (Auto-Submitted), RFC 6533
public enum RelayDeliveryStatusNotification {
    /// One recipient the report is about.
    public struct FailedRecipient: Sendable, Hashable {
        public var address: String
        /// The upstream reply (`550 5.7.60 ...`) or the relay's reason.
        public var reply: String
        /// The message aged out (`delivery.max_age`) rather than being refused.
        public var expired: Bool
        /// Defaults to the report's `now`.
        public var lastAttemptAt: Date?
        /// The upstream host that gave the reply, when known.
        public var remoteMTA: String?

        public init(address: String, reply: String, expired: Bool = false, lastAttemptAt: Date? = nil, remoteMTA: String? = nil) {
            self.address = address
            self.reply = reply
            self.expired = expired
            self.lastAttemptAt = lastAttemptAt
            self.remoteMTA = remoteMTA
        }

        /// `Status:`: 4.4.7 when expired; else the reply's enhanced code when
        /// it is a permanent one; else 5.0.0.
        ///
        /// A reply starting `Delivery expired` (the text the delivery service
        /// records for an aged-out recipient) counts as expired.
        /// - SeeAlso: RFC 3463 §3.5 (4.4.7 delivery time expired)
        public var status: SMTPEnhancedStatus {
            if expired || reply.hasPrefix("Delivery expired") { return SMTPEnhancedStatus(4, 4, 7) }
            // `550 5.1.1 text` or the first line of a multi-line reply, `550-5.1.1 text`.
            if let smtp = RelayDeliveryStatusNotification.smtpReply(in: reply), smtp.hasPrefix("5"),
               let word = smtp.dropFirst(4).split(separator: " ", maxSplits: 1).first,
               let enhanced = SMTPEnhancedStatus(parsing: word), enhanced.statusClass == 5 {
                return enhanced
            }
            return SMTPEnhancedStatus(5, 0, 0)
        }
    }

    /// The complete DSN message.
    ///
    /// - Parameters:
    ///   - reportingHost: `Reporting-MTA` and the domain of `Message-ID`.
    ///   - from: the `From:` address; default `MAILER-DAEMON@<reportingHost>`.
    ///     Through Microsoft 365 this must be a mailbox the route may send as
    ///     (the route's `mailbox` or `delivery.operator`).
    ///   - originalSender: who the report is for (`To:`): the original envelope
    ///     sender, or the operator.
    ///   - originalQueueID: the failed message's queue id, for the trace.
    ///   - arrivalDate: when the failed message was received (`Arrival-Date`).
    ///   - now: `Date:` and the default `Last-Attempt-Date`.
    ///   - originalHeaders: the failed message's header section (see ``headerSection(of:limit:)``).
    ///   - dsnID: the report's own queue id; makes `Message-ID` and the default boundary.
    ///   - boundary: fixed MIME boundary for tests; default derived from `dsnID`.
    public static func build(
        reportingHost: String,
        from: String? = nil,
        originalSender: String,
        originalQueueID: RelayQueueID,
        arrivalDate: Date,
        now: Date,
        failedRecipients: [FailedRecipient],
        originalHeaders: ByteBuffer,
        dsnID: RelayQueueID,
        boundary: String? = nil
    ) -> ByteBuffer {
        let from = from ?? "MAILER-DAEMON@\(reportingHost)"
        let global = !(originalSender + failedRecipients.map(\.address).joined()).allSatisfy(\.isASCII)
        let headers = normalizedHeaders(originalHeaders, keepUTF8: global)
        let text = explanation(reportingHost: reportingHost, failedRecipients: failedRecipients)
        let report = deliveryStatus(
            reportingHost: reportingHost, originalQueueID: originalQueueID, arrivalDate: arrivalDate,
            now: now, failedRecipients: failedRecipients, global: global)

        var boundary = boundary ?? "=_m365relay_\(dsnID)"
        while headers.contains(boundary) || text.contains(boundary) || report.contains(boundary) {
            boundary += "_"
        }

        var message = ""
        message += "From: Mail Delivery System <\(from)>\r\n"
        message += "To: <\(originalSender)>\r\n"
        message += "Subject: Undelivered Mail Returned to Sender\r\n"
        message += "Date: \(rfc5322Date(now))\r\n"
        message += "Message-ID: <\(dsnID).dsn@\(reportingHost)>\r\n"
        message += "Auto-Submitted: auto-replied\r\n"
        message += "MIME-Version: 1.0\r\n"
        message += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"\(boundary)\"\r\n"
        message += "Content-Transfer-Encoding: \(global ? "8bit" : "7bit")\r\n"
        message += "\r\n"
        message += "This is a MIME-encapsulated message.\r\n"
        message += "\r\n--\(boundary)\r\n"
        message += "Content-Description: Notification\r\n"
        message += "Content-Type: text/plain; charset=\(global ? "utf-8" : "us-ascii")\r\n"
        message += "\r\n"
        message += text
        message += "\r\n--\(boundary)\r\n"
        message += "Content-Description: Delivery report\r\n"
        message += "Content-Type: message/\(global ? "global-delivery-status" : "delivery-status")\r\n"
        message += "\r\n"
        message += report
        message += "\r\n--\(boundary)\r\n"
        message += "Content-Description: Undelivered Message Headers\r\n"
        message += "Content-Type: \(global ? "message/global-headers" : "text/rfc822-headers")\r\n"
        message += "\r\n"
        message += headers
        message += "\r\n--\(boundary)--\r\n"
        return ByteBuffer(string: message)
    }

    /// The same, with recipients as `(address, reply)` pairs.
    public static func build(
        reportingHost: String,
        from: String? = nil,
        originalSender: String,
        originalQueueID: RelayQueueID,
        arrivalDate: Date,
        now: Date,
        failedRecipients: [(String, String)],
        originalHeaders: ByteBuffer,
        dsnID: RelayQueueID,
        boundary: String? = nil
    ) -> ByteBuffer {
        build(
            reportingHost: reportingHost, from: from, originalSender: originalSender, originalQueueID: originalQueueID,
            arrivalDate: arrivalDate, now: now,
            failedRecipients: failedRecipients.map { FailedRecipient(address: $0.0, reply: $0.1) },
            originalHeaders: originalHeaders, dsnID: dsnID, boundary: boundary)
    }

    /// The header section at the start of a message: everything before the
    /// first empty line, ending with that last header's CRLF.
    ///
    /// `prefix` need not be the whole message. Without an empty line in it,
    /// the complete lines of the prefix are taken (headers cut short); at most
    /// `limit` octets are returned either way, ending at a line end.
    public static func headerSection(of prefix: ByteBuffer, limit: Int = 64 * 1024) -> ByteBuffer {
        let bytes = prefix.readableBytesView
        var lineStart = bytes.startIndex
        var end = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex, index - bytes.startIndex < limit {
            if bytes[index] == 10 {
                let line = bytes[lineStart..<index]
                if line.isEmpty || (line.count == 1 && line.first == 13) { break }
                end = index + 1
                lineStart = index + 1
            }
            index += 1
        }
        return ByteBuffer(bytes: bytes[bytes.startIndex..<end])
    }

    // MARK: Parts

    static func explanation(reportingHost: String, failedRecipients: [FailedRecipient]) -> String {
        var lines = [
            "This is the mail system at host \(reportingHost).",
            "",
            "Your message could not be delivered to one or more recipients. It is",
            "attached below (headers only). The reason given for each recipient:",
            "",
        ]
        for recipient in failedRecipients {
            let reason = recipient.status == SMTPEnhancedStatus(4, 4, 7) && !recipient.reply.hasPrefix("Delivery expired")
                ? "Delivery expired; last reply: \(recipient.reply)"
                : recipient.reply
            lines += wrap("<\(printable(recipient.address, keepUTF8: true))>: \(printable(reason, keepUTF8: false))", width: 76)
            lines.append("")
        }
        lines.append("Please check the recipient addresses, or contact your administrator")
        lines.append("with the reply above if the problem persists.")
        return lines.map { $0 + "\r\n" }.joined()
    }

    static func deliveryStatus(
        reportingHost: String, originalQueueID: RelayQueueID, arrivalDate: Date, now: Date,
        failedRecipients: [FailedRecipient], global: Bool
    ) -> String {
        var fields = [
            "Reporting-MTA: dns; \(reportingHost)",
            "X-M365-Relay-Queue-ID: \(originalQueueID)",
            "Arrival-Date: \(rfc5322Date(arrivalDate))",
        ]
        for recipient in failedRecipients {
            let addressType = global && !recipient.address.allSatisfy(\.isASCII) ? "utf-8" : "rfc822"
            fields.append("")
            fields.append("Final-Recipient: \(addressType); \(printable(recipient.address, keepUTF8: global))")
            fields.append("Action: failed")
            fields.append("Status: \(recipient.status)")
            if let remote = recipient.remoteMTA {
                fields.append("Remote-MTA: dns; \(printable(remote, keepUTF8: false))")
            }
            let diagnostic = smtpReply(in: recipient.reply).map { "smtp; \($0)" } ?? "x-m365-relay; \(recipient.reply)"
            fields.append(folded("Diagnostic-Code: " + printable(diagnostic, keepUTF8: false)))
            fields.append("Last-Attempt-Date: \(rfc5322Date(recipient.lastAttemptAt ?? now))")
        }
        return fields.map { $0 + "\r\n" }.joined()
    }

    /// The original headers with CRLF line ends, 8-bit bytes replaced unless kept, ending with CRLF.
    static func normalizedHeaders(_ buffer: ByteBuffer, keepUTF8: Bool) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(buffer.readableBytes + 16)
        var previous: UInt8 = 0
        for byte in buffer.readableBytesView {
            switch byte {
            case 10:
                if previous != 13 { bytes.append(13) }
                bytes.append(10)
            case 13:
                bytes.append(13)
            default:
                // A lone CR (one not followed by LF) is completed to CRLF.
                if previous == 13 { bytes.append(10) }
                bytes.append(byte >= 0x80 && !keepUTF8 ? UInt8(ascii: "?") : byte)
            }
            previous = byte
        }
        if previous == 13 { bytes.append(10) }
        if !bytes.isEmpty && bytes.last != 10 { bytes += [13, 10] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The SMTP reply in `text`: the text itself when it starts with a reply
    /// code, or what follows `last reply: ` when that does.
    static func smtpReply(in text: String) -> String? {
        func isReply(_ candidate: Substring) -> Bool {
            let code = candidate.prefix(3)
            guard code.count == 3, code.allSatisfy({ $0.isASCII && $0.isNumber }), let first = code.first, "2345".contains(first) else { return false }
            let after = candidate.dropFirst(3).first
            return after == nil || after == " " || after == "-"
        }
        if isReply(Substring(text)) { return text }
        if let range = text.range(of: "last reply: "), isReply(text[range.upperBound...]) {
            return String(text[range.upperBound...])
        }
        return nil
    }

    /// Printable text on one line: controls become spaces, non-ASCII `?` unless kept; at most 900 characters.
    static func printable(_ text: String, keepUTF8: Bool) -> String {
        var result = ""
        for scalar in text.unicodeScalars.prefix(900) {
            if scalar.value < 0x20 || scalar.value == 0x7F {
                result.append(" ")
            } else if !scalar.isASCII && !keepUTF8 {
                result.append("?")
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// Folds a header field at spaces so lines stay near 78 characters (RFC 5322 §2.1.1).
    static func folded(_ field: String) -> String {
        wrap(field, width: 78).enumerated().map { $0.offset == 0 ? $0.element : " " + $0.element }.joined(separator: "\r\n")
    }

    /// Splits text at spaces into lines of at most `width` characters where
    /// the words allow; a longer word stays whole on its own line.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            if current.isEmpty {
                current = String(word)
            } else if current.count + 1 + word.count <= width {
                current += " " + word
            } else {
                lines.append(current)
                current = String(word)
            }
        }
        if !current.isEmpty || lines.isEmpty { lines.append(current) }
        return lines
    }

    /// `Tue, 14 Jul 2026 10:00:00 +0000`, computed without a calendar or locale.
    /// - SeeAlso: RFC 5322 §3.3
    static func rfc5322Date(_ date: Date) -> String {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthPrime = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthPrime + 2) / 5 + 1
        let month = monthPrime < 10 ? monthPrime + 3 : monthPrime - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday (index 4)
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(weekdays[weekday]), \(day) \(months[month - 1]) \(year) "
            + "\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) +0000"
    }
}
