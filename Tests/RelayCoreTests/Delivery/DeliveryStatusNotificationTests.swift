import Foundation
import NIOCore
import SMTPCore
import Testing
@testable import RelayCore

@Suite("Delivery status notification")
struct DeliveryStatusNotificationTests {
    typealias DSN = RelayDeliveryStatusNotification

    static let arrival = Date(timeIntervalSince1970: 1_784_000_000)
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let originalID = RelayQueueID(rawValue: "0123456789ABCDEF")
    static let dsnID = RelayQueueID(rawValue: "0123456789ABCDEG")
    static let originalHeaders = """
        Received: from scanner ([10.20.0.7])\r
        \tby relay.contoso.local (m365-relay) with ESMTP\r
        From: Scanner <scanner@contoso.com>\r
        To: a@fabrikam.com, b@fabrikam.com\r
        Subject: Scan 42\r
        Message-ID: <scan42@contoso.com>\r

        """

    /// A MIME entity split into its header fields (unfolded, names lowercased) and its body.
    struct Entity {
        var fields: [(name: String, value: String)]
        var body: String

        init(_ text: String) throws {
            let split = try #require(text.range(of: "\r\n\r\n"), "no empty line after the header section")
            let head = String(text[..<split.lowerBound])
            body = String(text[split.upperBound...])
            fields = Self.parseFields(head)
        }

        static func parseFields(_ text: String) -> [(name: String, value: String)] {
            var fields: [(name: String, value: String)] = []
            for line in text.components(separatedBy: "\r\n") where !line.isEmpty {
                if line.first == " " || line.first == "\t", !fields.isEmpty {
                    fields[fields.count - 1].value += " " + line.trimmingCharacters(in: .whitespaces)
                } else if let colon = line.firstIndex(of: ":") {
                    fields.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
                }
            }
            return fields
        }

        subscript(_ name: String) -> String? { fields.first { $0.name == name.lowercased() }?.value }
    }

    func build(
        _ recipients: [DSN.FailedRecipient],
        headers: String = Self.originalHeaders,
        boundary: String? = "BOUNDARY-1"
    ) -> String {
        let buffer = DSN.build(
            reportingHost: "relay.contoso.local", originalSender: "scanner@contoso.com", originalQueueID: Self.originalID,
            arrivalDate: Self.arrival, now: Self.now, failedRecipients: recipients,
            originalHeaders: ByteBuffer(string: headers), dsnID: Self.dsnID, boundary: boundary)
        return String(buffer: buffer)
    }

    func expectCRLFOnly(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let bytes = Array(text.utf8)
        for (index, byte) in bytes.enumerated() {
            if byte == 10 { #expect(index > 0 && bytes[index - 1] == 13, "bare LF at \(index)", sourceLocation: sourceLocation) }
            if byte == 13 { #expect(index + 1 < bytes.count && bytes[index + 1] == 10, "bare CR at \(index)", sourceLocation: sourceLocation) }
        }
        for line in text.components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 998, "line longer than RFC 5322 allows", sourceLocation: sourceLocation)
        }
    }

