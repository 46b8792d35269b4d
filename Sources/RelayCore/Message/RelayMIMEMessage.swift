import Foundation

/// A `Content-Type` or `Content-Disposition` value: the token and its parameters.
///
/// Parameter names are lowercased; RFC 2231 continuations (`name*0=`,
/// `name*1=`) are joined and extended values (`name*=utf-8''%E2%82%AC`)
/// decoded, so callers only ever see `parameters["filename"]`.
/// - SeeAlso: RFC 2045 §5.1, RFC 2183, RFC 2231 §3-4
public struct RelayMIMEHeaderValue: Hashable, Sendable {
    /// Lowercased, e.g. `multipart/mixed`, `attachment`.
    public var value: String
    public var parameters: [String: String]

    public init(value: String, parameters: [String: String] = [:]) {
        self.value = value
        self.parameters = parameters
    }

    public static func parse(_ text: String) -> RelayMIMEHeaderValue {
        let scalars = Array(text.unicodeScalars)
        var index = 0
        func skipSpaceAndComments() {
            while index < scalars.count {
                if scalars[index] == " " || scalars[index] == "\t" || scalars[index] == "\r" || scalars[index] == "\n" {
                    index += 1
                } else if scalars[index] == "(" {
                    var depth = 0
                    while index < scalars.count {
                        if scalars[index] == "\\" { index += 2; continue }
                        if scalars[index] == "(" { depth += 1 }
                        if scalars[index] == ")" { depth -= 1; if depth == 0 { index += 1; break } }
                        index += 1
                    }
                } else {
                    return
                }
            }
        }
        func token(stoppingAt stops: String) -> String {
            var out = String.UnicodeScalarView()
            while index < scalars.count, !stops.unicodeScalars.contains(scalars[index]) {
                out.append(scalars[index])
                index += 1
            }
            return String(out).relayTrimmed()
        }
        skipSpaceAndComments()
        let value = token(stoppingAt: ";").lowercased()
        var raw: [(name: String, value: String)] = []
        while index < scalars.count {
            index += 1  // the ';'
            skipSpaceAndComments()
            let name = token(stoppingAt: "=;").lowercased()
            guard index < scalars.count, scalars[index] == "=" else {
                continue
            }
            index += 1
            skipSpaceAndComments()
            var parameter: String
            if index < scalars.count, scalars[index] == "\"" {
                var out = String.UnicodeScalarView()
                index += 1
                while index < scalars.count, scalars[index] != "\"" {
                    if scalars[index] == "\\", index + 1 < scalars.count { index += 1 }
                    if scalars[index] != "\r" && scalars[index] != "\n" { out.append(scalars[index]) }
                    index += 1
                }
                index += 1
                parameter = String(out)
                // Skip anything between the closing quote and the next ';'.
                _ = token(stoppingAt: ";")
            } else {
                parameter = token(stoppingAt: ";")
            }
            if !name.isEmpty { raw.append((name, parameter)) }
        }
        return RelayMIMEHeaderValue(value: value, parameters: combine(raw))
    }

    /// Joins RFC 2231 continuations and decodes extended values.
    static func combine(_ raw: [(name: String, value: String)]) -> [String: String] {
        var plain: [String: String] = [:]
        var segments: [String: [(number: Int, value: String, extended: Bool)]] = [:]
        for (name, value) in raw {
            let pieces = name.split(separator: "*", omittingEmptySubsequences: false)
            if pieces.count == 1 {
                if plain[name] == nil { plain[name] = value }
            } else if pieces.count == 2, pieces[1].isEmpty {
                segments[String(pieces[0]), default: []].append((0, value, true))
            } else if let number = Int(pieces[1]) {
                let extended = pieces.count == 3 && pieces[2].isEmpty
                segments[String(pieces[0]), default: []].append((number, value, extended))
            }
        }
        for (name, list) in segments {
            let ordered = list.sorted { $0.number < $1.number }
            var bytes: [UInt8] = []
            var charset = "utf-8"
            for (position, segment) in ordered.enumerated() {
                var text = Substring(segment.value)
                if segment.extended, position == 0 {
                    // charset'language'value
                    let parts = text.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                    if parts.count == 3 {
                        if !parts[0].isEmpty { charset = parts[0].lowercased() }
                        text = parts[2]
                    }
                }
                bytes += segment.extended ? percentDecode(text) : Array(text.utf8)
            }
            // The RFC 2231 value wins over a plain one (clients send both for old readers).
            plain[name] = RelayEncodedWords.string(bytes, charset: charset)
        }
        return plain
    }

