import NIOCore
import SMTPCore

/// Facts about one accepted connection.
public struct SMTPConnectionInfo: Sendable, Hashable {
    /// The client's IP address as text (IPv4-mapped IPv6 shown as IPv4).
    public var clientAddress: String
    public var clientPort: Int
    /// The listener's address, `host:port`.
    public var listener: String
    public var implicitTLS: Bool

    public init(clientAddress: String, clientPort: Int, listener: String, implicitTLS: Bool) {
        self.clientAddress = clientAddress
        self.clientPort = clientPort
        self.listener = listener
        self.implicitTLS = implicitTLS
    }
}

/// Receives one message's content and makes it durable.
/// Used by one connection at a time.
public protocol SMTPMessageSink: AnyObject, Sendable {
    func write(_ chunk: ByteBuffer) throws
    /// Stores the message durably; the reply goes to the client (`250 ... queued as`).
    func commit() async -> SMTPReply
    func abort()
}

/// What the server asks of the application: the session rules for a
/// connection, where messages go, and whether credentials are good.
public protocol SMTPServerDelegate: Sendable {
    /// Called once per connection, before the greeting.
    func sessionConfiguration(for connection: SMTPConnectionInfo) -> SMTPServerSession.Configuration
    /// Called on the event loop when a message's content begins; cheap and non-blocking.
    func openMessage(envelope: SMTPSessionEnvelope, connection: SMTPConnectionInfo) throws -> any SMTPMessageSink
    /// Checks an AUTH exchange; returns the identity on success and the reply to send.
    func verifyCredentials(_ exchange: SMTPAuthExchange, connection: SMTPConnectionInfo) async -> (identity: String?, reply: SMTPReply)
    /// The connection is gone (for per-identity connection counts).
    func connectionClosed(_ connection: SMTPConnectionInfo)
}

extension SMTPServerDelegate {
    public func connectionClosed(_ connection: SMTPConnectionInfo) {}

    public func verifyCredentials(_ exchange: SMTPAuthExchange, connection: SMTPConnectionInfo) async -> (identity: String?, reply: SMTPReply) {
        (nil, SMTPReply(535, .init(5, 7, 8), "Authentication credentials invalid"))
    }
}