    @Test func reportHasTheRFC3464Structure() throws {
        let text = build([
            .init(address: "a@fabrikam.com", reply: "550 5.1.1 User unknown", remoteMTA: "fabrikam-com.mail.protection.outlook.com"),
            .init(address: "b@fabrikam.com", reply: "Delivery expired after 120 hours; last reply: 451 4.7.500 Access denied, please try again later"),
            .init(address: "c@fabrikam.com", reply: "554 Transaction failed"),
            .init(address: "d@fabrikam.com", reply: "ErrorSendAsDenied: The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account"),
        ])
        expectCRLFOnly(text)

        let message = try Entity(text)
        #expect(message["From"] == "Mail Delivery System <MAILER-DAEMON@relay.contoso.local>")
        #expect(message["To"] == "<scanner@contoso.com>")
        #expect(message["Subject"] == "Undelivered Mail Returned to Sender")
        #expect(message["Date"] == "Fri, 15 Jan 2027 08:00:00 +0000")
        #expect(message["Message-ID"] == "<0123456789ABCDEG.dsn@relay.contoso.local>")
        #expect(message["Auto-Submitted"] == "auto-replied")
        #expect(message["MIME-Version"] == "1.0")
        #expect(message["Content-Type"] == "multipart/report; report-type=delivery-status; boundary=\"BOUNDARY-1\"")

        // Preamble, three parts, and the close delimiter as the very end.
        #expect(message.body.hasSuffix("\r\n--BOUNDARY-1--\r\n"))
        let beforeClose = String(message.body.dropLast("\r\n--BOUNDARY-1--\r\n".count))
        let chunks = beforeClose.components(separatedBy: "\r\n--BOUNDARY-1\r\n")
        #expect(chunks.count == 4)
        let parts = try chunks.dropFirst().map(Entity.init)

        // 1: for people.
        #expect(parts[0]["Content-Type"] == "text/plain; charset=us-ascii")
        #expect(parts[0].body.contains("<a@fabrikam.com>: 550 5.1.1 User unknown"))
        #expect(parts[0].body.contains("<b@fabrikam.com>: Delivery expired after 120 hours"))

        // 2: for programs. Per-message fields, then one group per recipient.
        #expect(parts[1]["Content-Type"] == "message/delivery-status")
        let groups = parts[1].body.components(separatedBy: "\r\n\r\n").map(Entity.parseFields).filter { !$0.isEmpty }
        #expect(groups.count == 5)
        func field(_ group: Int, _ name: String) -> String? { groups[group].first { $0.name == name.lowercased() }?.value }
        #expect(field(0, "Reporting-MTA") == "dns; relay.contoso.local")
        #expect(field(0, "Arrival-Date") == "Tue, 14 Jul 2026 03:33:20 +0000")
        #expect(field(0, "X-M365-Relay-Queue-ID") == "0123456789ABCDEF")

        #expect(field(1, "Final-Recipient") == "rfc822; a@fabrikam.com")
        #expect(field(1, "Action") == "failed")
        #expect(field(1, "Status") == "5.1.1")
        #expect(field(1, "Remote-MTA") == "dns; fabrikam-com.mail.protection.outlook.com")
        #expect(field(1, "Diagnostic-Code") == "smtp; 550 5.1.1 User unknown")
        #expect(field(1, "Last-Attempt-Date") == "Fri, 15 Jan 2027 08:00:00 +0000")

        #expect(field(2, "Final-Recipient") == "rfc822; b@fabrikam.com")
        #expect(field(2, "Status") == "4.4.7", "expiry")
        #expect(field(2, "Diagnostic-Code") == "smtp; 451 4.7.500 Access denied, please try again later")

        #expect(field(3, "Status") == "5.0.0", "no enhanced code in the reply")
        #expect(field(3, "Diagnostic-Code") == "smtp; 554 Transaction failed")

        #expect(field(4, "Status") == "5.0.0")
        #expect(field(4, "Diagnostic-Code")?.hasPrefix("x-m365-relay; ErrorSendAsDenied: The user account") == true)
        #expect(field(4, "Diagnostic-Code")?.hasSuffix("on behalf of the specified sending account") == true, "folded, not cut")

        // 3: the original header section, and nothing of the body.
        #expect(parts[2]["Content-Type"] == "text/rfc822-headers")
        #expect(parts[2].body == Self.originalHeaders)
    }

    @Test func statusComesFromTheReply() {
        func status(_ reply: String, expired: Bool = false) -> String {
            DSN.FailedRecipient(address: "a@b.example", reply: reply, expired: expired).status.description
        }
        #expect(status("550 5.7.60 SMTP; Client does not have permissions to send as this sender") == "5.7.60")
        #expect(status("554 5.2.252 SendAsDenied; a not allowed to send as b") == "5.2.252")
        #expect(status("550-5.1.1 first line") == "5.1.1")
        #expect(status("552 5.3.4 Message size exceeds fixed maximum") == "5.3.4")
        #expect(status("550 Mailbox unavailable") == "5.0.0")
        #expect(status("451 4.7.500 Access denied") == "5.0.0", "a failed recipient's status is permanent")
        #expect(status("451 4.7.500 Access denied", expired: true) == "4.4.7")
        #expect(status("connection refused") == "5.0.0")
    }

