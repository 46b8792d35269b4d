import NIOCore

/// A command the client sends, and its encoding.
///
/// Encoding refuses any argument that could end the line or add one (CR, LF,
/// NUL and other controls): a value from a configuration file or a queued
/// envelope must never turn into a second command.
/// Credentials (`AUTH` responses) are ``SASLSecret``s and never show in
/// `description`.
/// - SeeAlso: RFC 5321 §4.1.1, RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 3030 (BDAT)
public enum SMTPClientCommand: Hashable, Sendable, CustomStringConvertible {
    case ehlo(String)
    case helo(String)
    case startTLS
    /// `AUTH <mechanism> [initial-response]`; an empty initial response is sent as `=`.
    case auth(mechanism: String, initialResponse: SASLSecret? = nil)
    /// A line answering a `334` challenge: base64, empty, or `*` to cancel.
    case authResponse(SASLSecret)
    case mail(from: SMTPReversePath, parameters: SMTPMailParameters = SMTPMailParameters())
    case rcpt(to: SMTPMailbox)
    case data
    /// `BDAT <size> [LAST]`; the chunk itself follows without dot-stuffing.
    case bdat(size: Int, last: Bool)
    case rset
    case noop
    case quit

    /// Appends the command line, CRLF included.
    public func encode(into buffer: inout ByteBuffer) throws(SMTPClientError) {
        switch self {
        case .ehlo(let domain):
            try Self.checkDomain(domain)
            buffer.writeString("EHLO \(domain)\r\n")
        case .helo(let domain):
            try Self.checkDomain(domain)
            buffer.writeString("HELO \(domain)\r\n")
        case .startTLS:
            buffer.writeString("STARTTLS\r\n")
        case .auth(let mechanism, let initialResponse):
            try Self.checkMechanism(mechanism)
            if let initialResponse {
                try Self.checkBase64(initialResponse, allowCancel: false)
                buffer.writeString("AUTH \(mechanism) \(initialResponse.isEmpty ? "=" : initialResponse.unredacted)\r\n")
            } else {
                buffer.writeString("AUTH \(mechanism)\r\n")
            }
        case .authResponse(let response):
            try Self.checkBase64(response, allowCancel: true)
            buffer.writeString(response.unredacted)
            buffer.writeString("\r\n")
        case .mail(let from, let parameters):
            if let mailbox = from.mailbox { try Self.checkMailbox(mailbox) }
            var line = "MAIL FROM:\(from)"
            if let size = parameters.size {
                guard size >= 0 else { throw SMTPClientError(.invalidArgument, detail: "negative SIZE") }
                line += " SIZE=\(size)"
            }
            line += Self.bodyParameter(parameters)
            if parameters.smtpUTF8 { line += " SMTPUTF8" }
            buffer.writeString(line + "\r\n")
        case .rcpt(let to):
            try Self.checkMailbox(to)
            buffer.writeString("RCPT TO:<\(to.address)>\r\n")
        case .data:
            buffer.writeString("DATA\r\n")
        case .bdat(let size, let last):
            guard size >= 0 else { throw SMTPClientError(.invalidArgument, detail: "negative BDAT size") }
            buffer.writeString(last ? "BDAT \(size) LAST\r\n" : "BDAT \(size)\r\n")
        case .rset:
            buffer.writeString("RSET\r\n")
        case .noop:
            buffer.writeString("NOOP\r\n")
        case .quit:
            buffer.writeString("QUIT\r\n")
        }
    }

    /// Encodes several commands into one buffer, e.g. a pipelined group.
    public static func encode(_ commands: [SMTPClientCommand]) throws(SMTPClientError) -> ByteBuffer {
        var buffer = ByteBuffer()
        for command in commands { try command.encode(into: &buffer) }
        return buffer
    }

    /// The command line without CRLF, credentials redacted; for logs and traces.
    public var description: String {
        switch self {
        case .ehlo(let domain): "EHLO \(domain)"
        case .helo(let domain): "HELO \(domain)"
        case .startTLS: "STARTTLS"
        case .auth(let mechanism, let initialResponse):
            initialResponse == nil ? "AUTH \(mechanism)" : "AUTH \(mechanism) <redacted>"
        case .authResponse(let response): response.isEmpty ? "<empty response>" : "<redacted>"
        case .mail(let from, let parameters):
            "MAIL FROM:\(from)"
                + (parameters.size.map { " SIZE=\($0)" } ?? "")
                + Self.bodyParameter(parameters)
                + (parameters.smtpUTF8 ? " SMTPUTF8" : "")
        case .rcpt(let to): "RCPT TO:<\(to.address)>"
        case .data: "DATA"
        case .bdat(let size, let last): last ? "BDAT \(size) LAST" : "BDAT \(size)"
        case .rset: "RSET"
        case .noop: "NOOP"
        case .quit: "QUIT"
        }
    }

    /// `BODY=BINARYMIME` wins over `BODY=8BITMIME`; 7-bit content sends no BODY.
    private static func bodyParameter(_ parameters: SMTPMailParameters) -> String {
        if parameters.binaryMIME { return " BODY=BINARYMIME" }
        if parameters.body8Bit { return " BODY=8BITMIME" }
        return ""
    }

    private static func isControl(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x7F }

    private static func checkDomain(_ domain: String) throws(SMTPClientError) {
        guard !domain.isEmpty, !domain.utf8.contains(where: { isControl($0) || $0 == UInt8(ascii: " ") }) else {
            throw SMTPClientError(.invalidArgument, detail: "EHLO/HELO domain is empty or holds spaces or controls")
        }
    }

    /// RFC 4422 §3.1: 1 to 20 characters of `A-Z 0-9 - _`.
    private static func checkMechanism(_ mechanism: String) throws(SMTPClientError) {
        guard (1...20).contains(mechanism.utf8.count),
              mechanism.utf8.allSatisfy({
                  ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                      || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
              })
        else { throw SMTPClientError(.invalidArgument, detail: "invalid SASL mechanism name") }
    }

    private static func checkBase64(_ response: SASLSecret, allowCancel: Bool) throws(SMTPClientError) {
        let text = response.unredacted
        if allowCancel && text == "*" { return }
        guard text.utf8.allSatisfy({
            ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z"))
                || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "=")
        }) else { throw SMTPClientError(.invalidArgument, detail: "SASL response is not base64") }
    }

    private static func checkMailbox(_ mailbox: SMTPMailbox) throws(SMTPClientError) {
        guard !mailbox.localPart.isEmpty, !mailbox.domain.isEmpty,
              !mailbox.address.utf8.contains(where: isControl)
        else { throw SMTPClientError(.invalidArgument, detail: "address is empty or holds control characters") }
    }
}
