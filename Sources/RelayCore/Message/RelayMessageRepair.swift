import Foundation
import SMTPCore

/// One change the relay made to a message before queueing it; named in the audit line.
public enum RelayRepair: Hashable, Sendable, CustomStringConvertible {
    /// `rewrite_sender` replaced the envelope sender.
    case envelopeSenderRewritten
    /// `rewrite_sender` replaced `From:`.
    case fromRewritten
    /// `reply_to_original` added `Reply-To:`.
    case replyToAdded
    /// A rewrite removed `Sender:` fields naming the device.
    case senderFieldRemoved
    /// There was no `From:`; it names the envelope sender.
    case fromAdded
    /// `From:` was not RFC 5322 (no address, unquoted specials, a group, several fields): rewritten.
    case fromRepaired
    /// Several authors and no `Sender:`: the envelope sender was added as `Sender:`.
    case senderFieldAdded
    case messageIDAdded
    case dateAdded
    /// A configured `strip_headers` name (from the configuration, not the client).
    case headerStripped(String)
    /// A header line over 998 octets was folded.
    case headerFolded
    /// The header section did not end with an empty line; one was added.
    case headerEndAdded
    /// A body line over 998 octets: the text body was re-encoded as quoted-printable.
    case bodyQuotedPrintable

    public var description: String {
        switch self {
        case .envelopeSenderRewritten: "envelope-sender-rewritten"
        case .fromRewritten: "from-rewritten"
        case .replyToAdded: "reply-to-added"
        case .senderFieldRemoved: "sender-field-removed"
        case .fromAdded: "from-added"
        case .fromRepaired: "from-repaired"
        case .senderFieldAdded: "sender-field-added"
        case .messageIDAdded: "message-id-added"
        case .dateAdded: "date-added"
        case .headerStripped(let name): "stripped:\(name)"
        case .headerFolded: "header-folded"
        case .headerEndAdded: "header-end-added"
        case .bodyQuotedPrintable: "body-quoted-printable"
        }
    }
}

/// Why a message cannot be queued: the reply for the client and a short reason for the audit line.
public struct RelayRepairRefusal: Hashable, Sendable, Error, CustomStringConvertible {
    public var reply: SMTPReply
    /// Stable and free of client data, e.g. `header-from-not-allowed`.
    public var reason: String

    public init(_ reply: SMTPReply, reason: String) {
        self.reply = reply
        self.reason = reason
    }

    public var description: String { reason }

    static func senderNotAllowed(field: String) -> RelayRepairRefusal {
        RelayRepairRefusal(
            SMTPReply(550, .init(5, 7, 1), "Header \(field): address not allowed for this client"),
            reason: "header-\(field.lowercased())-not-allowed")
    }

    static let noSender = RelayRepairRefusal(
        SMTPReply(550, .init(5, 7, 1), "Message refused: no From: header and a null envelope sender to make one from"),
        reason: "no-from-and-null-sender")

    static func unfoldable(field: String) -> RelayRepairRefusal {
        RelayRepairRefusal(
            SMTPReply(554, .init(5, 6, 0), "Message refused: header \(field) has a line longer than 998 octets with no whitespace to fold it at"),
            reason: "header-line-unfoldable")
    }

    static func headerTooLarge(_ limit: Int) -> RelayRepairRefusal {
        RelayRepairRefusal(
            SMTPReply(552, .init(5, 3, 4), "Message refused: the header section is larger than \(limit) octets"),
            reason: "header-section-too-large")
    }

    static func bodyLineTooLong(_ why: String) -> RelayRepairRefusal {
        RelayRepairRefusal(
            SMTPReply(554, .init(5, 6, 0), "Message refused: a body line is longer than 998 octets and \(why)"),
            reason: "body-line-too-long")
    }
}

