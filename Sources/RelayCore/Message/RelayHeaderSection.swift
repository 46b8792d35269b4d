/// The header section of a message or a MIME part, field by field.
///
/// Keeps each field's exact bytes so that a transport can rewrite one field
/// (add a `Bcc:`) and send every other octet unchanged. Line ends may be
/// CRLF or, leniently, a bare LF.
/// - SeeAlso: RFC 5322 §2.2 (header fields), §2.2.3 (folding)
public struct RelayHeaderSection: Hashable, Sendable {
    public struct Field: Hashable, Sendable {
        /// The field name as written, e.g. `Content-Type`.
        public var name: String
        /// The value after the colon, unfolded (CRLF before whitespace removed), trimmed.
        public var value: String
        /// Where the whole field, its line ends included, sits in the parsed bytes.
        public var range: Range<Int>

        public init(name: String, value: String, range: Range<Int>) {
            self.name = name
            self.value = value
            self.range = range
        }
    }

    public var fields: [Field]
    /// Octets of the header section including the empty line that ends it
    /// (0 when there is none: the whole input was headers, or it started with the body).
    public var length: Int
    /// Whether the empty line that ends the section was found.
    public var isComplete: Bool

    public init(fields: [Field], length: Int, isComplete: Bool) {
        self.fields = fields
        self.length = length
        self.isComplete = isComplete
    }

    /// Every value of the fields called `name` (case-insensitive), in order.
    public func values(_ name: String) -> [String] {
        fields.filter { $0.name.relayEqualsIgnoringCase(name) }.map(\.value)
    }

    /// The first value of the field called `name`.
    public func value(_ name: String) -> String? {
        fields.first { $0.name.relayEqualsIgnoringCase(name) }?.value
    }

    /// The mailboxes of every field called `name` (`To`, `Cc` may repeat in the wild).
    public func addresses(_ name: String) -> [RelayHeaderAddress] {
        values(name).flatMap(RelayAddressList.parse)
    }

    /// Parses the header section at the start of `bytes`.
    ///
    /// Stops at the first empty line. A line that is neither a field nor a
    /// continuation (no colon) ends the section too, as if the body began
    /// there, rather than making up a field.
    public static func parse<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes) -> RelayHeaderSection where Bytes.Index == Int {
        var fields: [Field] = []
        var position = bytes.startIndex
        let end = bytes.endIndex
        let base = bytes.startIndex

        /// The end of the line starting at `start` (index of its LF, or `end`).
        func lineEnd(from start: Int) -> Int {
            var index = start
            while index < end, bytes[index] != 10 { index += 1 }
            return index
        }
        func isBlankLine(at start: Int) -> Int? {
            if start < end, bytes[start] == 10 { return 1 }
            if start + 1 < end, bytes[start] == 13, bytes[start + 1] == 10 { return 2 }
            return nil
        }

        while position < end {
            if let blank = isBlankLine(at: position) {
                return RelayHeaderSection(fields: fields, length: position + blank - base, isComplete: true)
            }
            let first = bytes[position]
            if first == 32 || first == 9 {
                // A continuation without a field: the section is malformed; stop.
                break
            }
            // One field: its first line and every continuation line.
            var fieldEnd = lineEnd(from: position)
            while fieldEnd + 1 < end, bytes[fieldEnd + 1] == 32 || bytes[fieldEnd + 1] == 9 {
                fieldEnd = lineEnd(from: fieldEnd + 1)
            }
            let next = min(fieldEnd + 1, end)
            let raw = bytes[position..<fieldEnd]
            guard let colon = raw.firstIndex(of: 58) else { break }
            let name = String(decoding: bytes[position..<colon], as: UTF8.self).relayTrimmed()
            guard !name.isEmpty, !name.contains(" ") else { break }
            let value = unfold(String(decoding: bytes[(colon + 1)..<fieldEnd], as: UTF8.self))
            fields.append(Field(name: name, value: value, range: (position - base)..<(next - base)))
            position = next
        }
        return RelayHeaderSection(fields: fields, length: position - base, isComplete: false)
    }

    /// Removes folding line ends and trims: `a\r\n b` -> `a b`.
    public static func unfold(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars where scalar != "\r" && scalar != "\n" {
            out.append(scalar)
        }
        return String(out).relayTrimmed()
    }
}

extension String {
    /// Compares ASCII-case-insensitively (header names are ASCII).
    func relayEqualsIgnoringCase(_ other: String) -> Bool {
        self.lowercased() == other.lowercased()
    }

    func relayTrimmed() -> String {
        let scalars = unicodeScalars
        var start = scalars.startIndex, end = scalars.endIndex
        while start < end, scalars[start] == " " || scalars[start] == "\t" { start = scalars.index(after: start) }
        while end > start, scalars[scalars.index(before: end)] == " " || scalars[scalars.index(before: end)] == "\t" {
            end = scalars.index(before: end)
        }
        return String(scalars[start..<end])
    }
}
