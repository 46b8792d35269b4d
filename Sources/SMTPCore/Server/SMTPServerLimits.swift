/// Limits of the SMTP server, each with its default and where it comes from.
public struct SMTPServerLimits: Hashable, Sendable {
    /// Octets in a command line including CRLF.
    /// - SeeAlso: RFC 5321 §4.5.3.1.4
    public var maxCommandLineLength = 512
    /// Octets in a line of message text including CRLF.
    /// - SeeAlso: RFC 5321 §4.5.3.1.6
    public var maxTextLineLength = 1000
    /// Octets in one line of an AUTH exchange.
    /// - SeeAlso: RFC 4954 §4 (12288 octets)
    public var maxAuthLineLength = 12288
    /// Octets of message content; Microsoft 365's default limit is 35 MB.
    public var maxMessageSize = 35 * 1024 * 1024
    /// Recipients per message; Microsoft 365's default is 500 (RFC 5321 §4.5.3.1.8 requires at least 100).
    public var maxRecipients = 500
    /// Rejected commands before the session is closed with `421`.
    public var maxErrors = 20
    /// NOOP, RSET, VRFY and HELP commands allowed before each further one also
    /// counts as an error (towards `maxErrors`), so that a client cannot hold a
    /// connection open with them forever; reset when a message is accepted.
    /// Default 100, Postfix's `smtpd_junk_command_limit`.
    public var maxJunkCommands = 100

    public init() {}
}
