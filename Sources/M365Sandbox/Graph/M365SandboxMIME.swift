import Foundation

/// Just enough header reading for Exchange's checks: unfolded fields, the
/// From address and the addresses of To, Cc and Bcc.
/// - SeeAlso: RFC 5322 §2.2 (fields, folding), §3.4 (address lists)
struct M365SandboxHeaders {
    private(set) var fields: [(name: String, value: String)] = []

    init(bytes: some BidirectionalCollection<UInt8>) {
        // Exchange reads the header section up to the first empty line, CRLF or (leniently) LF.
        // Bytes, not Characters: "\r\n" is one Character in Swift.
        var lines: [String] = []
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            let trimmed = line.last == UInt8(ascii: "\r") ? line.dropLast() : line[...]
            if trimmed.isEmpty { break }
            lines.append(String(decoding: trimmed, as: UTF8.self))
        }
        for line in lines {
            if let first = line.first, first == " " || first == "\t", !fields.isEmpty {
                let continuation = line.trimmingCharacters(in: .whitespaces)
                let value = fields[fields.count - 1].value
                fields[fields.count - 1].value = value.isEmpty ? continuation : value + " " + continuation
            } else if let colon = line.firstIndex(of: ":") {
                fields.append((String(line[..<colon]).trimmingCharacters(in: .whitespaces), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        }
    }

    func value(_ name: String) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    func values(_ name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }

    var fromAddress: String? {
        value("From").flatMap { Self.addresses(in: $0).first }
    }

    /// Recipients as Graph takes them from a MIME message: To, Cc and Bcc, without duplicates.
    var recipientAddresses: [String] {
        var seen = Set<String>()
        return ["To", "Cc", "Bcc"].flatMap(values).flatMap(Self.addresses(in:)).filter { seen.insert($0.lowercased()).inserted }
    }

    /// The addresses of an address list: `"Last, First" <a@b>, c@d, group: e@f;`.
    static func addresses(in list: String) -> [String] {
        var result: [String] = []
        var current = ""
        var quoted = false, angle = false, commentDepth = 0
        func finish() {
            var item = current.trimmingCharacters(in: .whitespaces)
            current = ""
            if let colon = item.firstIndex(of: ":"), !item[..<colon].contains("@"), !item[..<colon].contains("<") {
                // A group (`name: a@b, c@d;`): drop its display name.
                item = String(item[item.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            }
            item = item.trimmingCharacters(in: CharacterSet(charactersIn: "; "))
            if let open = item.lastIndex(of: "<"), let close = item[open...].firstIndex(of: ">") {
                let address = String(item[item.index(after: open)..<close])
                if address.contains("@") { result.append(address) }
            } else if let word = item.split(separator: " ").first(where: { $0.contains("@") }) {
                result.append(String(word))
            }
        }
        for character in list {
            switch character {
            case "\"" where commentDepth == 0: quoted.toggle(); current.append(character)
            case "(" where !quoted: commentDepth += 1
            case ")" where !quoted && commentDepth > 0: commentDepth -= 1
            case _ where commentDepth > 0: break
            case "<" where !quoted: angle = true; current.append(character)
            case ">" where !quoted: angle = false; current.append(character)
            case ",", ";":
                if quoted || angle { current.append(character) } else { finish() }
            default: current.append(character)
            }
        }
        finish()
        return result
    }
}

/// Message rewriting and composition for Graph.
enum M365SandboxMIME {
    /// The message without its Bcc field(s): what Exchange keeps and sends on.
    static func removingBcc(from message: Data) -> Data {
        let bytes = [UInt8](message)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        var skipping = false
        while index < bytes.count {
            var end = index
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            let lineEnd = min(end + 1, bytes.count)
            let line = bytes[index..<lineEnd]
            let content = line.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
            if content.isEmpty {
                // End of the header section: the body is copied as is.
                output.append(contentsOf: bytes[index...])
                return Data(output)
            }
            if let first = content.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                if !skipping { output.append(contentsOf: line) }
            } else {
                let name = String(decoding: content.prefix { $0 != UInt8(ascii: ":") }, as: UTF8.self)
                skipping = name.trimmingCharacters(in: .whitespaces).caseInsensitiveCompare("Bcc") == .orderedSame
                if !skipping { output.append(contentsOf: line) }
            }
            index = lineEnd
        }
        return Data(output)
    }

    /// Base64 in lines of 76 characters (RFC 2045 §6.8).
    static func base64Lines(_ data: Data) -> String {
        data.base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
    }

    /// An address as a header shows it: `"Name" <address>` or the bare address.
    static func mailbox(_ address: String, name: String?) -> String {
        guard let name, !name.isEmpty else { return address }
        if name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || " !#$%&'*+-/=?^_`{|}~".contains($0)) }) {
            return "\(name) <\(address)>"
        }
        if name.allSatisfy(\.isASCII) {
            return "\"\(name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\" <\(address)>"
        }
        return "\(encodedWord(name)) <\(address)>"
    }

    /// An RFC 2047 encoded word for non-ASCII header text.
    static func encodedWord(_ text: String) -> String {
        text.allSatisfy(\.isASCII) ? text : "=?UTF-8?B?\(Data(text.utf8).base64EncodedString())?="
    }
}