    static func percentDecode(_ text: Substring) -> [UInt8] {
        var out: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%"), index + 2 < utf8.count,
               let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2]) {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(utf8[index])
                index += 1
            }
        }
        return out
    }
}

func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// RFC 2047 encoded words (`=?utf-8?B?...?=`), decoded for display and for
/// APIs that want plain text (Graph's JSON `subject`, attachment names).
/// - SeeAlso: RFC 2047 §2-6
public enum RelayEncodedWords {
    /// Decodes every encoded word in `text`; whitespace between two adjacent
    /// encoded words disappears (§6.2). Unknown charsets stay encoded.
    public static func decode(_ text: String) -> String {
        guard text.contains("=?") else { return text }
        var output = ""
        var rest = Substring(text)
        var lastWasEncoded = false
        var pendingSpace = ""
        while let start = rest.range(of: "=?") {
            let before = rest[..<start.lowerBound]
            guard let word = decodeWord(in: rest[start.lowerBound...]) else {
                output += pendingSpace + before + "=?"
                pendingSpace = ""
                rest = rest[start.upperBound...]
                lastWasEncoded = false
                continue
            }
            if lastWasEncoded, before.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }) {
                // Whitespace between encoded words is not part of the text.
            } else {
                output += pendingSpace + before
            }
            pendingSpace = ""
            output += word.text
            rest = word.rest
            lastWasEncoded = true
        }
        output += rest
        return output
    }

    private static func decodeWord(in text: Substring) -> (text: String, rest: Substring)? {
        // =?charset?encoding?encoded-text?=
        let body = text.dropFirst(2)
        guard let q1 = body.firstIndex(of: "?") else { return nil }
        let charset = body[..<q1]
        let afterCharset = body[body.index(after: q1)...]
        guard let q2 = afterCharset.firstIndex(of: "?") else { return nil }
        let encoding = afterCharset[..<q2].uppercased()
        let payloadAndRest = afterCharset[afterCharset.index(after: q2)...]
        guard let end = payloadAndRest.range(of: "?=") else { return nil }
        let payload = payloadAndRest[..<end.lowerBound]
        guard !payload.contains(" ") else { return nil }
        // RFC 2231 §5: charset*language.
        let charsetName = charset.split(separator: "*").first.map(String.init)?.lowercased() ?? ""
        var bytes: [UInt8]
        switch encoding {
        case "B":
            var padded = String(payload)
            while padded.utf8.count % 4 != 0 { padded += "=" }
            guard let data = Data(base64Encoded: padded) else { return nil }
            bytes = Array(data)
        case "Q":
            bytes = []
            let utf8 = Array(payload.utf8)
            var index = 0
            while index < utf8.count {
                if utf8[index] == UInt8(ascii: "_") {
                    bytes.append(32)
                    index += 1
                } else if utf8[index] == UInt8(ascii: "="), index + 2 < utf8.count,
                          let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2]) {
                    bytes.append(high << 4 | low)
                    index += 3
                } else {
                    bytes.append(utf8[index])
                    index += 1
                }
            }
        default:
            return nil
        }
        guard let decoded = decodeCharset(bytes, charset: charsetName) else { return nil }
        return (decoded, payloadAndRest[end.upperBound...])
    }

    /// Text in the charsets mail really uses; nil for one this cannot read.
    static func decodeCharset(_ bytes: [UInt8], charset: String) -> String? {
        switch charset {
        case "utf-8", "utf8", "us-ascii", "ascii", "":
            return String(decoding: bytes, as: UTF8.self)
        case "iso-8859-1", "latin1", "iso_8859-1", "windows-1252", "cp1252":
            // Latin-1 maps octet to code point; close enough for windows-1252 names.
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        default:
            return nil
        }
    }

    /// Bytes in `charset` as a string, UTF-8 when the charset is unknown.
    public static func string(_ bytes: [UInt8], charset: String) -> String {
        decodeCharset(bytes, charset: charset.lowercased()) ?? String(decoding: bytes, as: UTF8.self)
    }
}

