import NIOCore

/// A command from an SMTP client.
/// - SeeAlso: RFC 5321 §4.1.1, RFC 3030 (BDAT), RFC 3207 (STARTTLS), RFC 4954 (AUTH)
public enum SMTPCommand: Hashable, Sendable {
    case ehlo(String)
    case helo(String)
    case mail(SMTPReversePath, SMTPMailParameters)
    case rcpt(SMTPMailbox)
    case data
    case bdat(size: Int, last: Bool)
    case rset
    case noop
    case quit
    case vrfy
    case expn
    case help
    case startTLS
    case auth(mechanism: String, initialResponse: String?)
}

/// Parameters of MAIL FROM that the server understands.
public struct SMTPMailParameters: Hashable, Sendable {
    /// Declared size (RFC 1870).
    public var size: Int?
    /// `BODY=8BITMIME` or `BINARYMIME` (RFC 6152, RFC 3030).
    public var body8Bit = false
    public var binaryMIME = false
    /// `SMTPUTF8` (RFC 6531).
    public var smtpUTF8 = false

    public init() {}
}

/// Why a command line could not be understood; each maps to one reply.
public struct SMTPCommandError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reply: SMTPReply
    public init(_ reply: SMTPReply) { self.reply = reply }
    public var description: String { reply.description }

    static let unrecognized = SMTPCommandError(.syntaxError)
    static func syntax(_ text: String) -> SMTPCommandError { .init(SMTPReply(501, .init(5, 5, 4), text)) }
    static func parameter(_ text: String) -> SMTPCommandError { .init(SMTPReply(555, .init(5, 5, 4), text)) }
}

extension SMTPCommand {
    /// Parses one command line (without CRLF).
    public static func parse(_ line: ByteBuffer) throws(SMTPCommandError) -> SMTPCommand {
        // RFC 6531 allows UTF-8 in paths; anything that is not valid UTF-8 is junk.
        guard let text = line.getString(at: line.readerIndex, length: line.readableBytes),
              text.utf8.elementsEqual(line.readableBytesView) else {
            throw .syntax("Invalid characters in command")
        }
        return try parse(text)
    }

    public static func parse(_ text: String) throws(SMTPCommandError) -> SMTPCommand {
        let verbEnd = text.firstIndex(of: " ") ?? text.endIndex
        let verb = text[..<verbEnd].uppercased()
        let rest = verbEnd < text.endIndex ? text[text.index(after: verbEnd)...] : ""
        let argument = rest.trimmingSpaces()

        func noArguments(_ command: SMTPCommand) throws(SMTPCommandError) -> SMTPCommand {
            guard argument.isEmpty else { throw .syntax("Syntax error: \(verb) takes no arguments") }
            return command
        }

        switch verb {
        case "EHLO", "HELO":
            guard !argument.isEmpty, !argument.contains(" ") else {
                throw .syntax("Syntax error: \(verb) requires a domain or address literal")
            }
            return verb == "EHLO" ? .ehlo(String(argument)) : .helo(String(argument))
        case "MAIL":
            guard let path = argument.droppingPrefix(caseInsensitive: "FROM:") else {
                throw .syntax("Syntax error: expected MAIL FROM:<address>")
            }
            let (pathText, parameterText) = try splitPath(path.trimmingSpaces())
            let reversePath: SMTPReversePath
            if pathText.isEmpty {
                reversePath = .null
            } else {
                do {
                    reversePath = .mailbox(try SMTPMailbox(parsing: pathText))
                } catch {
                    throw SMTPCommandError(SMTPReply(501, .init(5, 1, 7), "Bad sender address syntax: \(error)"))
                }
            }
            return .mail(reversePath, try parseMailParameters(parameterText))
        case "RCPT":
            guard let path = argument.droppingPrefix(caseInsensitive: "TO:") else {
                throw .syntax("Syntax error: expected RCPT TO:<address>")
            }
            let (pathText, parameterText) = try splitPath(path.trimmingSpaces())
            guard parameterText.isEmpty else {
                throw .parameter("Unsupported RCPT TO parameter")
            }
            guard !pathText.isEmpty else {
                throw SMTPCommandError(SMTPReply(501, .init(5, 1, 3), "Bad recipient address syntax: empty address"))
            }
            do {
                return .rcpt(try SMTPMailbox(parsing: pathText))
            } catch {
                throw SMTPCommandError(SMTPReply(501, .init(5, 1, 3), "Bad recipient address syntax: \(error)"))
            }
        case "DATA": return try noArguments(.data)
        case "BDAT":
            let parts = argument.split(separator: " ")
            guard (1...2).contains(parts.count), let size = Int(parts[0]), size >= 0,
                  parts[0].allSatisfy(\.isASCII) else {
                throw .syntax("Syntax error: expected BDAT <size> [LAST]")
            }
            if parts.count == 2 {
                guard parts[1].uppercased() == "LAST" else { throw .syntax("Syntax error: expected BDAT <size> [LAST]") }
                return .bdat(size: size, last: true)
            }
            return .bdat(size: size, last: false)
        case "RSET": return try noArguments(.rset)
        case "NOOP": return .noop  // RFC 5321 §4.1.1.9: a parameter is allowed and ignored.
        case "QUIT": return try noArguments(.quit)
        case "VRFY": return .vrfy
        case "EXPN": return .expn
        case "HELP": return .help
        case "STARTTLS": return try noArguments(.startTLS)
        case "AUTH":
            let parts = argument.split(separator: " ")
            guard (1...2).contains(parts.count) else { throw .syntax("Syntax error: expected AUTH <mechanism> [initial-response]") }
            return .auth(mechanism: parts[0].uppercased(), initialResponse: parts.count == 2 ? String(parts[1]) : nil)
        default:
            throw .unrecognized
        }
    }

