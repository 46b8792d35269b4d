/// What a server offers, read from its EHLO reply.
///
/// Keywords and AUTH mechanisms are compared case-insensitively (stored
/// upper-cased). The first line of the reply is the server's name and
/// greeting, not an extension. A HELO fallback yields ``init()``: no extensions.
/// - SeeAlso: RFC 5321 §4.1.1.1 (EHLO reply), RFC 1870 (SIZE), RFC 2920
///   (PIPELINING), RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 6152 (8BITMIME),
///   RFC 6531 (SMTPUTF8), RFC 3030 (CHUNKING, BINARYMIME), RFC 2034
///   (ENHANCEDSTATUSCODES), RFC 3461 (DSN)
public struct SMTPCapabilities: Hashable, Sendable, CustomStringConvertible {
    /// The first word of the EHLO reply: the server's name for itself.
    public var serverName: String?
    /// Every extension keyword (upper-cased) with its parameters as sent.
    public var extensions: [String: [String]]
    /// SASL mechanisms from `AUTH` and the legacy `AUTH=` line, upper-cased, in the order offered.
    public var authenticationMechanisms: [String]

    /// No extensions: what a HELO-only server offers.
    public init() {
        self.serverName = nil
        self.extensions = [:]
        self.authenticationMechanisms = []
    }

    /// Reads the EHLO reply. The reply code is not checked here: the session does that.
    public init(ehloReply reply: SMTPReply) {
        self.init()
        guard let first = reply.lines.first else { return }
        if let name = first.split(separator: " ", maxSplits: 1).first {
            serverName = String(name)
        }
        for line in reply.lines.dropFirst() {
            var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard !words.isEmpty else { continue }
            var keyword = words.removeFirst()
            // The pre-RFC 4954 form `AUTH=LOGIN PLAIN` that old Exchange servers still send.
            if let equals = keyword.firstIndex(of: "=") {
                let value = String(keyword[keyword.index(after: equals)...])
                keyword = String(keyword[..<equals])
                if !value.isEmpty { words.insert(value, at: 0) }
            }
            keyword = keyword.uppercased()
            guard !keyword.isEmpty else { continue }
            extensions[keyword, default: []].append(contentsOf: words)
            if keyword == "AUTH" {
                for mechanism in words.map({ $0.uppercased() }) where !authenticationMechanisms.contains(mechanism) {
                    authenticationMechanisms.append(mechanism)
                }
            }
        }
    }

    /// Whether the keyword was offered, e.g. `supports("dsn")`.
    public func supports(_ keyword: String) -> Bool {
        extensions[keyword.uppercased()] != nil
    }

    /// The parameters of a keyword, nil when it was not offered.
    public func parameters(of keyword: String) -> [String]? {
        extensions[keyword.uppercased()]
    }

    /// Whether a SASL mechanism is offered, e.g. `supportsAuthentication("xoauth2")`.
    public func supportsAuthentication(_ mechanism: String) -> Bool {
        authenticationMechanisms.contains(mechanism.uppercased())
    }

    public var pipelining: Bool { supports("PIPELINING") }
    public var startTLS: Bool { supports("STARTTLS") }
    public var eightBitMIME: Bool { supports("8BITMIME") }
    public var binaryMIME: Bool { supports("BINARYMIME") }
    public var smtpUTF8: Bool { supports("SMTPUTF8") }
    public var chunking: Bool { supports("CHUNKING") }
    public var enhancedStatusCodes: Bool { supports("ENHANCEDSTATUSCODES") }
    public var dsn: Bool { supports("DSN") }
    /// Whether the SIZE extension is offered (with or without a limit).
    public var size: Bool { supports("SIZE") }

    /// The declared message size limit in octets; nil when SIZE is absent, has
    /// no number, or is `0` (RFC 1870 §4: no fixed maximum).
    public var sizeLimit: Int? {
        guard let value = parameters(of: "SIZE")?.first, let limit = Int(value), limit > 0 else { return nil }
        return limit
    }

    public var description: String {
        let keywords = extensions.keys.sorted().map { key -> String in
            let parameters = extensions[key] ?? []
            return parameters.isEmpty ? key : "\(key) \(parameters.joined(separator: " "))"
        }
        return "SMTPCapabilities(\(keywords.joined(separator: ", ")))"
    }
}
