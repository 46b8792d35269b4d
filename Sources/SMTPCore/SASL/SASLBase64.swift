#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Base64 as SASL in SMTP uses it: one line, `=` for an empty response, `*` to cancel.
///
/// - SeeAlso: RFC 4954 §4
enum SASLBase64 {
    static func encode(_ bytes: [UInt8]) -> String {
        if bytes.isEmpty { return "" }
        return Data(bytes).base64EncodedString()
    }

    static func encode(_ string: String) -> String {
        encode(Array(string.utf8))
    }

    /// Decodes a client response. `=` alone is the empty response; `*` cancels.
    ///
    /// Missing `=` padding is tolerated (some embedded clients drop it); any
    /// character outside the base64 alphabet, including whitespace, is refused.
    static func decode(_ response: some StringProtocol, mechanism: String) throws(SASLError) -> [UInt8] {
        let text = String(response)
        if text == "*" { throw SASLError(.cancelled, mechanism: mechanism) }
        if text == "=" || text.isEmpty { return [] }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="):
                continue
            default:
                throw SASLError(.invalidBase64, mechanism: mechanism)
            }
        }
        var padded = text
        let remainder = padded.utf8.count % 4
        if remainder == 1 { throw SASLError(.invalidBase64, mechanism: mechanism) }
        if remainder != 0 { padded += String(repeating: "=", count: 4 - remainder) }
        guard let data = Data(base64Encoded: padded) else {
            throw SASLError(.invalidBase64, mechanism: mechanism)
        }
        return Array(data)
    }

    /// Decodes strict UTF-8, refusing invalid sequences instead of repairing them.
    static func utf8(_ bytes: some Collection<UInt8>, mechanism: String, field: String) throws(SASLError) -> String {
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw SASLError(.invalidUTF8, mechanism: mechanism, field: field)
        }
        return string
    }
}