/// Makes a message's header section acceptable to Microsoft 365, or says why it cannot be.
///
/// Pure: bytes and facts in, a decision out. The order matters and is the
/// one PRODUCT.md gives: strip configured fields, apply `rewrite_sender`,
/// repair `From:`, check `allowed_senders` on the result, add `Message-ID:`
/// and `Date:`, fold long lines. The client's fields keep their exact bytes
/// unless one of these steps changes them.
/// - SeeAlso: RFC 5322 §3.6 (required fields), §2.1.1 (line length); M365.md (5.7.512, 5.6.11)
public enum RelayMessageRepair {
    /// Limits of the repair, each with its reason.
    public struct Limits: Hashable, Sendable {
        /// Octets of header section held in memory; far above any real message
        /// (Exchange's own header limit is 256 KB), low enough to bound a session.
        public var maximumHeaderSection = 256 * 1024
        /// Octets of a text body held back to learn whether it has an over-long line
        /// before its header is written. A longer body with its first long line
        /// further on is refused rather than held.
        public var bodyLookahead = 1024 * 1024
        /// RFC 5322 §2.1.1, RFC 5321 §4.5.3.1.6.
        public var maximumLineLength = RelayHeaderFolding.maximumLineLength

        public init() {}
    }

    /// The facts of the message that the decisions depend on.
    public struct Context: Hashable, Sendable {
        public var rules: RelaySenderRules
        /// The sender given at MAIL; empty for `<>`.
        public var envelopeSender: String
        /// For a new `Message-ID: <queueID@hostname>`.
        public var queueID: String
        public var hostname: String
        /// For a new `Date:`: when the message arrived.
        public var date: Date

        public init(rules: RelaySenderRules, envelopeSender: String, queueID: String, hostname: String, date: Date) {
            self.rules = rules
            self.envelopeSender = envelopeSender
            self.queueID = queueID
            self.hostname = hostname
            self.date = date
        }
    }

