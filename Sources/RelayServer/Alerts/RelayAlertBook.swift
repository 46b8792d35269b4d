import Foundation
import RelayCore

/// Decides which alerts to send: what fires, what is a suppressed repeat, what
/// has recovered. Pure: events, check results and the time go in, alerts to
/// send come out; ``RelayAlerts`` does the I/O.
///
/// Every collection here is bounded: AUTH failures keep the last
/// `auth_failures + 1` (enough to tell a burst), lockouts and throttles are
/// capped, and routes come from the configuration.
struct RelayAlertBook: Sendable {
    struct Rules: Sendable {
        var repeatInterval: TimeInterval
        var authFailures: Int
        var authWindow: TimeInterval
        var queueSize: Int
        var queueAge: TimeInterval
        var expiryWarning: TimeInterval
        /// A throttled route resolves once it has delivered again and this
        /// long has passed since Microsoft last throttled it, so that steady
        /// throttling is one incident, not a firing and a resolved per message.
        var throttleQuietPeriod: TimeInterval = 300

        init(_ configuration: RelayConfiguration.Alerts) {
            repeatInterval = configuration.repeatInterval
            authFailures = configuration.authFailures
            authWindow = configuration.authWindow
            queueSize = configuration.queueSize
            queueAge = configuration.queueAge
            expiryWarning = configuration.expiryWarning
        }
    }

    private struct Firing: Sendable {
        var alert: RelayAlert
        var lastSent: Date
    }

    private struct Throttle: Sendable {
        var last: Date
        var deliveredSince: Bool
    }

    /// Caps on what attacks can grow.
    static let maximumLockouts = 10_000
    static let maximumThrottledRoutes = 1000

    let rules: Rules
    private var firing: [String: Firing] = [:]
    /// The most recent AUTH failures, oldest first, at most `authFailures + 1`.
    private var authFailures: [(at: Date, address: String)] = []
    /// Locked-out addresses and until when.
    private var lockouts: [String: Date] = [:]
    private var throttles: [String: Throttle] = [:]

    init(rules: Rules) {
        self.rules = rules
    }

    /// The keys firing now, for tests and the log.
    var firingKeys: Set<String> { Set(firing.keys) }

    // MARK: Events

    mutating func observe(_ event: RelayOperationalEvent, now: Date) -> [RelayAlert] {
        switch event {
        case .authFailed(let address, _):
            authFailures.append((now, address))
            if authFailures.count > rules.authFailures + 1 { authFailures.removeFirst(authFailures.count - rules.authFailures - 1) }
            return [authBurst(now: now)].compactMap { $0 }

        case .clientLockedOut(let address, let until):
            if lockouts.count >= Self.maximumLockouts, lockouts[address] == nil { expireLockouts(now: now) }
            if lockouts.count < Self.maximumLockouts || lockouts[address] != nil { lockouts[address] = until }
            let alert = RelayAlert(
                key: "auth-lockout", severity: .warning,
                title: "Client \(address) locked out after repeated AUTH failures",
                text: "\(address) reached the AUTH failure limit (server.limits.auth_failures) and is refused until \(RelayAlert.timestamp(until)). "
                    + "If it is one of your devices, its stored password is wrong; otherwise someone is guessing passwords.",
                details: ["address": address, "until": RelayAlert.timestamp(until), "locked_out_addresses": String(lockouts.count)],
                at: now)
            return [fire(alert)].compactMap { $0 }

        case .throttled(let route, let mailbox, let retryAfter, let reply):
            if throttles[route] != nil || throttles.count < Self.maximumThrottledRoutes {
                throttles[route] = Throttle(last: now, deliveredSince: false)
            }
            var details = ["route": route, "reply": reply]
            if let mailbox { details["mailbox"] = mailbox }
            if let retryAfter { details["retry_after"] = RelayConfigurationSyntax.formatDuration(retryAfter) }
            let alert = RelayAlert(
                key: "throttled:\(route)", severity: .warning,
                title: "Microsoft throttles route \(route)",
                text: "Microsoft 365 refused mail for now" + (mailbox.map { " from \($0)" } ?? "") + ": \(reply). "
                    + "Messages stay queued and are retried; if this persists, spread the load over more sending mailboxes or lower the route's quotas.",
                details: details, at: now)
            return [fire(alert)].compactMap { $0 }

        case .routeHeld(let routes, let stopped, let until, let reason):
            return routes.compactMap { route in
                let details = ["route": route, "reason": reason, "until": RelayAlert.timestamp(until)]
                let alert = stopped
                    ? RelayAlert(
                        key: "route-stopped:\(route)", severity: .critical,
                        title: "Tenant stopped: route \(route) sends nothing",
                        text: "Microsoft refuses the tenant's traffic (\(reason)); every route of the tenant is stopped until \(RelayAlert.timestamp(until)). "
                            + "Retrying would make it worse: check the tenant in the Microsoft 365 admin center.",
                        details: details, at: now)
                    : RelayAlert(
                        key: "route-paused:\(route)", severity: .critical,
                        title: "Route \(route) paused",
                        text: "Microsoft refused the route's sign-in or connection (\(reason)); it is paused until \(RelayAlert.timestamp(until)) and its mail stays queued.",
                        details: details, at: now)
                return fire(alert)
            }

        case .routeRecovered(let route):
            let text = "Route \(route) delivers again."
            return [resolve("route-paused:\(route)", text: text, now: now), resolve("route-stopped:\(route)", text: text, now: now)].compactMap { $0 }

        case .attemptFinished(let report) where report.outcome == .delivered:
            guard throttles[report.route] != nil else { return [] }
            throttles[report.route]?.deliveredSince = true
            return [throttleRecovery(route: report.route, now: now)].compactMap { $0 }

        default:
            return []
        }
    }

