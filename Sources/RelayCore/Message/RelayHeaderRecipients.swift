/// Which envelope recipients a header-driven submission (Graph `sendMail`
/// with MIME) would drop, and the header section that keeps them.
///
/// Graph takes recipients from `To`, `Cc` and `Bcc`, not from an envelope:
/// an envelope recipient named in none of them (a Bcc the client removed, a
/// list expansion) is silently dropped unless the relay names it in `Bcc:`.
/// - SeeAlso: M365.md, Graph sendMail with MIME
public enum RelayHeaderRecipients {
    /// The header fields Graph reads recipients from.
    public static let recipientFields = ["To", "Cc", "Bcc"]

    /// Envelope recipients named in no `To`, `Cc` or `Bcc` field, in envelope
    /// order and without duplicates; addresses compare case-insensitively.
    public static func missing(envelope: [String], headers: RelayHeaderSection) -> [String] {
        var named = Set(recipientFields.flatMap { headers.addresses($0) }.map(\.comparisonKey))
        var missing: [String] = []
        for recipient in envelope where !named.contains(recipient.lowercased()) {
            missing.append(recipient)
            named.insert(recipient.lowercased())
        }
        return missing
    }

    /// Header addresses (To, Cc, Bcc) that are not envelope recipients:
    /// Graph would send to them although the envelope does not ask for it
    /// (a list address, a recipient already delivered in an earlier attempt).
    public static func extra(envelope: [String], headers: RelayHeaderSection) -> [String] {
        let wanted = Set(envelope.map { $0.lowercased() })
        var seen = Set<String>()
        return recipientFields.flatMap { headers.addresses($0) }.compactMap { address in
            let key = address.comparisonKey
            guard !wanted.contains(key), seen.insert(key).inserted else { return nil }
            return address.address
        }
    }

    /// The header section `original` (as parsed into `headers`) with `bcc`
    /// added to its `Bcc:` field, every other octet unchanged.
    ///
    /// An existing `Bcc:` keeps its mailboxes and moves to the end of the
    /// section with the new ones (RFC 5322 allows one `Bcc:`); a new one is
    /// folded one address per line so no line nears the 998-octet limit.
    /// Returns the section with its terminating empty line.
    /// - SeeAlso: RFC 5322 §3.6 (at most one Bcc), §2.1.1 (line length)
    public static func adding<Bytes: RandomAccessCollection<UInt8>>(bcc: [String], to original: Bytes, headers: RelayHeaderSection) -> [UInt8] where Bytes.Index == Int {
        let base = original.startIndex
        let section = original[base..<(base + headers.length)]
        guard !bcc.isEmpty else { return Array(section) }
        var output: [UInt8] = []
        output.reserveCapacity(headers.length + 64 * bcc.count)
        var existing: [String] = []
        var cursor = base
        let fieldsEnd = base + (headers.fields.last?.range.upperBound ?? 0)
        for field in headers.fields where field.name.relayEqualsIgnoringCase("Bcc") {
            output += original[cursor..<(base + field.range.lowerBound)]
            cursor = base + field.range.upperBound
            if !field.value.isEmpty, !RelayAddressList.parse(field.value).isEmpty { existing.append(field.value) }
        }
        output += original[cursor..<fieldsEnd]
        // A last field without a line end (a section with no body) needs one first.
        if let last = output.last, last != 10 { output += [13, 10] }
        var line = "Bcc: "
        let entries = existing + bcc
        for (index, entry) in entries.enumerated() {
            line += entry
            line += index == entries.count - 1 ? "\r\n" : ",\r\n "
        }
        output += Array(line.utf8)
        output += [13, 10]
        return output
    }
}
