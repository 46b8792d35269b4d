/// The DNS wire format (RFC 1035 §4), only as much as `RelayDNSClient` needs:
/// one question out, the answer section in. Written by hand because none of the
/// libraries this project uses (SwiftNIO, swift-nio-ssl, AsyncHTTPClient...)
/// speaks DNS, and the system resolver cannot be pointed at a chosen server or
/// asked for MX and TXT portably.
///
/// Every read is bounds-checked and compression pointers may only point
/// backwards, so a malformed or hostile reply is a `DNSWireError`, never a
/// crash or a loop.
enum DNSMessage {
    static let headerLength = 12
    static let classIN: UInt16 = 1

    static func typeCode(_ type: RelayDNSRecordType) -> UInt16 {
        switch type {
        case .a: 1
        case .cname: 5
        case .mx: 15
        case .txt: 16
        case .aaaa: 28
        }
    }

    /// The name as sent on the wire and compared with the reply: lower-case
    /// ASCII labels, no trailing dot. Throws a sentence naming what is wrong.
    static func normalisedName(_ name: String) throws(DNSWireError) -> String {
        var text = name
        if text.hasSuffix(".") && text.count > 1 { text.removeLast() }
        guard !text.isEmpty, text != "." else { throw DNSWireError("the name is empty") }
        guard text.unicodeScalars.allSatisfy(\.isASCII) else {
            throw DNSWireError("the name is not ASCII; internationalised names are not supported: give its A-label form (xn--...)")
        }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.allSatisfy({ !$0.isEmpty }) else { throw DNSWireError("the name has an empty label (two dots in a row or a leading dot)") }
        guard labels.allSatisfy({ $0.utf8.count <= 63 }) else { throw DNSWireError("a label is longer than 63 octets") }
        guard text.utf8.count <= 253 else { throw DNSWireError("the name is longer than 253 octets") }
        guard text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw DNSWireError("the name contains spaces or control characters") }
        return text.lowercased()
    }

    /// A standard query (RD set) with one question for `name` (already normalised).
    static func query(id: UInt16, name: String, type: RelayDNSRecordType) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerLength + name.utf8.count + 6)
        bytes.append(contentsOf: bigEndian(id))
        bytes.append(contentsOf: [0x01, 0x00])  // QR=0, OPCODE=QUERY, RD=1
        bytes.append(contentsOf: [0, 1, 0, 0, 0, 0, 0, 0])  // QDCOUNT=1, AN/NS/ARCOUNT=0
        for label in name.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes.append(contentsOf: label.utf8)
        }
        bytes.append(0)
        bytes.append(contentsOf: bigEndian(typeCode(type)))
        bytes.append(contentsOf: bigEndian(classIN))
        return bytes
    }

    /// The id and QR bit of a datagram, to tell a reply to this query from stray traffic.
    static func isReply(_ bytes: [UInt8], to id: UInt16) -> Bool {
        bytes.count >= headerLength && UInt16(bytes[0]) << 8 | UInt16(bytes[1]) == id && bytes[2] & 0x80 != 0
    }

    struct Reply: Equatable {
        var truncated: Bool
        var rcode: Int
        /// Records of the asked type (plus nothing else), in answer order.
        var records: [RelayDNSRecord]
    }

    /// Parses a reply to the query for `name` (normalised) and `type`. A
    /// truncated reply is returned with its flag and no records (the caller asks
    /// again over TCP), whatever its sections hold.
    static func parseReply(_ bytes: [UInt8], id: UInt16, name: String, type: RelayDNSRecordType) throws(DNSWireError) -> Reply {
        var reader = Reader(bytes: bytes)
        let replyID = try reader.uint16()
        let flags = try reader.uint16()
        let questions = try reader.uint16()
        let answers = try reader.uint16()
        _ = try reader.uint16()  // NSCOUNT
        _ = try reader.uint16()  // ARCOUNT
        guard replyID == id else { throw DNSWireError("the reply's id does not match the query's") }
        guard flags & 0x8000 != 0 else { throw DNSWireError("the reply is not marked as a response (QR=0)") }
        guard (flags >> 11) & 0xF == 0 else { throw DNSWireError("the reply has opcode \((flags >> 11) & 0xF), not QUERY") }
        let truncated = flags & 0x0200 != 0
        let rcode = Int(flags & 0xF)
        // Some servers send a truncated reply without the question: nothing to check then.
        if truncated && questions == 0 { return Reply(truncated: true, rcode: rcode, records: []) }
        guard questions == 1 else { throw DNSWireError("the reply has \(questions) questions, expected the 1 asked") }
        let questionName = try reader.name()
        let questionType = try reader.uint16()
        let questionClass = try reader.uint16()
        guard questionName == name, questionType == typeCode(type), questionClass == classIN else {
            throw DNSWireError("the reply answers another question (\(questionName.isEmpty ? "." : questionName) type \(questionType)), not the one asked")
        }
        if truncated { return Reply(truncated: true, rcode: rcode, records: []) }

        var records: [RelayDNSRecord] = []
        for _ in 0..<answers {
            _ = try reader.name()  // owner: a CNAME chain's records are owned by the target, so it is not compared
            let recordType = try reader.uint16()
            let recordClass = try reader.uint16()
            _ = try reader.uint32()  // TTL
            let length = Int(try reader.uint16())
            let end = reader.offset + length
            guard end <= bytes.count else { throw DNSWireError("a record's data runs past the end of the reply") }
            defer { reader.offset = end }
            guard recordClass == classIN, recordType == typeCode(type) else { continue }
            var data = reader
            data.limit = end
            let record: RelayDNSRecord
            switch type {
            case .a:
                guard length == 4 else { throw DNSWireError("an A record has \(length) octets of data, not 4") }
                record = .a(bytes[reader.offset..<end].map(String.init).joined(separator: "."))
            case .aaaa:
                guard length == 16 else { throw DNSWireError("an AAAA record has \(length) octets of data, not 16") }
                record = .aaaa(ipv6Text(Array(bytes[reader.offset..<end])))
            case .cname:
                record = .cname(try data.name())
            case .mx:
                let preference = Int(try data.uint16())
                record = .mx(preference: preference, exchange: try data.name())
            case .txt:
                var joined: [UInt8] = []
                while data.offset < end {
                    let count = Int(try data.uint8())
                    joined.append(contentsOf: try data.bytes(count))
                }
                record = .txt(String(decoding: joined, as: UTF8.self))
            }
            guard type == .a || type == .aaaa || data.offset == end else {
                throw DNSWireError("a \(type.rawValue) record's data is longer than its contents")
            }
            records.append(record)
        }
        return Reply(truncated: false, rcode: rcode, records: records)
    }

    /// RFC 5952 text: lower-case hex, no leading zeros, the longest run of two or
    /// more zero groups (the first if tied) as "::", IPv4-mapped addresses dotted.
    static func ipv6Text(_ bytes: [UInt8]) -> String {
        precondition(bytes.count == 16)
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xFFFF {
            return "::ffff:" + bytes[12..<16].map(String.init).joined(separator: ".")
        }
        var bestStart = -1, bestLength = 0, index = 0
        while index < 8 {
            guard groups[index] == 0 else { index += 1; continue }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > bestLength { bestStart = index; bestLength = end - index }
            index = end
        }
        let hex = groups.map { String($0, radix: 16) }
        guard bestLength >= 2 else { return hex.joined(separator: ":") }
        let head = hex[0..<bestStart].joined(separator: ":")
        let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
        return head + "::" + tail
    }

    static func bigEndian(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }

    /// A bounds-checked cursor over the whole message (names in record data
    /// point back into it).
    struct Reader {
        let bytes: [UInt8]
        var offset = 0
        /// Reads past this offset fail (the end of the current record's data).
        var limit: Int

        init(bytes: [UInt8]) {
            self.bytes = bytes
            self.limit = bytes.count
        }

        mutating func uint8() throws(DNSWireError) -> UInt8 {
            guard offset < limit else { throw DNSWireError("the reply ends too early (octet \(offset) of \(limit))") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func uint16() throws(DNSWireError) -> UInt16 {
            UInt16(try uint8()) << 8 | UInt16(try uint8())
        }

        mutating func uint32() throws(DNSWireError) -> UInt32 {
            UInt32(try uint16()) << 16 | UInt32(try uint16())
        }

        mutating func bytes(_ count: Int) throws(DNSWireError) -> ArraySlice<UInt8> {
            guard count >= 0, offset + count <= limit else { throw DNSWireError("a string runs past the end of its data") }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }

        /// A possibly compressed name (RFC 1035 §4.1.4), lower-cased, without the
        /// trailing dot ("" for the root). Pointers must point strictly before
        /// the label they replace, so a pointer loop cannot happen.
        mutating func name() throws(DNSWireError) -> String {
            var labels: [String] = []
            var length = 0
            var position = offset
            var resumeAt: Int? = nil  // where reading continues after the first pointer
            var lowestJump = position  // every pointer must go below this
            var jumps = 0  // a second guard: even backward pointers are not followed forever
            while true {
                guard position < limit || (resumeAt != nil && position < bytes.count) else {
                    throw DNSWireError("a name runs past the end of the reply")
                }
                let count = Int(bytes[position])
                switch count & 0xC0 {
                case 0x00:
                    if count == 0 {
                        offset = resumeAt ?? position + 1
                        return labels.joined(separator: ".")
                    }
                    let start = position + 1, end = start + count
                    guard end <= (resumeAt == nil ? limit : bytes.count) else { throw DNSWireError("a label runs past the end of the reply") }
                    length += count + 1
                    guard length <= 255 else { throw DNSWireError("a name is longer than 255 octets") }
                    labels.append(Self.labelText(bytes[start..<end]))
                    position = end
                case 0xC0:
                    guard position + 1 < (resumeAt == nil ? limit : bytes.count) else {
                        throw DNSWireError("a compression pointer runs past the end of the reply")
                    }
                    let target = (count & 0x3F) << 8 | Int(bytes[position + 1])
                    guard target < lowestJump, target >= DNSMessage.headerLength else {
                        throw DNSWireError("a compression pointer points forwards or into itself (a loop)")
                    }
                    jumps += 1
                    guard jumps <= 127 else { throw DNSWireError("a name follows more than 127 compression pointers") }
                    if resumeAt == nil { resumeAt = position + 2 }
                    lowestJump = target
                    position = target
                default:
                    throw DNSWireError("a name uses an unknown label type (0x\(String(count & 0xC0, radix: 16)))")
                }
            }
        }

        /// Lower-case ASCII; other octets and dots inside a label as \DDD (RFC 1035 §5.1).
        static func labelText(_ label: ArraySlice<UInt8>) -> String {
            var text = ""
            for octet in label {
                switch octet {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): text.unicodeScalars.append(Unicode.Scalar(octet + 0x20))
                case 0x21...0x7E where octet != UInt8(ascii: ".") && octet != UInt8(ascii: "\\"):
                    text.unicodeScalars.append(Unicode.Scalar(octet))
                default:
                    let digits = String(octet)
                    text += "\\" + String(repeating: "0", count: 3 - digits.count) + digits
                }
            }
            return text
        }
    }
}

/// What is wrong with a name or a reply, as a sentence for `RelayDNSError.reason`.
struct DNSWireError: Error, Equatable, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