    /// Repairs the header section `bytes` (its fields, with or without the empty line that ends it).
    ///
    /// - Parameter endsWithEmptyLine: whether the client ended the section with an empty line;
    ///   when it did not (the body began at once), one is added.
    public static func repairHeader(
        _ bytes: [UInt8], endsWithEmptyLine: Bool = true, context: Context, limits: Limits = Limits()
    ) -> Result<RelayRepairedHeader, RelayRepairRefusal> {
        let section = RelayHeaderSection.parse(bytes)
        var fields: [RelayRepairedHeader.Field] = section.fields.map { field in
            var raw = Array(bytes[field.range])
            if raw.last != 10 { raw += [13, 10] }
            return RelayRepairedHeader.Field(name: field.name, value: field.value, bytes: raw)
        }
        var applied: [RelayRepair] = []
        if !endsWithEmptyLine { applied.append(.headerEndAdded) }
        let rules = context.rules
        func has(_ name: String) -> Bool { fields.contains { $0.is(name) } }
        func values(_ name: String) -> [String] { fields.filter { $0.is(name) }.map(\.value) }

        // 1. Configured fields go first, so that nothing below reads them.
        for name in rules.stripHeaders where has(name) {
            fields.removeAll { $0.is(name) }
            applied.append(.headerStripped(name))
        }

        // 2. The author: rewritten, or repaired when Exchange would refuse it.
        var envelopeSender = context.envelopeSender
        let fromValues = values("From")
        let reading = RelayFromField.read(fromValues)
        var newFrom: [RelayHeaderAddress]?
        var added: [RelayRepairedHeader.Field] = []
        if let rewrite = rules.rewriteSender {
            let outcome = RelaySenderRewrite.rewrite(
                to: rewrite, displayName: rules.rewriteDisplayName, replyToOriginal: rules.replyToOriginal,
                original: reading, envelopeSender: context.envelopeSender, hasReplyTo: has("Reply-To"))
            if envelopeSender != rewrite {
                envelopeSender = rewrite
                applied.append(.envelopeSenderRewritten)
            }
            newFrom = [outcome.from]
            applied.append(.fromRewritten)
            if let replyTo = outcome.replyTo {
                added.append(.make("Reply-To", RelayFromField.render(replyTo)))
                applied.append(.replyToAdded)
            }
            if has("Sender") {
                fields.removeAll { $0.is("Sender") }
                applied.append(.senderFieldRemoved)
            }
        } else if fromValues.isEmpty {
            guard !envelopeSender.isEmpty else { return .failure(.noSender) }
            newFrom = [RelayHeaderAddress(address: envelopeSender)]
            applied.append(.fromAdded)
        } else if fromValues.count > 1 || !fromValues.allSatisfy(RelayFromField.isCompliant) {
            var mailboxes = reading.mailboxes
            if mailboxes.isEmpty {
                guard !envelopeSender.isEmpty else { return .failure(.noSender) }
                mailboxes = [RelayHeaderAddress(displayName: reading.bareName, address: envelopeSender)]
            }
            newFrom = mailboxes
            applied.append(.fromRepaired)
        }
        if let newFrom {
            // The new From takes the place of the first old one; the others go.
            let field = RelayRepairedHeader.Field.make("From", RelayFromField.render(newFrom))
            if let first = fields.firstIndex(where: { $0.is("From") }) {
                fields = Array(fields[..<first]) + [field] + added + fields[(first + 1)...].filter { !$0.is("From") }
            } else {
                fields.append(field)
                fields += added
            }
        } else {
            fields += added
        }
        let authors = RelayFromField.read(values("From")).mailboxes
        // RFC 5322 §3.6.2: more than one author needs a Sender.
        if authors.count > 1, !has("Sender"), !envelopeSender.isEmpty {
            fields.append(.make("Sender", envelopeSender))
            applied.append(.senderFieldAdded)
        }

        // An empty or address-less Sender says nothing; Exchange would refuse it.
        if fields.contains(where: { $0.is("Sender") && RelayAddressList.parse($0.value).isEmpty }) {
            fields.removeAll { $0.is("Sender") && RelayAddressList.parse($0.value).isEmpty }
            if !applied.contains(.senderFieldRemoved) { applied.append(.senderFieldRemoved) }
        }

        // 3. allowed_senders holds for every author and the Sender, after any rewrite.
        if authors.contains(where: { !RelayAddressPattern.matches($0.address, anyOf: rules.allowedSenders) }) {
            return .failure(.senderNotAllowed(field: "From"))
        }
        let senders = values("Sender")
        if senders.flatMap(RelayAddressList.parse).contains(where: { !RelayAddressPattern.matches($0.address, anyOf: rules.allowedSenders) }) {
            return .failure(.senderNotAllowed(field: "Sender"))
        }

        // 4. The fields Exchange insists on.
        var messageID = values("Message-ID").first { !$0.isEmpty }
        if messageID == nil {
            fields.removeAll { $0.is("Message-ID") }
            let id = "<\(context.queueID)@\(context.hostname)>"
            fields.append(.make("Message-ID", id))
            messageID = id
            applied.append(.messageIDAdded)
        }
        if !values("Date").contains(where: { !$0.isEmpty }) {
            fields.removeAll { $0.is("Date") }
            fields.append(.make("Date", RelayReceivedHeader.rfc5322Date(context.date)))
            applied.append(.dateAdded)
        }

        // 5. No line over 998 octets.
        var folded = false
        for index in fields.indices where RelayHeaderFolding.needsFolding(fields[index].bytes, limit: limits.maximumLineLength) {
            guard let bytes = RelayHeaderFolding.fold(fields[index].bytes, limit: limits.maximumLineLength) else {
                return .failure(.unfoldable(field: RelayRepairedHeader.Field.printableName(fields[index].name)))
            }
            fields[index].bytes = bytes
            folded = true
        }
        if folded { applied.append(.headerFolded) }

        return .success(RelayRepairedHeader(fields: fields, envelopeSender: envelopeSender, messageID: messageID, applied: applied))
    }
}