/// One MIME entity: the message itself or a part of a multipart body.
///
/// Bodies are slices of the parsed bytes, never copies; ``decodedBody``
/// undoes the transfer encoding when asked.
/// - SeeAlso: RFC 2045 (headers, encodings), RFC 2046 §5.1 (multipart)
public struct RelayMIMEPart: Sendable {
    public var headers: RelayHeaderSection
    /// The body as transmitted (still transfer-encoded), without the header section.
    public var body: ArraySlice<UInt8>
    /// The sub-parts of a `multipart/*` body; empty for a leaf (`message/rfc822` is a leaf too).
    public var parts: [RelayMIMEPart]

    public init(headers: RelayHeaderSection, body: ArraySlice<UInt8>, parts: [RelayMIMEPart]) {
        self.headers = headers
        self.body = body
        self.parts = parts
    }

    /// `Content-Type`, defaulting to `text/plain; charset=us-ascii` (RFC 2045 §5.2).
    public var contentType: RelayMIMEHeaderValue {
        guard let text = headers.value("Content-Type") else {
            return RelayMIMEHeaderValue(value: "text/plain", parameters: ["charset": "us-ascii"])
        }
        let parsed = RelayMIMEHeaderValue.parse(text)
        return parsed.value.contains("/") ? parsed : RelayMIMEHeaderValue(value: "text/plain", parameters: ["charset": "us-ascii"])
    }

    public var contentDisposition: RelayMIMEHeaderValue? {
        headers.value("Content-Disposition").map(RelayMIMEHeaderValue.parse)
    }

    /// `Content-Transfer-Encoding`, lowercased; `7bit` when absent.
    public var transferEncoding: String {
        headers.value("Content-Transfer-Encoding")?.relayTrimmed().lowercased() ?? "7bit"
    }

    /// The `Content-ID` without its angle brackets.
    public var contentID: String? {
        guard var id = headers.value("Content-ID")?.relayTrimmed(), !id.isEmpty else { return nil }
        if id.hasPrefix("<") { id.removeFirst() }
        if id.hasSuffix(">") { id.removeLast() }
        return id
    }

    /// The file name: `Content-Disposition` `filename`, else `Content-Type` `name`; encoded words decoded.
    public var filename: String? {
        let name = contentDisposition?.parameters["filename"] ?? contentType.parameters["name"]
        return name.map(RelayEncodedWords.decode).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Whether the part is an attachment rather than message text: disposition
    /// `attachment`, or a named part, or a leaf that is neither text nor multipart.
    public var isAttachment: Bool {
        if !parts.isEmpty { return false }
        if contentDisposition?.value == "attachment" { return true }
        if filename != nil { return true }
        let type = contentType.value
        return !(type.hasPrefix("text/") || type.hasPrefix("multipart/"))
    }

    /// Whether the part is shown inline (`Content-Disposition: inline`, or an
    /// attachment referenced by `Content-ID` inside `multipart/related`).
    public var isInline: Bool { contentDisposition?.value == "inline" }

    /// The body with its transfer encoding undone (base64, quoted-printable; others as is).
    public var decodedBody: [UInt8] {
        switch transferEncoding {
        case "base64": RelayTransferEncoding.decodeBase64(body)
        case "quoted-printable": RelayTransferEncoding.decodeQuotedPrintable(body)
        default: Array(body)
        }
    }

    /// The decoded body as text in its `charset`.
    public var text: String {
        RelayEncodedWords.string(decodedBody, charset: contentType.parameters["charset"] ?? "us-ascii")
    }

    /// Every leaf part, depth first, in order.
    public var leaves: [RelayMIMEPart] {
        parts.isEmpty ? [self] : parts.flatMap(\.leaves)
    }
}

/// Undoes `Content-Transfer-Encoding`.
/// - SeeAlso: RFC 2045 §6.7 (quoted-printable), §6.8 (base64)
public enum RelayTransferEncoding {
    /// Base64, skipping line ends and any octet outside the alphabet (§6.8 says to ignore them).
    public static func decodeBase64(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count / 4 * 3)
        var quad: UInt32 = 0
        var count = 0
        for byte in bytes {
            let value: UInt32
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="):
                // Padding ends the data.
                if count == 2 { out.append(UInt8(truncatingIfNeeded: quad >> 4)) }
                if count == 3 { out.append(UInt8(truncatingIfNeeded: quad >> 10)); out.append(UInt8(truncatingIfNeeded: quad >> 2)) }
                return out
            default: continue
            }
            quad = quad << 6 | value
            count += 1
            if count == 4 {
                out.append(UInt8(truncatingIfNeeded: quad >> 16))
                out.append(UInt8(truncatingIfNeeded: quad >> 8))
                out.append(UInt8(truncatingIfNeeded: quad))
                quad = 0
                count = 0
            }
        }
        if count == 2 { out.append(UInt8(truncatingIfNeeded: quad >> 4)) }
        if count == 3 { out.append(UInt8(truncatingIfNeeded: quad >> 10)); out.append(UInt8(truncatingIfNeeded: quad >> 2)) }
        return out
    }

    /// Quoted-printable: `=XX` octets, soft line breaks (`=` at a line end) removed.
    public static func decodeQuotedPrintable(_ bytes: some Collection<UInt8>) -> [UInt8] {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            let byte = input[index]
            if byte == UInt8(ascii: "=") {
                if index + 1 < input.count, input[index + 1] == 10 { index += 2; continue }
                if index + 2 < input.count, input[index + 1] == 13, input[index + 2] == 10 { index += 3; continue }
                if index + 2 < input.count, let high = hexValue(input[index + 1]), let low = hexValue(input[index + 2]) {
                    out.append(high << 4 | low)
                    index += 3
                    continue
                }
                // A trailing `=` is a soft break at the end of the data; any other stray `=` stays.
                if index == input.count - 1 { index += 1; continue }
                out.append(byte)
                index += 1
            } else {
                out.append(byte)
                index += 1
            }
        }
        return out
    }
}

