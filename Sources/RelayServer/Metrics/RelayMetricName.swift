/// Every metric the relay exports: its name, label names and HELP text.
///
/// The event counters and histograms are made through swift-metrics, whose
/// factory registers them without help text, so ``RelayMetrics`` adds the
/// `# HELP` lines from here when it renders.
enum RelayMetricName: String, CaseIterable, Sendable {
    case messagesReceived = "m365relay_messages_received_total"
    case messagesRefused = "m365relay_messages_refused_total"
    case messagesDelivered = "m365relay_messages_delivered_total"
    case messagesDeferred = "m365relay_messages_deferred_total"
    case messagesFailed = "m365relay_messages_failed_total"
    case messagesBounced = "m365relay_messages_bounced_total"
    case deliveryAttempts = "m365relay_delivery_attempts_total"
    case deliveryLatency = "m365relay_delivery_latency_seconds"
    case attemptDuration = "m365relay_delivery_attempt_duration_seconds"
    case authFailures = "m365relay_auth_failures_total"
    case lockouts = "m365relay_lockouts_total"
    case sessions = "m365relay_sessions_total"
    case throttled = "m365relay_throttled_total"
    case routeHolds = "m365relay_route_holds_total"

    case queueMessages = "m365relay_queue_messages"
    case queueOldestMessageAge = "m365relay_queue_oldest_message_age_seconds"
    case routeUp = "m365relay_route_up"
    case quotaUsed = "m365relay_quota_used"
    case quotaLimit = "m365relay_quota_limit"
    case tokenExpiry = "m365relay_token_expiry_seconds"
    case credentialExpiry = "m365relay_credential_expiry_seconds"
    case certificateExpiry = "m365relay_certificate_expiry_seconds"
    case buildInfo = "m365relay_build_info"

    /// The label names, in the order ``RelayMetrics`` passes their values.
    var labelNames: [String] {
        switch self {
        case .messagesReceived, .messagesDelivered: ["client", "route"]
        case .messagesRefused: ["client", "reason"]
        case .messagesDeferred, .messagesFailed: ["client", "route", "reply_class"]
        case .messagesBounced, .authFailures, .lockouts, .queueOldestMessageAge: []
        case .deliveryAttempts: ["route", "transport", "outcome"]
        case .deliveryLatency, .attemptDuration, .throttled, .routeUp, .tokenExpiry, .credentialExpiry: ["route"]
        case .sessions: ["tls_version"]
        case .routeHolds: ["route", "kind"]
        case .queueMessages: ["status"]
        case .quotaUsed, .quotaLimit: ["route", "mailbox", "quota"]
        case .certificateExpiry: ["name"]
        case .buildInfo: ["version"]
        }
    }

    var help: String {
        switch self {
        case .messagesReceived: "Messages accepted and queued, by client and route."
        case .messagesRefused: "Messages or envelope commands refused at ingress, by client and reason."
        case .messagesDelivered: "Messages delivered to Microsoft 365, by client and route."
        case .messagesDeferred: "Delivery attempts that ended in a deferral, by client, route and reply class."
        case .messagesFailed: "Messages that failed permanently, by client, route and reply class."
        case .messagesBounced: "Delivery status notifications queued for failed messages."
        case .deliveryAttempts: "Delivery attempts, by route, transport and outcome."
        case .deliveryLatency: "Time from receipt to delivery of delivered messages, by route."
        case .attemptDuration: "Duration of one delivery attempt, by route."
        case .authFailures: "Failed SMTP AUTH attempts."
        case .lockouts: "Client addresses locked out after too many AUTH failures."
        case .sessions: "SMTP sessions started, by TLS version (none for plaintext)."
        case .throttled: "Times Microsoft 365 throttled a sending mailbox, by route."
        case .routeHolds: "Times a route was paused or its tenant stopped, by route and kind."
        case .queueMessages: "Messages in the queue and trace, by status."
        case .queueOldestMessageAge: "Age of the oldest message waiting for delivery (0 when none)."
        case .routeUp: "1 when the route delivers, 0 while it is paused or stopped."
        case .quotaUsed: "Use of a Microsoft 365 quota by a sending mailbox."
        case .quotaLimit: "Limit of a Microsoft 365 quota for a sending mailbox."
        case .tokenExpiry: "Seconds until the route's cached access token expires."
        case .credentialExpiry: "Seconds until the route's client certificate or client secret expires."
        case .certificateExpiry: "Seconds until the certificate expires."
        case .buildInfo: "Always 1; the version label names the running build."
        }
    }
}
