import Foundation

/// Something that happened in ingress or delivery that metrics and alerts
/// count or act on. Observers are called inline on the hot path, so they must
/// return at once (count, or hand over to their own task) and never block.
public enum RelayOperationalEvent: Sendable, Hashable {
    /// A message was queued (after `250`).
    case messageReceived(client: String, route: String, size: Int)
    /// A message was refused at ingress (5xx or 4xx after DATA, or a refused MAIL/RCPT).
    case messageRefused(client: String, reason: String)
    /// A session ended: the TLS protocol it used (known only after STARTTLS), nil for plaintext.
    case sessionEnded(client: String, tlsVersion: String?)
    case authFailed(clientAddress: String, username: String?)
    /// An address reached the AUTH failure limit and is locked out.
    case clientLockedOut(clientAddress: String, until: Date)
    /// A delivery attempt ended.
    case attemptFinished(RelayAttemptReport)
    /// Microsoft throttled a sending mailbox (`432`, `450 4.7.0`, `429`, SubmissionQuotaExceeded).
    case throttled(route: String, mailbox: String?, retryAfter: TimeInterval?, reply: String)
    /// Routes paused (one route) or stopped (a tenant) until `until`.
    case routeHeld(routes: [String], stopped: Bool, until: Date, reason: String)
    /// A route that was held delivered again.
    case routeRecovered(route: String)
    /// A delivery status notification was queued for a failed message.
    case bounced(queueID: String, dsnID: String)
}

/// One delivery attempt, as metrics and alerts see it.
public struct RelayAttemptReport: Sendable, Hashable {
    public enum Outcome: String, Sendable, Hashable {
        case delivered, deferred, failed
    }

    public var queueID: String
    public var client: String
    public var route: String
    public var transport: String
    public var sendingMailbox: String?
    public var outcome: Outcome
    /// The reply's class (M365ReplyClassification), `ok` when delivered, `local` when the relay decided alone.
    public var replyClass: String
    /// The attempt alone.
    public var duration: TimeInterval
    /// From receipt to this attempt's end; the delivery latency when `delivered`.
    public var sinceReceived: TimeInterval

    public init(
        queueID: String, client: String, route: String, transport: String, sendingMailbox: String?, outcome: Outcome, replyClass: String,
        duration: TimeInterval, sinceReceived: TimeInterval
    ) {
        self.queueID = queueID
        self.client = client
        self.route = route
        self.transport = transport
        self.sendingMailbox = sendingMailbox
        self.outcome = outcome
        self.replyClass = replyClass
        self.duration = duration
        self.sinceReceived = sinceReceived
    }
}

/// Receives operational events. See ``RelayOperationalEvent``: never block.
public protocol RelayEventObserver: Sendable {
    func observe(_ event: RelayOperationalEvent)
}

/// Hands each event to several observers, in order.
public struct RelayEventFanOut: RelayEventObserver {
    public var observers: [any RelayEventObserver]

    public init(_ observers: [any RelayEventObserver]) {
        self.observers = observers
    }

    public func observe(_ event: RelayOperationalEvent) {
        for observer in observers { observer.observe(event) }
    }
}