/// A repaired header section, ready to be written before the body.
public struct RelayRepairedHeader: Hashable, Sendable {
    public struct Field: Hashable, Sendable {
        public var name: String
        /// Unfolded, as ``RelayHeaderSection`` reads it.
        public var value: String
        /// The whole field, CRLF line ends included.
        public var bytes: [UInt8]

        func `is`(_ other: String) -> Bool { name.relayEqualsIgnoringCase(other) }

        /// A field the relay writes: `Name: value` and CRLF.
        static func make(_ name: String, _ value: String) -> Field {
            Field(name: name, value: value, bytes: Array("\(name): \(value)\r\n".utf8))
        }

        /// A client's field name fit for a reply: printable ASCII only, bounded.
        static func printableName(_ name: String) -> String {
            let ok = name.utf8.count <= 64 && name.unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 && $0 != ":" }
            return ok ? name : "field"
        }
    }

    public var fields: [Field]
    /// The envelope sender to queue (the rewrite address with `rewrite_sender`).
    public var envelopeSender: String
    /// The message's `Message-ID` as written (client text: escape it before logging).
    public var messageID: String?
    public var applied: [RelayRepair]

    public init(fields: [Field], envelopeSender: String, messageID: String?, applied: [RelayRepair]) {
        self.fields = fields
        self.envelopeSender = envelopeSender
        self.messageID = messageID
        self.applied = applied
    }

    /// Whether a body line over 998 octets can be fixed by re-encoding:
    /// a single text part sent as 7bit or 8bit. Multipart bodies, and bodies
    /// already base64 or quoted-printable, would need their parts rewritten.
    /// - SeeAlso: RFC 2045 §6.1-6.2, §5.2 (no Content-Type means text/plain)
    public var canReencodeBody: Bool { whyBodyCannotBeReencoded == nil }

    /// Why a long body line cannot be re-encoded, for the refusal; nil when it can.
    public var whyBodyCannotBeReencoded: String? {
        let headers = RelayHeaderSection(fields: fields.map { .init(name: $0.name, value: $0.value, range: 0..<0) }, length: 0, isComplete: true)
        let part = RelayMIMEPart(headers: headers, body: [], parts: [])
        let type = part.contentType.value
        guard type.hasPrefix("text/") else {
            // Only text the relay itself parsed is echoed, and only when it is a plain token.
            let plain = type.count <= 64 && type.unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 }
            return "the body is \(plain ? type : "not text"), not a single text part the relay can re-encode"
        }
        let encoding = part.transferEncoding
        guard ["7bit", "8bit"].contains(encoding) else {
            let known = ["base64", "quoted-printable", "binary"].contains(encoding) ? encoding : "an unknown encoding"
            return "the body is already transfer-encoded (\(known))"
        }
        return nil
    }

    /// The header section with its ending empty line.
    ///
    /// - Parameter quotedPrintableBody: the body will be re-encoded: the
    ///   transfer encoding says so, and a non-MIME message becomes MIME
    ///   (`charset=utf-8` is assumed where none was declared).
    public func rendered(quotedPrintableBody: Bool = false) -> [UInt8] {
        var fields = self.fields
        if quotedPrintableBody {
            let encoding = Field.make("Content-Transfer-Encoding", "quoted-printable")
            if let index = fields.firstIndex(where: { $0.is("Content-Transfer-Encoding") }) {
                fields = Array(fields[..<index]) + [encoding] + fields[(index + 1)...].filter { !$0.is("Content-Transfer-Encoding") }
            } else {
                fields.append(encoding)
            }
            if !fields.contains(where: { $0.is("MIME-Version") }) { fields.append(.make("MIME-Version", "1.0")) }
            if !fields.contains(where: { $0.is("Content-Type") }) { fields.append(.make("Content-Type", "text/plain; charset=utf-8")) }
        }
        var output: [UInt8] = []
        output.reserveCapacity(fields.reduce(2) { $0 + $1.bytes.count } + 80)
        for field in fields { output += field.bytes }
        output += [13, 10]
        return output
    }
}
