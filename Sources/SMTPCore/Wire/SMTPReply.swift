import NIOCore

/// An enhanced mail system status code, `class.subject.detail`.
///
/// - SeeAlso: RFC 3463, RFC 2034
public struct SMTPEnhancedStatus: Hashable, Sendable, CustomStringConvertible {
    public var statusClass: Int
    public var subject: Int
    public var detail: Int

    public init(_ statusClass: Int, _ subject: Int, _ detail: Int) {
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    /// Parses `2.0.0`; nil when the text is not an enhanced status code.
    public init?(parsing text: Substring) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let c = Int(parts[0]), [2, 4, 5].contains(c),
              let s = Int(parts[1]), (0...999).contains(s),
              let d = Int(parts[2]), (0...999).contains(d)
        else { return nil }
        self.init(c, s, d)
    }

    public var description: String { "\(statusClass).\(subject).\(detail)" }
}

/// One SMTP reply, possibly multi-line.
///
/// Every reply the relay sends carries an enhanced status code except the
/// greeting and the EHLO list, where RFC 2034 §3 does not allow one.
/// - SeeAlso: RFC 5321 §4.2
public struct SMTPReply: Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var enhanced: SMTPEnhancedStatus?
    /// Text of each line, without the code and status.
    public var lines: [String]

    public init(_ code: Int, _ enhanced: SMTPEnhancedStatus?, _ lines: [String]) {
        self.code = code
        self.enhanced = enhanced
        self.lines = lines.isEmpty ? [""] : lines
    }

    public init(_ code: Int, _ enhanced: SMTPEnhancedStatus?, _ text: String) {
        self.init(code, enhanced, [text])
    }

    public var isPositiveCompletion: Bool { (200..<300).contains(code) }
    public var isIntermediate: Bool { (300..<400).contains(code) }
    public var isTransientFailure: Bool { (400..<500).contains(code) }
    public var isPermanentFailure: Bool { (500..<600).contains(code) }

    /// The whole text as one line, for logs and traces.
    public var text: String { lines.joined(separator: " ") }

    public var description: String {
        if let enhanced { return "\(code) \(enhanced) \(text)" }
        return "\(code) \(text)"
    }

    /// Encodes the reply with CRLF line ends; the enhanced code is repeated on each line.
    public func encode(into buffer: inout ByteBuffer) {
        for (index, line) in lines.enumerated() {
            buffer.writeString(String(code))
            buffer.writeString(index == lines.count - 1 ? " " : "-")
            if let enhanced {
                buffer.writeString(enhanced.description)
                if !line.isEmpty { buffer.writeString(" ") }
            }
            buffer.writeString(line)
            buffer.writeString("\r\n")
        }
    }

    public var encoded: String {
        var buffer = ByteBuffer()
        encode(into: &buffer)
        return String(buffer: buffer)
    }
}

extension SMTPReply {
    public static func ok(_ text: String = "Ok") -> SMTPReply { SMTPReply(250, .init(2, 0, 0), text) }
    public static let closing = SMTPReply(221, .init(2, 0, 0), "Bye")
    public static let startMailInput = SMTPReply(354, nil, "End data with <CR><LF>.<CR><LF>")
    public static let syntaxError = SMTPReply(500, .init(5, 5, 2), "Syntax error, command unrecognized")
    public static let lineTooLong = SMTPReply(500, .init(5, 5, 6), "Line too long")
    public static let badSequence = SMTPReply(503, .init(5, 5, 1), "Bad sequence of commands")
    public static let tooManyErrors = SMTPReply(421, .init(4, 7, 0), "Too many errors, closing connection")
    public static let idleTimeout = SMTPReply(421, .init(4, 4, 2), "Idle timeout, closing connection")
    public static let shuttingDown = SMTPReply(421, .init(4, 3, 2), "Service shutting down, closing connection")
}