    private func failuresInWindow(now: Date) -> [(at: Date, address: String)] {
        authFailures.filter { now.timeIntervalSince($0.at) <= rules.authWindow }
    }

    private mutating func authBurst(now: Date) -> RelayAlert? {
        let recent = failuresInWindow(now: now)
        guard recent.count > rules.authFailures else { return nil }
        var seen: [String] = []
        for address in recent.reversed().map(\.address) where !seen.contains(address) { seen.append(address) }
        let window = RelayConfigurationSyntax.formatDuration(rules.authWindow)
        let alert = RelayAlert(
            key: "auth-burst", severity: .warning,
            title: "AUTH failures burst: more than \(rules.authFailures) in \(window)",
            text: "More than \(rules.authFailures) AUTH attempts failed within \(window) (all addresses together). "
                + "A device with a wrong password, or someone guessing passwords.",
            details: [
                "failures": "more than \(rules.authFailures)", "window": window,
                "addresses": seen.prefix(5).joined(separator: ", ") + (seen.count > 5 ? ", ..." : ""),
            ],
            at: now)
        return fire(alert)
    }

    private mutating func throttleRecovery(route: String, now: Date) -> RelayAlert? {
        guard let throttle = throttles[route], throttle.deliveredSince, now.timeIntervalSince(throttle.last) >= rules.throttleQuietPeriod else { return nil }
        throttles[route] = nil
        return resolve("throttled:\(route)", text: "Microsoft accepts route \(route)'s mail again.", now: now)
    }

    private mutating func expireLockouts(now: Date) {
        lockouts = lockouts.filter { $0.value > now }
    }

    // MARK: Periodic checks