    /// Splits `<path> params` into the path's content and the parameter text.
    /// Angle brackets are expected; a bare address without spaces is tolerated
    /// because old devices send it (Postfix's default does the same).
    private static func splitPath(_ text: Substring) throws(SMTPCommandError) -> (Substring, Substring) {
        if text.first == "<" {
            guard let close = text.firstIndex(of: ">") else { throw .syntax("Syntax error: missing '>'") }
            let inner = text[text.index(after: text.startIndex)..<close]
            if inner.hasPrefix("@") {
                // A source route `<@a,@b:user@c>` (RFC 5321 §4.1.2, deprecated): refused, never followed.
                throw SMTPCommandError(SMTPReply(501, .init(5, 1, 0), "Source routes are not accepted"))
            }
            return (inner, text[text.index(after: close)...].trimmingSpaces())
        }
        let end = text.firstIndex(of: " ") ?? text.endIndex
        let path = text[..<end]
        if path.hasPrefix("@") { throw SMTPCommandError(SMTPReply(501, .init(5, 1, 0), "Source routes are not accepted")) }
        return (path, text[end...].trimmingSpaces())
    }

    private static func parseMailParameters(_ text: Substring) throws(SMTPCommandError) -> SMTPMailParameters {
        var parameters = SMTPMailParameters()
        for item in text.split(separator: " ") {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = pair[0].uppercased()
            let value = pair.count == 2 ? pair[1] : nil
            switch (key, value) {
            case ("SIZE", let value?):
                guard let size = Int(value), size >= 0 else { throw .syntax("Syntax error: invalid SIZE value") }
                parameters.size = size
            case ("BODY", let value?):
                switch value.uppercased() {
                case "7BIT": break
                case "8BITMIME": parameters.body8Bit = true
                case "BINARYMIME": parameters.body8Bit = true; parameters.binaryMIME = true
                default: throw .parameter("Unsupported BODY value")
                }
            case ("SMTPUTF8", nil):
                parameters.smtpUTF8 = true
            case ("AUTH", _?):
                break  // RFC 4954 §5: the server may ignore AUTH= from an unauthenticated or untrusted client.
            default:
                throw .parameter("Unsupported MAIL FROM parameter \(key.prefix(32))")
            }
        }
        return parameters
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }

    func droppingPrefix(caseInsensitive prefix: String) -> Substring? {
        guard count >= prefix.count, self.prefix(prefix.count).uppercased() == prefix else { return nil }
        return dropFirst(prefix.count)
    }
}

extension String {
    func trimmingSpaces() -> Substring { self[...].trimmingSpaces() }
}
