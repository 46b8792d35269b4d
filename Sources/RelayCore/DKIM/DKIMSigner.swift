/// Signs messages for one domain and selector: builds the `DKIM-Signature:` field.
///
/// Pure: the caller supplies the header section, the body hash (see
/// ``DKIMBodyHasher``, so that the body is streamed, never held) and the time.
/// Always `c=relaxed/relaxed`; the key picks `a=`.
/// - SeeAlso: RFC 6376 §3.5 (the field), §5 (signing), RFC 8463 (Ed25519)
public struct DKIMSigner: Sendable {
    /// `d=`, as configured (lower-cased).
    public var domain: String
    /// `s=`.
    public var selector: String
    public var key: DKIMSigningKey
    /// Names of the fields to sign, in order; each is signed as often as it occurs.
    public var headers: [String]

    public init(domain: String, selector: String, key: DKIMSigningKey, headers: [String] = DKIMSigner.defaultHeaders) {
        self.domain = domain.lowercased()
        self.selector = selector
        self.key = key
        self.headers = headers
    }

    /// PRODUCT.md's default: the fields a recipient reads and a forger would change.
    public static let defaultHeaders = [
        "From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Reply-To",
    ]

    /// Longest line of the field: under 78 characters (RFC 5322 §2.1.1: SHOULD be no more than 78).
    static let foldColumn = 77

    // MARK: Header selection

    /// The fields to sign and the `h=` list that names them.
    ///
    /// For each configured name (once, case-insensitively), every field of
    /// that name present in the message is signed, from the bottom up, and
    /// the name is listed once per instance: a verifier takes the instances
    /// bottom-up too. Names that are absent are not listed, except `From`,
    /// which RFC 6376 §5.4 requires in `h=` (an absent From is then signed
    /// as absent).
    /// - SeeAlso: RFC 6376 §5.4 (which fields), §5.4.2 (repeated fields)
    public static func selectHeaders(_ headers: [String], in fields: [[UInt8]]) -> (names: [String], canonical: [UInt8]) {
        let named = fields.compactMap { field in DKIMRelaxedHeader.name(of: field).map { ($0, field) } }
        var seen: Set<String> = []
        var names: [String] = []
        var canonical: [UInt8] = []
        for configured in headers {
            let lower = configured.lowercased()
            guard seen.insert(lower).inserted else { continue }
            let instances = named.filter { $0.0 == lower }
            for (_, field) in instances.reversed() {
                names.append(configured)
                canonical += DKIMRelaxedHeader.canonicalize(field) ?? []
            }
        }
        if !names.contains(where: { $0.lowercased() == "from" }) { names.insert("From", at: 0) }
        return (names, canonical)
    }

    // MARK: The signature field

    /// The `DKIM-Signature:` field, folded, ending in CRLF, to put above the message.
    ///
    /// - Parameters:
    ///   - fields: the message's header fields as they stand, each with its line ends.
    ///   - bodyHash: the SHA-256 of the relaxed canonical body.
    ///   - timestamp: `t=`, seconds since the epoch.
    public func signatureField(fields: [[UInt8]], bodyHash: [UInt8], timestamp: Int) throws(DKIMError) -> String {
        let (names, canonical) = Self.selectHeaders(headers, in: fields)
        let tags = [
            "v=1", "a=\(key.algorithm.rawValue)", "c=relaxed/relaxed", "d=\(domain)", "s=\(selector)", "t=\(timestamp)",
        ]
        var folder = Folder(start: "DKIM-Signature:")
        for tag in tags { folder.add(" " + tag + ";") }
        // h= folds between names (FWS is allowed around each colon).
        let h = names.enumerated().map { index, name in (index == 0 ? " h=" : "") + name + (index == names.count - 1 ? ";" : ":") }
        for piece in h { folder.add(piece) }
        folder.add(" bh=\(DKIMBase64.encode(bodyHash));")
        // b= starts a line of its own; what is signed is the field with b= empty.
        folder.breakLine()
        folder.add("b=")
        let unsigned = folder.text
        var data = canonical
        var signedField = DKIMRelaxedHeader.canonicalize(Array(unsigned.utf8)) ?? []
        signedField.removeLast(2)  // the field itself is hashed without its CRLF (RFC 6376 §3.7)
        data += signedField
        let signature = DKIMBase64.encode(try key.sign(data))
        // The value folds anywhere: a verifier ignores whitespace in b= (RFC 6376 §3.5).
        var value = Substring(signature)
        while !value.isEmpty {
            let room = max(1, Self.foldColumn - folder.column)
            let piece = value.prefix(room)
            folder.appendRaw(String(piece))
            value = value.dropFirst(piece.count)
            if !value.isEmpty { folder.breakLine() }
        }
        return folder.text + "\r\n"
    }

    /// Signs a whole message held in memory (tests, small messages): the
    /// signature field followed by the message. Throws when the message has
    /// no header section.
    public func sign(message: [UInt8], timestamp: Int) throws(DKIMError) -> [UInt8] {
        guard let (fields, bodyStart) = Self.headerFields(of: message, atEnd: true) else {
            throw DKIMError(.headerSectionIncomplete, "the message has no complete header section")
        }
        var hasher = DKIMBodyHasher()
        hasher.update(message[bodyStart...])
        let field = try signatureField(fields: fields, bodyHash: hasher.finalize(), timestamp: timestamp)
        return Array(field.utf8) + message
    }

    /// Splits a header section: each field's raw bytes and where the body starts.
    ///
    /// `bytes` holds the start of a message. Nil when the empty line that ends
    /// the header section is not in it, unless `atEnd` (the message is all
    /// here) and every line is a header field: the body is then empty.
    /// - SeeAlso: RFC 5322 §2.1 (the empty line), §2.2.3 (folding)
    public static func headerFields(of bytes: [UInt8], atEnd: Bool) -> (fields: [[UInt8]], bodyStart: Int)? {
        let section = RelayHeaderSection.parse(bytes)
        let fields = section.fields.map { Array(bytes[$0.range]) }
        if section.isComplete { return (fields, section.length) }
        if atEnd, section.length == bytes.count { return (fields, bytes.count) }
        return nil
    }
}

/// Builds a folded header field: pieces are appended on the current line
/// while it stays under the fold column, else on a new line that starts with a tab.
private struct Folder {
    private(set) var text: String
    private(set) var column: Int

    init(start: String) {
        text = start
        column = start.count
    }

    /// Appends `piece`; folds first when it would pass the column. A piece
    /// that starts with a space folds at that space (the space becomes the
    /// line end and a tab).
    mutating func add(_ piece: String) {
        if column + piece.count > DKIMSigner.foldColumn, column > 1 {
            breakLine()
            appendRaw(piece.hasPrefix(" ") ? String(piece.dropFirst()) : piece)
        } else {
            appendRaw(piece)
        }
    }

    mutating func breakLine() {
        text += "\r\n\t"
        column = 1
    }

    mutating func appendRaw(_ piece: String) {
        text += piece
        column += piece.count
    }
}