    /// Threshold alerts from a check: the queue (nil when it could not be
    /// read: its alerts are left as they are) and the credentials; also
    /// recoveries that only time reveals (a burst that ended, lockouts that
    /// ran out, a throttled route that delivers again).
    mutating func checked(statistics: RelayQueueStatistics?, expiries: [RelayCredentialExpiry], now: Date) -> [RelayAlert] {
        var result: [RelayAlert?] = []

        // A burst resolves at half the threshold, so that a steady trickle near it does not flap.
        if firing["auth-burst"] != nil, failuresInWindow(now: now).count <= rules.authFailures / 2 {
            result.append(resolve("auth-burst", text: "AUTH failures are back to normal.", now: now))
        }
        expireLockouts(now: now)
        if lockouts.isEmpty {
            result.append(resolve("auth-lockout", text: "No client is locked out any more.", now: now))
        }
        for route in throttles.keys.sorted() {
            result.append(throttleRecovery(route: route, now: now))
        }

        if let statistics {
            let depth = (statistics.counts[.queued] ?? 0) + (statistics.counts[.deferred] ?? 0)
            if depth > rules.queueSize {
                result.append(fire(RelayAlert(
                    key: "queue-depth", severity: .warning,
                    title: "\(depth) messages waiting",
                    text: "More than \(rules.queueSize) messages wait for delivery (alerts.queue_size). Check the routes' health and Microsoft's throttling.",
                    details: ["queued": String(depth), "threshold": String(rules.queueSize)],
                    at: now)))
            } else {
                result.append(resolve("queue-depth", text: "\(depth) messages waiting: below \(rules.queueSize) again.", now: now))
            }
            let age = statistics.oldestQueuedAt.map { now.timeIntervalSince($0) } ?? 0
            if let oldest = statistics.oldestQueuedAt, age > rules.queueAge {
                let shown = RelayConfigurationSyntax.formatDuration(age.rounded(.down))
                result.append(fire(RelayAlert(
                    key: "queue-age", severity: .warning,
                    title: "Oldest queued message waits for \(shown)",
                    text: "A message has been waiting longer than \(RelayConfigurationSyntax.formatDuration(rules.queueAge)) (alerts.queue_age). "
                        + "`m365-relay queue list` shows it and its last reply.",
                    details: ["oldest_queued_at": RelayAlert.timestamp(oldest), "threshold": RelayConfigurationSyntax.formatDuration(rules.queueAge)],
                    at: now)))
            } else {
                result.append(resolve("queue-age", text: "No message waits longer than \(RelayConfigurationSyntax.formatDuration(rules.queueAge)) any more.", now: now))
            }
        }

        var expiring: Set<String> = []
        for expiry in expiries {
            let key = "expiry:\(expiry.what.rawValue):\(expiry.name)"
            let remaining = expiry.notAfter.timeIntervalSince(now)
            // Access tokens live an hour by design: only an expired static token is news.
            let warnBefore = expiry.what == .token ? 0 : rules.expiryWarning
            guard remaining <= warnBefore else { continue }
            expiring.insert(key)
            let noun = expiry.what.rawValue.prefix(1).uppercased() + expiry.what.rawValue.dropFirst()
            let day = RelayConfigurationSyntax.formatDay(expiry.notAfter)
            let title: String
            if remaining <= 0 {
                title = "\(noun) expired: \(expiry.name)"
            } else {
                let days = Int((remaining / 86_400).rounded())
                title = "\(noun) expires " + (remaining < 86_400 ? "within a day" : "in \(days) day\(days == 1 ? "" : "s")") + ": \(expiry.name)"
            }
            result.append(fire(RelayAlert(
                key: key, severity: remaining <= 0 ? .critical : .warning,
                title: title,
                text: "The \(expiry.name) " + (remaining <= 0 ? "expired" : "expires") + " on \(day) (\(RelayAlert.timestamp(expiry.notAfter))). Renew it and update the relay's configuration.",
                details: ["credential": expiry.name, "kind": expiry.what.rawValue, "not_after": RelayAlert.timestamp(expiry.notAfter)],
                at: now)))
        }
        for key in firing.keys.sorted() where key.hasPrefix("expiry:") && !expiring.contains(key) {
            result.append(resolve(key, text: "Renewed (or no longer configured): no longer about to expire.", now: now))
        }
        return result.compactMap { $0 }
    }

    // MARK: Suppression

    /// The alert to send, or nil while the same key fired within `repeat_interval`.
    /// Turning critical is sent at once.
    private mutating func fire(_ alert: RelayAlert) -> RelayAlert? {
        guard let existing = firing[alert.key] else {
            firing[alert.key] = Firing(alert: alert, lastSent: alert.at)
            return alert
        }
        firing[alert.key]?.alert = alert
        let escalates = alert.severity == .critical && existing.alert.severity != .critical
        guard escalates || alert.at.timeIntervalSince(existing.lastSent) >= rules.repeatInterval else { return nil }
        firing[alert.key]?.lastSent = alert.at
        return alert
    }

    /// One `resolved` for a firing key; nil when it is not firing.
    private mutating func resolve(_ key: String, text: String, now: Date) -> RelayAlert? {
        guard let existing = firing.removeValue(forKey: key) else { return nil }
        var alert = existing.alert
        alert.status = .resolved
        alert.text = text
        alert.at = now
        return alert
    }
}