    @Test func boundaryNeverAppearsInTheContent() throws {
        let headers = "Subject: tricky =_m365relay_0123456789ABCDEG\r\n"
        let text = build([.init(address: "a@b.example", reply: "550 5.1.1 no")], headers: headers, boundary: nil)
        let message = try Entity(text)
        let contentType = try #require(message["Content-Type"])
        let boundary = try #require(contentType.components(separatedBy: "boundary=\"").last?.dropLast())
        #expect(boundary.hasPrefix("=_m365relay_0123456789ABCDEG"))
        #expect(!headers.contains(String(boundary)))
        #expect(text.components(separatedBy: "--\(boundary)\r\n").count == 4)
    }

    @Test func originalHeadersAreNormalised() throws {
        let text = build([.init(address: "a@b.example", reply: "550 5.1.1 no")], headers: "Subject: caf\u{E9}\nX-Bare: cr\rTo: x@y.example", boundary: "SEP")
        expectCRLFOnly(text)
        #expect(text.contains("Subject: caf??\r\nX-Bare: cr\r\nTo: x@y.example\r\n\r\n--SEP--\r\n"))
    }

    @Test func controlCharactersInRepliesCannotInjectFields() {
        let text = build([.init(address: "a@b.example", reply: "550 5.1.1 no\r\nStatus: 2.0.0")])
        expectCRLFOnly(text)
        #expect(!text.contains("\r\nStatus: 2.0.0"))
    }

    @Test func utf8RecipientUsesGlobalTypes() throws {
        let text = build([.init(address: "j\u{F6}rg@m\u{FC}ller.example", reply: "550 5.1.1 unknown")])
        #expect(text.contains("Content-Type: message/global-delivery-status"))
        #expect(text.contains("Content-Type: message/global-headers"))
        #expect(text.contains("Final-Recipient: utf-8; j\u{F6}rg@m\u{FC}ller.example"))
    }

    @Test func pairsOverloadAndDefaultSender() throws {
        let buffer = DSN.build(
            reportingHost: "relay.example", from: "bounces@contoso.com", originalSender: "s@contoso.com",
            originalQueueID: Self.originalID, arrivalDate: Self.arrival, now: Self.now,
            failedRecipients: [("a@b.example", "550 5.1.1 unknown")], originalHeaders: ByteBuffer(), dsnID: Self.dsnID)
        let message = try Entity(String(buffer: buffer))
        #expect(message["From"] == "Mail Delivery System <bounces@contoso.com>")
        #expect(String(buffer: buffer).contains("Status: 5.1.1\r\n"))
    }

    @Test(arguments: [
        ("From: a\r\nTo: b\r\n\r\nbody\r\n", "From: a\r\nTo: b\r\n"),
        ("From: a\nTo: b\n\nbody\n", "From: a\nTo: b\n"),
        ("\r\nbody\r\n", ""),
        ("From: a\r\nSubject: cut sh", "From: a\r\n"),          // prefix ends mid-header
        ("From: a\r\n\tfolded\r\n\r\n", "From: a\r\n\tfolded\r\n"),
    ])
    func headerSection(prefix: String, expected: String) {
        #expect(String(buffer: DSN.headerSection(of: ByteBuffer(string: prefix))) == expected)
    }

    @Test func headerSectionIsBounded() {
        let long = String(repeating: "X-Pad: 0123456789\r\n", count: 1000) + "\r\nbody"
        let section = DSN.headerSection(of: ByteBuffer(string: long), limit: 100)
        #expect(section.readableBytes <= 100)
        #expect(String(buffer: section).hasSuffix("\r\n"))
    }

    @Test(arguments: [
        (0.0, "Thu, 1 Jan 1970 00:00:00 +0000"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
        (-86_400, "Wed, 31 Dec 1969 00:00:00 +0000"),
        (1_784_000_000, "Tue, 14 Jul 2026 03:33:20 +0000"),
    ])
    func dates(seconds: TimeInterval, expected: String) {
        #expect(DSN.rfc5322Date(Date(timeIntervalSince1970: seconds)) == expected)
    }
}
