import NIOCore

/// The deadlines of one server connection, each with its default and where it comes from.
///
/// The session turns them into one next deadline (``SMTPServerSession/nextDeadline``)
/// and decides what happens when it passes (``SMTPServerSession/timerFired(now:)``);
/// the channel handler only keeps one timer armed. Time is always passed in, so
/// transcript tests drive these with a mock clock.
public struct SMTPServerTimeouts: Hashable, Sendable {
    /// A pause before the greeting; a client that talks in it is refused with
    /// `554 5.5.0` and nothing it sent is read. RFC 5321 §4.3.1 makes the client
    /// wait for the greeting; spam engines often do not (Postfix's postscreen
    /// waits 6 s). Default zero: off.
    public var greetingDelay: TimeAmount = .zero
    /// Waiting for the next command. RFC 5321 §4.5.3.2.7 suggests 5 minutes.
    public var idle: TimeAmount = .minutes(5)
    /// A command line, from its first octet to its CRLF; reading does not
    /// extend it, so a client trickling a command one octet at a time is still
    /// closed. Also bounds a TLS handshake. RFC 5321 §4.5.3.2 (5 minutes).
    public var command: TimeAmount = .minutes(5)
    /// Waiting for the next block of message content, and the slack of the
    /// minimum data rate. RFC 5321 §4.5.3.2.5 asks for at least 3 minutes; default 10.
    public var data: TimeAmount = .minutes(10)
    /// Octets per second a client must keep up while sending a message (DATA
    /// content, BDAT chunks and the commands between them), averaged over
    /// `data`: each octet moves the deadline on by `1/minDataRate` seconds, never
    /// beyond `data` from now. Below it the client gets `421 4.4.2`. Zero: off.
    /// Default 500, Postfix's `smtpd_min_data_rate`.
    public var minDataRate = 500

    public init() {}
}