/// Parses a whole message into its MIME tree.
///
/// Pure and tolerant: a missing closing boundary ends the part at the end
/// of the data; nesting is bounded so a crafted message cannot recurse without end.
/// - SeeAlso: RFC 2046 §5.1.1 (boundary delimiters)
public enum RelayMIMEParser {
    /// Deeper multiparts are kept as opaque leaves.
    public static let maximumDepth = 32

    public static func parse(_ bytes: [UInt8]) -> RelayMIMEPart {
        parse(bytes[...], depth: 0)
    }

    static func parse(_ bytes: ArraySlice<UInt8>, depth: Int) -> RelayMIMEPart {
        let headers = RelayHeaderSection.parse(bytes)
        let body = bytes[(bytes.startIndex + headers.length)...]
        var part = RelayMIMEPart(headers: headers, body: body, parts: [])
        let type = part.contentType
        if type.value.hasPrefix("multipart/"), depth < maximumDepth,
           let boundary = type.parameters["boundary"], !boundary.isEmpty {
            part.parts = split(body, boundary: Array(boundary.utf8)).map { parse($0, depth: depth + 1) }
        }
        return part
    }

    /// The body parts between `--boundary` lines, each without the line end
    /// that belongs to the following delimiter.
    static func split(_ body: ArraySlice<UInt8>, boundary: [UInt8]) -> [ArraySlice<UInt8>] {
        let delimiter = [UInt8(ascii: "-"), UInt8(ascii: "-")] + boundary
        var parts: [ArraySlice<UInt8>] = []
        var partStart: Int?
        var index = body.startIndex
        let end = body.endIndex
        while index < end {
            let lineStart = index
            var lineEnd = index
            while lineEnd < end, body[lineEnd] != 10 { lineEnd += 1 }
            let next = min(lineEnd + 1, end)
            if body[lineStart] == UInt8(ascii: "-"), lineEnd - lineStart >= delimiter.count,
               body[lineStart..<(lineStart + delimiter.count)].elementsEqual(delimiter) {
                var tail = body[(lineStart + delimiter.count)..<lineEnd]
                let closing = tail.starts(with: [UInt8(ascii: "-"), UInt8(ascii: "-")])
                if closing { tail = tail.dropFirst(2) }
                // Only transport padding may follow the delimiter (RFC 2046 §5.1.1).
                if tail.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) {
                    if let start = partStart {
                        parts.append(body[start..<precedingLineEnd(body, start: start, before: lineStart)])
                    }
                    if closing { return parts }
                    partStart = next
                }
            }
            index = next
        }
        if let start = partStart, start < end { parts.append(body[start..<end]) }
        return parts
    }

    /// The CRLF (or LF) before a delimiter belongs to the delimiter.
    private static func precedingLineEnd(_ body: ArraySlice<UInt8>, start: Int, before: Int) -> Int {
        var cut = before
        if cut > start, body[cut - 1] == 10 { cut -= 1 }
        if cut > start, body[cut - 1] == 13 { cut -= 1 }
        return cut
    }
}
